"""The memory store's transaction: what it stages, and how it reads through to the
committed state.

A transaction holds the store's write lock from start to commit; every read it makes
sees its own staged writes over the committed ones, and nothing it stages is visible to
others until the store (:class:`~limit_graph.storage.memory.MemoryStorage`) applies it
whole.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from limit_graph.core.models import Execution, ProvenanceEntry, Session, WorkflowRun
from limit_graph.storage.base import execution_draft, session_draft, workflow_run_draft
from limit_graph.storage.ledger import EntryDraft, make_entry
from limit_graph.storage.memory_identity import IdentityWrites
from limit_graph.storage.memory_quotas import QuotaWrites
from limit_graph.storage.paging import SortKey
from limit_graph.storage.sealed import with_salts

if TYPE_CHECKING:
    from limit_graph.storage.memory import MemoryStorage

__all__ = ["MemoryTransaction", "StagedWrites", "run_key"]


@dataclass
class StagedWrites:
    """What one transaction wrote; applied to the committed state on success."""

    sessions: dict[uuid.UUID, Session] = field(default_factory=dict)
    executions: dict[uuid.UUID, Execution] = field(default_factory=dict)
    workflow_runs: dict[uuid.UUID, WorkflowRun] = field(default_factory=dict)
    archives: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    entries: list[ProvenanceEntry] = field(default_factory=list)
    identity: IdentityWrites = field(default_factory=IdentityWrites)
    quotas: QuotaWrites = field(default_factory=QuotaWrites)

    def __bool__(self) -> bool:
        return bool(
            self.sessions
            or self.executions
            or self.workflow_runs
            or self.archives
            or self.entries
            or self.identity
            or self.quotas
        )


class MemoryTransaction:
    """:class:`~limit_graph.storage.base.StorageTransaction` of the memory store."""

    def __init__(self, store: MemoryStorage) -> None:
        self._store = store
        self.staged = StagedWrites()

    @property
    def identity(self) -> IdentityWrites:
        """Where :class:`MemoryIdentityStore` stages its writes."""
        return self.staged.identity

    @property
    def quotas(self) -> QuotaWrites:
        """Where :class:`MemoryQuotaStore` stages its writes."""
        return self.staged.quotas

    async def get_session(self, session_id: uuid.UUID) -> Session | None:
        return self.staged.sessions.get(session_id) or self._store._sessions.get(session_id)

    async def get_execution(self, execution_id: uuid.UUID) -> Execution | None:
        found = self.staged.executions.get(execution_id)
        return found or self._store._executions.get(execution_id)

    async def find_execution_by_key(
        self, session_id: uuid.UUID, idempotency_key: str
    ) -> Execution | None:
        for execution in self.staged.executions.values():
            if execution.session_id == session_id and execution.idempotency_key == idempotency_key:
                return execution
        execution_id = self._store._by_key.get((session_id, idempotency_key))
        return self._store._executions.get(execution_id) if execution_id else None

    async def session_executions(self, session_id: uuid.UUID) -> list[Execution]:
        ids = list(self._store._by_session.get(session_id, []))
        ids += [
            e.id
            for e in self.staged.executions.values()
            if e.session_id == session_id and e.id not in self._store._executions
        ]
        found = [await self.get_execution(i) for i in ids]
        return sorted((e for e in found if e), key=lambda e: (e.submitted_at, e.id))

    async def session_entries(self, session_id: uuid.UUID) -> list[ProvenanceEntry]:
        entries = self._store._entries + self.staged.entries
        return [e for e in entries if e.session_id == session_id]

    async def get_entry(self, index: int) -> ProvenanceEntry | None:
        entries = self._store._entries + self.staged.entries
        return entries[index] if 0 <= index < len(entries) else None

    async def append_entry(self, draft: EntryDraft) -> ProvenanceEntry:
        tenant = None
        if draft.tenant is None and draft.session_id is not None:
            session = await self.get_session(draft.session_id)
            tenant = session.tenant if session is not None else None
        index = len(self._store._entries) + len(self.staged.entries)
        entry = make_entry(index, draft, tenant=tenant)
        self.staged.entries.append(entry)
        return entry

    async def save_session(self, session: Session, *, actor: str, action: str) -> Session:
        await self.append_entry(session_draft(session, actor=actor, action=action))
        self.staged.sessions[session.id] = session
        return session

    async def save_execution(self, execution: Execution, *, actor: str, action: str) -> Execution:
        execution = with_salts(execution)
        entry = await self.append_entry(execution_draft(execution, actor=actor, action=action))
        stored = execution.model_copy(update={"provenance_entry": entry.index})
        self.staged.executions[stored.id] = stored
        return stored

    async def get_workflow_run(self, run_id: uuid.UUID) -> WorkflowRun | None:
        return self.staged.workflow_runs.get(run_id) or self._store._workflow_runs.get(run_id)

    async def session_workflow_runs(self, session_id: uuid.UUID) -> list[WorkflowRun]:
        runs = {r.id: r for r in self._store._workflow_runs.values() if r.session_id == session_id}
        runs.update(
            (r.id, r) for r in self.staged.workflow_runs.values() if r.session_id == session_id
        )
        return sorted(runs.values(), key=run_key)

    async def save_workflow_run(self, run: WorkflowRun, *, actor: str, action: str) -> WorkflowRun:
        await self.append_entry(workflow_run_draft(run, actor=actor, action=action))
        self.staged.workflow_runs[run.id] = run
        return run

    async def save_archive(self, session_id: uuid.UUID, bundle: dict[str, Any]) -> None:
        self.staged.archives[session_id] = copy.deepcopy(bundle)


def run_key(run: WorkflowRun) -> SortKey:
    """The order workflow runs are listed in: by creation, then id."""
    return run.created_at, run.id
