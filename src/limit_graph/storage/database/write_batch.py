"""What one group-commit batch writes (:mod:`~limit_graph.storage.database.group_commit`):
the records it is given (:class:`ExecutionWrite`), gathered into a :class:`Batch` --
their ledger entries chained, their rows, quota claims and queue changes -- before any
of its statements runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Dialect, insert, text

from limit_graph.core.errors import StateDenied
from limit_graph.core.models import Execution, ProvenanceEntry, Session, SessionState, WorkflowRun
from limit_graph.storage import schema as t
from limit_graph.storage.base import (
    execution_draft,
    inactive_session,
    session_draft,
    workflow_run_draft,
)
from limit_graph.storage.database.ledger_append import LedgerAppend
from limit_graph.storage.database.quota_statements import QuotaStatements
from limit_graph.storage.database.statements import Lookup, Prepared
from limit_graph.storage.dispatch import QueueChange
from limit_graph.storage.ledger import BuiltEntry, EntryDraft, LedgerHead, NodeRow, build_entry
from limit_graph.storage.quotas import ClaimRefused, PreparedQuotaWrite
from limit_graph.storage.sealed import SealedRecord

__all__ = ["Batch", "ExecutionWrite", "Unhashable", "WriterStatements"]


class WriterStatements:
    """The writer's statements, prepared for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.ledger = LedgerAppend(dialect)
        self.session_tenants = Lookup(t.sessions.c.id, [t.sessions.c.tenant], dialect)
        self.insert_executions = Prepared(insert(t.executions), dialect)
        self.update_executions = Prepared(
            t.UPDATE_EXECUTIONS, dialect, ["state", "backend", "document", "workflow_run_id"]
        )
        self.executions_found = Lookup(t.executions.c.id, [], dialect)
        self.insert_runs = Prepared(insert(t.workflow_runs), dialect)
        self.update_runs = Prepared(t.UPDATE_WORKFLOW_RUNS, dialect, ["state", "document"])
        self.runs_found = Lookup(t.workflow_runs.c.id, [], dialect)
        self.session_states = Lookup(t.sessions.c.id, [t.sessions.c.state], dialect)
        self.quotas = QuotaStatements(dialect)
        self.no_wait_for_disk = Prepared(text("SET LOCAL synchronous_commit TO OFF"), dialect)


@dataclass
class ExecutionWrite:
    """One record to write: an execution, a workflow run, a new session, or a bare
    ledger entry."""

    execution: Execution | None
    draft: EntryDraft | None = None
    new_session: Session | None = None
    actor: str = ""
    action: str = ""
    require_active_session: bool = False
    started: Execution | None = None
    workflow_run: WorkflowRun | None = None
    sealed: dict[str, Any] | None = None
    """The stored document of a sensitive execution, sealed before it was submitted
    (no key is fetched on the writer thread); its entry index is set here."""
    quota: PreparedQuotaWrite | None = None
    """What the write does to the execution's quotas
    (:class:`~limit_graph.storage.quotas.QuotaWrite`)."""
    queue: QueueChange | None = None
    """What the write does to the execution's row of the dispatch queue."""
    relaxed: bool = False
    """Its commit need not wait for the disk (``Storage.write_execution``)."""
    op: Callable[[Connection], Any] | None = None
    """With no record: statements of the dispatch queue run in the batch's transaction
    (their answer is ``op``'s); committed without waiting for the disk."""
    quota_only: uuid.UUID | None = None
    """With no record: the execution whose quotas ``quota`` reserves (its claims; the
    answer is the refusal or ``None``) or settles (the reservations it settled)."""
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def is_reservation(self) -> bool:
        """A reservation with no record: committed without waiting for the disk."""
        return self.quota_only is not None and self.quota is not None and bool(self.quota.claims)

    @property
    def gated_session(self) -> uuid.UUID | None:
        """The session that must be active when this write commits, if any."""
        if not self.require_active_session:
            return None
        record = self.execution or self.workflow_run
        return record.session_id if record is not None else None


def _build_entries(
    size: int, drafts: list[EntryDraft], tenants: dict[uuid.UUID, str]
) -> list[BuiltEntry]:
    """The entries of one record, at ``size`` and after; raises before any is kept, so a
    record whose documents cannot be hashed leaves the batch's ledger as it was."""
    return [
        build_entry(
            size + i,
            draft,
            tenant=tenants.get(draft.session_id) if draft.session_id is not None else None,
        )
        for i, draft in enumerate(drafts)
    ]


