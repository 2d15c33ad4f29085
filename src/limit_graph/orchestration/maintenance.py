"""Housekeeping asked for by the scheduled maintenance flows: archive idle sessions,
verify the whole ledger (and record that it did), drop expired cache documents.

The flows run in Prefect workers and reach these over REST (``/maintenance``); the
work itself happens here, next to the store, so a flow never needs database access.
Who may call them (``maintenance.run``: the platform admin and the runners, whose key
the flows carry) is decided by the route, through the governance authorizer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from limit_graph.core.errors import Conflict
from limit_graph.core.models import ProvenanceEntry, SessionState, utcnow
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.checkpoints import Checkpointer
from limit_graph.orchestration.ledger_verify import LedgerReport, verify_ledger
from limit_graph.orchestration.sessions import SessionService
from limit_graph.storage.base import SessionFilter, Storage
from limit_graph.storage.ledger import EntryDraft

__all__ = [
    "LAST_VERIFICATION",
    "VERIFIED",
    "ArchiveOutcome",
    "LedgerReport",
    "archive_idle_sessions",
    "expire_caches",
    "verify_and_record",
    "verify_ledger",
]

PAGE = 500
log = logging.getLogger("limit_graph.maintenance")

VERIFIED = "ledger.verified"
"""The action of the ledger entry that records a verification of the whole ledger."""

LAST_VERIFICATION = ("maintenance", "ledger-verification")
"""Where the last verification's outcome is kept as a bookkeeping document too
(``ok``, ``size``, ``at`` in Unix seconds), so ``/metrics`` reads it in one lookup."""


@dataclass(frozen=True)
class ArchiveOutcome:
    archived: list[uuid.UUID]
    skipped: dict[uuid.UUID, str]


async def _last_activity(storage: Storage, session_id: uuid.UUID) -> datetime | None:
    """When the session's newest ledger entry was written (every change writes one)."""
    last: ProvenanceEntry | None = None
    after = -1
    while True:
        entries = await storage.list_entries(session_id=session_id, after=after, limit=1000)
        if not entries:
            return last.timestamp if last else None
        last = entries[-1]
        after = last.index


async def archive_idle_sessions(
    sessions: SessionService,
    storage: Storage,
    principal: Principal,
    idle_days: float,
    now: datetime | None = None,
) -> ArchiveOutcome:
    """Archive active and completed sessions with no activity for ``idle_days``.

    Activity is any ledger entry of the session (a state change or an execution's),
    so a session that only runs executions is not idle.  A session with executions
    still queued or running is skipped, as ``POST /sessions/{id}/archive`` would refuse it.
    """
    cutoff = (now or utcnow()) - timedelta(days=idle_days)
    archived: list[uuid.UUID] = []
    skipped: dict[uuid.UUID, str] = {}
    for state in (SessionState.ACTIVE, SessionState.COMPLETED):
        candidates: list[tuple[uuid.UUID, str]] = []
        cursor: str | None = None
        while True:
            page = await storage.list_sessions(
                SessionFilter(state=state), limit=PAGE, cursor=cursor
            )
            candidates += [(s.id, s.tenant) for s in page.items if s.updated_at <= cutoff]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        for session_id, tenant in candidates:
            last = await _last_activity(storage, session_id)
            if last is not None and last > cutoff:
                continue
            # Sessions of every tenant are in scope: the maintainer acts within each
            # session's tenant, under its own name in the ledger.
            acting = Principal(principal.name, tenant, principal.roles, via="internal")
            try:
                await sessions.archive(acting, session_id)
            except Conflict as exc:
                skipped[session_id] = exc.detail
                continue
            archived.append(session_id)
    log.info("archived %d idle sessions, skipped %d", len(archived), len(skipped))
    return ArchiveOutcome(archived, skipped)


async def expire_caches(storage: Storage, now: datetime | None = None) -> int:
    """Delete expired bookkeeping documents of every namespace; how many went."""
    expired = await storage.delete_expired(namespace=None, now=now or utcnow())
    log.info("expired %d cached documents", expired)
    return expired


async def _external_copy(checkpoints: Checkpointer) -> list[tuple[str, str]]:
    """The checkpoint copy kept outside the database, as (where, note), if there is one."""
    path = checkpoints.latest_path

    def read() -> list[tuple[str, str]]:
        if not path.is_file():
            return []
        return [(f"the copy {path.name} outside the database", path.read_text("utf-8"))]

    return await asyncio.to_thread(read)


async def verify_and_record(
    storage: Storage, checkpoints: Checkpointer, principal: Principal
) -> LedgerReport:
    """Verify the whole ledger with the platform's own checkpoint key and origin, and
    against the checkpoint copy outside the database (``latest.note``, when there is
    one); then record the report as a ``ledger.verified`` entry of the platform's own
    trail, by ``principal``, and its outcome as the :data:`LAST_VERIFICATION` document.
    The report's size is the ledger verified, without that entry; a copy that cannot be
    read fails the report rather than being left out."""
    verifiers = [checkpoints.key.verifier]
    try:
        external = await _external_copy(checkpoints)
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        head = await storage.ledger.head()
        report = LedgerReport(
            False, head.size, None, f"{checkpoints.latest_path.name} cannot be read: {why}"
        )
    else:
        report = await verify_ledger(
            storage, verifiers=verifiers, origin=checkpoints.origin, external=external
        )
    await storage.write_entry(
        EntryDraft(
            actor=principal.name,
            action=VERIFIED,
            resource_type="ledger",
            resource_id=checkpoints.origin,
            session_id=None,
            payload=asdict(report),
        )
    )
    outcome = {"ok": report.ok, "size": report.size, "at": utcnow().timestamp()}
    await storage.put_value(*LAST_VERIFICATION, outcome)
    if report.ok:
        log.info("the ledger verifies: %d entries", report.size)
    else:
        log.error("the ledger does not verify at entry %s: %s", report.first_bad, report.detail)
    return report
