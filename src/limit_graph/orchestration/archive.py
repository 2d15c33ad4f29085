"""Archive bundles: a session, its executions, its workflow runs and its ledger entries,
verifiable offline.

``bundle_sha256`` is the SHA-256 of the canonical JSON of the bundle without that
field.  :func:`verify_bundle` re-checks every hash and ties each record to the ledger
entry that wrote it, so any edit to the bundle is found and the first bad part named.
Bundles made before workflows existed have no ``workflow_runs``: they read as having
none, and verify as they did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from limit_graph.core.canonical import sha256_hex
from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import Execution, ProvenanceEntry, Session, WorkflowRun, utcnow
from limit_graph.storage.base import execution_draft, session_draft, workflow_run_draft
from limit_graph.storage.ledger import payload_digest, verify_entries

__all__ = ["BUNDLE_FORMAT", "ArchiveBundle", "build_bundle", "parse_bundle", "verify_bundle"]

BUNDLE_FORMAT = "limit-graph.archive/1"


class ArchiveBundle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["limit-graph.archive/1"]
    archived_at: datetime
    session: Session
    executions: list[Execution]
    workflow_runs: list[WorkflowRun] = Field(default_factory=list)
    entries: list[ProvenanceEntry]
    bundle_sha256: str


def build_bundle(
    session: Session,
    executions: list[Execution],
    entries: list[ProvenanceEntry],
    workflow_runs: list[WorkflowRun] | None = None,
) -> dict[str, Any]:
    """The bundle of a session as it is now: its records and every entry of its ledger."""
    body: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "archived_at": utcnow().isoformat().replace("+00:00", "Z"),
        "session": session.document(),
        "executions": [e.document() for e in executions],
        "workflow_runs": [r.document() for r in workflow_runs or []],
        "entries": [e.document() for e in entries],
    }
    return {**body, "bundle_sha256": sha256_hex(body)}


def parse_bundle(document: Any) -> ArchiveBundle:
    """Validate the bundle's shape and its ``bundle_sha256`` over the document as sent."""
    try:
        bundle = ArchiveBundle.model_validate(document)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidInput("not an archive bundle", errors) from None
    body = {k: v for k, v in document.items() if k != "bundle_sha256"}
    if sha256_hex(body) != bundle.bundle_sha256:
        raise _reject("bundle_sha256 does not match the bundle's content")
    return bundle


def _reject(detail: str) -> InvalidInput:
    return InvalidInput(f"archive bundle does not verify: {detail}")


def verify_bundle(bundle: ArchiveBundle) -> None:
    """Raise :class:`InvalidInput` naming the first record or entry that fails."""
    session_id = bundle.session.id
    for entry in bundle.entries:
        if entry.session_id != session_id:
            raise _reject(f"entry {entry.index} belongs to another session")
    problem = verify_entries(bundle.entries, contiguous=False)
    if problem:
        raise _reject(problem)
    by_index = {e.index: e for e in bundle.entries}
    session_entries = [e for e in bundle.entries if e.resource_type == "session"]
    if not session_entries:
        raise _reject("no ledger entry records the session")
    last = session_entries[-1]
    expected = session_draft(bundle.session, actor=last.actor, action=last.action).payload
    if payload_digest(expected, last.payload_salt) != last.payload_sha256:
        raise _reject(f"session record does not match its ledger entry {last.index}")
    for execution in bundle.executions:
        if execution.session_id != session_id:
            raise _reject(f"execution {execution.id} belongs to another session")
        index = execution.provenance_entry
        recorded = by_index.get(index) if index is not None else None
        if recorded is None or recorded.resource_id != str(execution.id):
            raise _reject(f"execution {execution.id} has no ledger entry in the bundle")
        payload = execution_draft(execution, actor=recorded.actor, action=recorded.action).payload
        if payload_digest(payload, recorded.payload_salt) != recorded.payload_sha256:
            raise _reject(
                f"execution {execution.id} does not match its ledger entry {recorded.index}"
            )
    _verify_workflow_runs(bundle)


def _verify_workflow_runs(bundle: ArchiveBundle) -> None:
    """Each run matches the last entry recorded for it, and every run the entries record
    is in the bundle (a run cannot be left out unnoticed)."""
    last_entries: dict[str, ProvenanceEntry] = {}
    for entry in bundle.entries:
        if entry.resource_type == "workflow_run":
            last_entries[entry.resource_id] = entry
    carried = {str(run.id) for run in bundle.workflow_runs}
    if len(carried) != len(bundle.workflow_runs):
        raise _reject("a workflow run is in the bundle twice")
    for run in bundle.workflow_runs:
        if run.session_id != bundle.session.id:
            raise _reject(f"workflow run {run.id} belongs to another session")
        recorded = last_entries.get(str(run.id))
        if recorded is None:
            raise _reject(f"workflow run {run.id} has no ledger entry in the bundle")
        payload = workflow_run_draft(run, actor=recorded.actor, action=recorded.action).payload
        if payload_digest(payload, recorded.payload_salt) != recorded.payload_sha256:
            raise _reject(f"workflow run {run.id} does not match its ledger entry {recorded.index}")
    missing = sorted(set(last_entries) - carried)
    if missing:
        raise _reject(f"workflow run {missing[0]} is in the ledger entries but not in the bundle")
