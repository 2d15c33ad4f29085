"""Records as the rows (and executemany parameters) the writers insert: a session and
its tags, an execution, a workflow run and a ledger entry, each with its document.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from typing import Any

from limit_graph.core.canonical import canonical_json
from limit_graph.core.models import Execution, ProvenanceEntry, Session, WorkflowRun
from limit_graph.storage.ledger import BuiltEntry, leaf_bytes
from limit_graph.storage.schema.columns import to_micros

__all__ = [
    "execution_changes",
    "execution_row",
    "ledger_entry",
    "ledger_row",
    "node_rows",
    "session_row",
    "tag_rows",
    "workflow_run_changes",
    "workflow_run_row",
]


def ledger_row(entry: ProvenanceEntry | BuiltEntry) -> dict[str, Any]:
    """An entry as its ``limit_ledger`` row: the leaf's bytes and the payload's canonical
    JSON as text, each exactly what its hash covers (a built entry's own texts, made
    when it was hashed)."""
    if isinstance(entry, BuiltEntry):
        fields, leaf, payload, leaf_hash = entry.entry, entry.leaf, entry.payload, entry.leaf_hash
    else:
        fields, leaf, leaf_hash = entry, leaf_bytes(entry).decode("utf-8"), None
        payload = canonical_json(entry.payload) if entry.payload is not None else None
    return {
        "idx": fields.index,
        "session_id": fields.session_id,
        "tenant": fields.tenant,
        "actor": fields.actor,
        "action": fields.action,
        "ts_us": to_micros(fields.timestamp),
        "leaf_hash": leaf_hash or base64.b64decode(fields.leaf_hash),
        "leaf": leaf,
        "erasable": fields.erasable,
        "payload": payload,
        "salt": fields.payload_salt,
    }


def ledger_entry(
    leaf: str, leaf_hash: bytes, payload: str | None, salt: str | None
) -> ProvenanceEntry:
    """The entry a ``limit_ledger`` row holds (its ``leaf``, ``leaf_hash``, ``payload``
    and ``salt`` columns, in that order)."""
    return ProvenanceEntry.model_validate(
        {
            **json.loads(leaf),
            "payload": json.loads(payload) if payload is not None else None,
            "payload_salt": salt,
            "leaf_hash": base64.b64encode(leaf_hash).decode("ascii"),
        }
    )


def node_rows(nodes: Iterable[tuple[tuple[int, int], bytes]]) -> list[dict[str, Any]]:
    """The ``limit_ledger_nodes`` rows of perfect subtrees an append completed; leaves
    (level 0) are the entries' own ``leaf_hash`` and are left out."""
    return [{"level": level, "idx": idx, "hash": h} for (level, idx), h in nodes if level]


def session_row(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "tenant": session.tenant,
        "state": session.state.value,
        "created_us": to_micros(session.created_at),
        "document": session.document(),
    }


def tag_rows(session: Session) -> list[dict[str, Any]]:
    return [{"session_id": session.id, "tag": tag} for tag in sorted(set(session.config.tags))]


def execution_row(execution: Execution, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """The row of ``execution``; ``document``, when the caller dumped it already, is its
    ``document()``."""
    return {
        "id": execution.id,
        "session_id": execution.session_id,
        "state": execution.state.value,
        "backend": execution.backend.value,
        "submitted_us": to_micros(execution.submitted_at),
        "idempotency_key": execution.idempotency_key,
        "document": execution.document() if document is None else document,
        "workflow_run_id": _run_id_of(execution),
    }


def execution_changes(
    execution: Execution, document: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The parameters of :data:`UPDATE_EXECUTIONS` for ``execution`` (``document`` as
    for :func:`execution_row`)."""
    return {
        "b_id": execution.id,
        "state": execution.state.value,
        "backend": execution.backend.value,
        "document": execution.document() if document is None else document,
        "workflow_run_id": _run_id_of(execution),
    }


def _run_id_of(execution: Execution) -> uuid.UUID | None:
    return execution.workflow.run_id if execution.workflow is not None else None


def workflow_run_row(run: WorkflowRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "session_id": run.session_id,
        "state": run.state.value,
        "created_us": to_micros(run.created_at),
        "document": run.document(),
    }


def workflow_run_changes(run: WorkflowRun) -> dict[str, Any]:
    """The parameters of :data:`UPDATE_WORKFLOW_RUNS` for ``run`` (its session and
    creation time never change)."""
    return {"b_id": run.id, "state": run.state.value, "document": run.document()}