class Unhashable(Exception):
    """A record whose entries cannot be built; it fails alone with ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class Batch:
    """What one batch writes, gathered record by record before any statement runs."""

    head: LedgerHead
    """The head the batch's entries extend (as they are added to it)."""
    was: tuple[int, bytes]
    """The head's size and edge before the batch: where the move checks it still is."""
    existing: set[uuid.UUID]
    existing_runs: set[uuid.UUID]
    session_states: dict[uuid.UUID, str]
    quotas: QuotaStatements
    now_us: int
    tenants: dict[uuid.UUID, str]
    record_entries: bool = True
    """:attr:`GroupCommitter.record_entries` (bench/ledger's switch)."""
    entries: list[BuiltEntry] = field(default_factory=list)
    nodes: list[NodeRow] = field(default_factory=list)
    keyed: dict[tuple[uuid.UUID, str], Execution] = field(default_factory=dict)
    new_sessions: list[Session] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    run_inserts: list[dict[str, Any]] = field(default_factory=list)
    run_updates: list[dict[str, Any]] = field(default_factory=list)
    queue_changes: list[QueueChange] = field(default_factory=list)

    def append(self, drafts: Callable[[], list[EntryDraft]]) -> ProvenanceEntry:
        """Chain one record's entries (``drafts()``) onto the batch; the last one's
        returned.  A record whose documents cannot be built or hashed raises
        :class:`Unhashable` and leaves the batch as it was."""
        return self.keep(self.chain(drafts))

    def chain(self, drafts: Callable[[], list[EntryDraft]]) -> list[BuiltEntry]:
        """One record's entries, following the batch's, not yet kept; :class:`Unhashable`
        for a record whose documents cannot be built or hashed."""
        try:
            return _build_entries(self.head.size, drafts(), self.tenants)
        except Exception as exc:
            raise Unhashable(exc) from exc

    def keep(self, chained: list[BuiltEntry]) -> ProvenanceEntry:
        """Add entries :meth:`chain` made (none since) to the batch; the last one."""
        self.entries.extend(chained)
        self.nodes.extend(self.head.add(chained))
        return chained[-1].entry

    def release(self, conn: Connection, write: ExecutionWrite) -> None:
        """Give back what the execution of a write that does not record it holds."""
        if write.quota is not None and write.execution is not None:
            self.quotas.settle(conn, write.execution.id, {})

    def quota_only(self, conn: Connection, write: ExecutionWrite) -> Any:
        """A reservation (the refusal, or ``None``) or a settling (what was settled) of
        an execution's quotas, with no record."""
        quota, execution_id = write.quota, write.quota_only
        assert quota is not None and execution_id is not None
        if quota.claims:
            return self.quotas.claim(conn, execution_id, quota.claims, self.now_us)
        return self.quotas.settle(conn, execution_id, quota.spent or {})

    def refused(self, write: ExecutionWrite) -> StateDenied | None:
        session_id = write.gated_session
        if session_id is not None and self.session_states.get(session_id) != SessionState.ACTIVE:
            return inactive_session(session_id)
        return None

    def add_session(self, session: Session, write: ExecutionWrite) -> Session:
        self.tenants[session.id] = session.tenant
        self.append(lambda: [session_draft(session, actor=write.actor, action=write.action)])
        self.session_states[session.id] = session.state.value
        self.new_sessions.append(session)
        return session

    def add_workflow_run(self, run: WorkflowRun, write: ExecutionWrite) -> WorkflowRun:
        self.append(lambda: [workflow_run_draft(run, actor=write.actor, action=write.action)])
        if run.id in self.existing_runs:
            self.run_updates.append(t.workflow_run_changes(run))
        else:
            self.existing_runs.add(run.id)
            self.run_inserts.append(t.workflow_run_row(run))
        return run

    def add_execution(self, conn: Connection, execution: Execution, write: ExecutionWrite) -> Any:
        is_new = execution.id not in self.existing
        key = execution.idempotency_key
        if is_new and key is not None:
            earlier = self.keyed.get((execution.session_id, key))
            if earlier is None:
                document = conn.scalar(t.execution_by_key(execution.session_id, key))
                if document is not None and document.get("sensitive"):
                    self.release(conn, write)
                    return SealedRecord(document)  # opened by the submitter, who can fetch keys
                earlier = Execution.model_validate(document) if document is not None else None
            if earlier is not None:
                self.release(conn, write)
                return earlier

        # Its document is dumped once, for its entry's payload and its row alike.
        document = None if execution.sensitive else execution.document()

        def drafts() -> list[EntryDraft]:
            final = execution_draft(
                execution, actor=write.actor, action=write.action, document=document
            )
            if write.started is None:
                return [final]
            started = execution_draft(write.started, actor=write.actor, action="execution.started")
            return [started, final]

        chained = self.chain(drafts) if self.record_entries else []
        quota = write.quota
        settled = False
        if quota is not None and quota.claims:
            if quota.spent is not None:  # claimed and ended in this one write
                refusal = self.quotas.claim_spent(conn, execution.id, quota.claims, quota.spent)
                settled = True
            else:
                refusal = self.quotas.claim(conn, execution.id, quota.claims, self.now_us)
            if refusal is not None:
                return ClaimRefused(refusal)
        index = self.keep(chained).index if chained else None
        stored = execution.model_copy(update={"provenance_entry": index})
        stored_document = None if document is None else {**document, "provenance_entry": index}
        row = (
            t.execution_row(stored, stored_document)
            if is_new
            else t.execution_changes(stored, stored_document)
        )
        if write.sealed is not None:
            row["document"] = {**write.sealed, "provenance_entry": index}
        if is_new:
            self.existing.add(stored.id)
            self.inserts.append(row)
            if key is not None:
                self.keyed[(stored.session_id, key)] = stored
        else:
            self.updates.append(row)
        if quota is not None and quota.spent is not None and not settled:
            self.quotas.settle(conn, execution.id, quota.spent)
        if write.queue is not None:
            self.queue_changes.append(write.queue)
        return stored
