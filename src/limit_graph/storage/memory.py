"""In-memory storage: dictionaries behind one write lock.

The reference implementation of the protocol and the base of the file backend:
a transaction (:mod:`~limit_graph.storage.memory_transaction`) stages its writes, and
the store applies them at commit, all or nothing.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from limit_graph.core.errors import Conflict
from limit_graph.core.models import (
    BackendKind,
    Execution,
    ExecutionState,
    ProvenanceEntry,
    Session,
    WorkflowRun,
    utcnow,
)
from limit_graph.core.sealing import KeyEncryptionKeys
from limit_graph.storage.base import SessionFilter, write_execution_in, write_workflow_run_in
from limit_graph.storage.dispatch import QueueChange
from limit_graph.storage.keyring import KeyRing
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.memory_dispatch import MemoryDispatchQueue
from limit_graph.storage.memory_identity import IdentityState, MemoryIdentityStore
from limit_graph.storage.memory_keyring import MemoryKeyRingBackend
from limit_graph.storage.memory_leases import MemoryLeaseStore
from limit_graph.storage.memory_ledger import MemoryLedger
from limit_graph.storage.memory_lineage import MemoryLineageStore
from limit_graph.storage.memory_quotas import MemoryQuotaStore, QuotaState
from limit_graph.storage.memory_transaction import MemoryTransaction, StagedWrites, run_key
from limit_graph.storage.paging import Page, SortKey, decode_cursor, encode_cursor
from limit_graph.storage.quotas import QuotaWrite
from limit_graph.storage.schema import to_micros

__all__ = ["MemoryStorage"]

T = TypeVar("T")


class MemoryStorage:
    """Everything in process memory; gone when the process ends."""

    kind = "memory"

    def __init__(
        self, *, keks: KeyEncryptionKeys | None = None, key_refresh_s: float = 30.0
    ) -> None:
        self._lock = asyncio.Lock()
        self._sessions: dict[uuid.UUID, Session] = {}
        self._executions: dict[uuid.UUID, Execution] = {}
        self._by_session: dict[uuid.UUID, list[uuid.UUID]] = {}
        self._by_key: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        self._workflow_runs: dict[uuid.UUID, WorkflowRun] = {}
        self._by_run: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._archives: dict[uuid.UUID, dict[str, Any]] = {}
        self._entries: list[ProvenanceEntry] = []
        self._ledger = self._make_ledger()
        self._values: dict[tuple[str, str], tuple[dict[str, Any], datetime | None]] = {}
        self._values_lock = asyncio.Lock()
        """One bookkeeping write at a time: ``only_if_absent`` checks and writes as one."""
        self._identity_state = IdentityState()
        self._identity = MemoryIdentityStore(self._identity_state, self.transaction)
        self._quota_state = QuotaState()
        self._quotas = MemoryQuotaStore(self._quota_state, self.transaction)
        self._lineage = MemoryLineageStore()
        self._dispatch = MemoryDispatchQueue(self._executions.get)
        self._leases = MemoryLeaseStore()
        self._keyring = KeyRing(
            MemoryKeyRingBackend(self.transaction, self._identity), keks, refresh_s=key_refresh_s
        )

    @property
    def identity(self) -> MemoryIdentityStore:
        return self._identity

    @property
    def ledger(self) -> MemoryLedger:
        return self._ledger

    def _make_ledger(self) -> MemoryLedger:
        return MemoryLedger(self._entries, self._lock)

    @property
    def quotas(self) -> MemoryQuotaStore:
        return self._quotas

    @property
    def dispatch(self) -> MemoryDispatchQueue:
        return self._dispatch

    @property
    def lineage(self) -> MemoryLineageStore:
        return self._lineage

    @property
    def leases(self) -> MemoryLeaseStore:
        """In memory, for the file backend too: one process owns a file store."""
        return self._leases

    @property
    def keyring(self) -> KeyRing:
        """Seals only what the token service gives it: the memory store holds its
        records in the clear (nothing of it is at rest)."""
        return self._keyring

    async def start(self) -> None:
        await self._keyring.start()

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        async with self._lock:
            tx = MemoryTransaction(self)
            yield tx
            if tx.staged:
                await self._persist(tx.staged)
                self._apply(tx.staged)

    async def _persist(self, staged: StagedWrites) -> None:
        """Make ``staged`` durable before it becomes visible; memory has nothing to do."""

    def _apply(self, staged: StagedWrites) -> None:
        for session in staged.sessions.values():
            self._sessions[session.id] = session
        for execution in staged.executions.values():
            earlier = self._executions.get(execution.id)
            if earlier is None:
                self._by_session.setdefault(execution.session_id, []).append(execution.id)
            elif earlier.workflow is not None:
                self._by_run[earlier.workflow.run_id].discard(execution.id)
            if execution.workflow is not None:
                self._by_run.setdefault(execution.workflow.run_id, set()).add(execution.id)
            if execution.idempotency_key is not None:
                self._by_key[(execution.session_id, execution.idempotency_key)] = execution.id
            self._executions[execution.id] = execution
        self._workflow_runs.update(staged.workflow_runs)
        self._archives.update(staged.archives)
        self._entries.extend(staged.entries)
        self._ledger.extend(staged.entries)
        self._identity_state.apply(staged.identity)
        self._quota_state.apply(staged.quotas)

    async def get_session(self, session_id: uuid.UUID) -> Session | None:
        return self._sessions.get(session_id)

    async def list_sessions(
        self, filter: SessionFilter, *, limit: int, cursor: str | None
    ) -> Page[Session]:
        matches = (
            s
            for s in self._sessions.values()
            if (filter.tenant is None or s.tenant == filter.tenant)
            and (filter.state is None or s.state == filter.state)
            and (filter.exclude_state is None or s.state != filter.exclude_state)
            and (filter.tag is None or filter.tag in s.config.tags)
        )
        return _page(matches, lambda s: (s.created_at, s.id), limit, cursor)

    async def get_execution(self, execution_id: uuid.UUID) -> Execution | None:
        return self._executions.get(execution_id)

    async def get_executions(
        self, execution_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Execution]:
        return {i: e for i in execution_ids if (e := self._executions.get(i)) is not None}

    async def find_execution_by_key(
        self, session_id: uuid.UUID, idempotency_key: str
    ) -> Execution | None:
        execution_id = self._by_key.get((session_id, idempotency_key))
        return self._executions.get(execution_id) if execution_id else None

    async def list_executions(
        self,
        session_id: uuid.UUID,
        *,
        state: ExecutionState | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Execution]:
        ids = self._by_session.get(session_id, [])
        matches = (
            e for e in (self._executions[i] for i in ids) if state is None or e.state == state
        )
        return _page(matches, lambda e: (e.submitted_at, e.id), limit, cursor)

    async def count_executions(
        self, session_id: uuid.UUID
    ) -> dict[tuple[ExecutionState, str], int]:
        counts: dict[tuple[ExecutionState, str], int] = {}
        for execution_id in self._by_session.get(session_id, []):
            execution = self._executions[execution_id]
            key = (execution.state, execution.backend.value)
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def list_entries(
        self, *, session_id: uuid.UUID | None = None, after: int = -1, limit: int = 1000
    ) -> list[ProvenanceEntry]:
        found: list[ProvenanceEntry] = []
        for entry in self._entries[after + 1 :]:
            if session_id is None or entry.session_id == session_id:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    async def last_change_at(self, session_id: uuid.UUID) -> datetime | None:
        last = next((e for e in reversed(self._entries) if e.session_id == session_id), None)
        return last.timestamp if last is not None else None

    async def ledger_size(self) -> int:
        return len(self._entries)

    async def get_archive(self, session_id: uuid.UUID) -> dict[str, Any] | None:
        archive = self._archives.get(session_id)
        return copy.deepcopy(archive) if archive is not None else None

    async def write_execution(
        self,
        execution: Execution,
        *,
        actor: str,
        action: str,
        require_active_session: bool = False,
        started: Execution | None = None,
        quota: QuotaWrite | None = None,
        queue: QueueChange | None = None,
        relaxed: bool = False,  # noqa: ARG002 - nothing here waits for a disk
    ) -> Execution:
        prepared = quota.prepared() if quota is not None else None
        async with self.transaction() as tx:
            written = await write_execution_in(
                tx,
                execution,
                actor=actor,
                action=action,
                require_active_session=require_active_session,
                started=started,
                quotas=self._quotas.staged(tx, prepared) if prepared is not None else None,
            )
        if isinstance(written, Exception):
            raise written
        if queue is not None and written.id == execution.id:
            self._dispatch.apply(queue)
        return written

    async def write_entry(self, draft: EntryDraft) -> ProvenanceEntry:
        async with self.transaction() as tx:
            return await tx.append_entry(draft)

    async def write_new_session(self, session: Session, *, actor: str, action: str) -> Session:
        async with self.transaction() as tx:
            if await tx.get_session(session.id) is not None:
                raise Conflict(f"session {session.id} exists")
            return await tx.save_session(session, actor=actor, action=action)

    async def list_unfinished_executions(self, backends: Sequence[BackendKind]) -> list[Execution]:
        wanted = set(backends)
        found = [
            e for e in self._executions.values() if e.backend in wanted and not e.state.is_final
        ]
        return sorted(found, key=lambda e: (e.submitted_at, e.id))

    async def stale_reservations(self, before: datetime, *, limit: int = 100) -> list[uuid.UUID]:
        cutoff = to_micros(before)
        stale: list[tuple[int, uuid.UUID]] = []
        for execution_id, held in self._quota_state.reservations.items():
            taken = min((h.taken_us for h in held), default=cutoff)
            execution = self._executions.get(execution_id)
            if taken < cutoff and (execution is None or execution.state.is_final):
                stale.append((taken, execution_id))
        return [execution_id for _, execution_id in sorted(stale)[:limit]]

    async def get_workflow_run(self, run_id: uuid.UUID) -> WorkflowRun | None:
        return self._workflow_runs.get(run_id)

    async def list_workflow_runs(
        self, session_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> Page[WorkflowRun]:
        matches = (r for r in self._workflow_runs.values() if r.session_id == session_id)
        return _page(matches, run_key, limit, cursor)

    async def list_unfinished_workflow_runs(self) -> list[WorkflowRun]:
        found = [r for r in self._workflow_runs.values() if not r.state.is_final]
        return sorted(found, key=run_key)

    async def list_workflow_executions(self, run_id: uuid.UUID) -> list[Execution]:
        found = (self._executions[i] for i in self._by_run.get(run_id, ()))
        return sorted(found, key=lambda e: (e.submitted_at, e.id))

    async def write_workflow_run(
        self,
        run: WorkflowRun,
        *,
        actor: str,
        action: str,
        require_active_session: bool = False,
    ) -> WorkflowRun:
        async with self.transaction() as tx:
            return await write_workflow_run_in(
                tx,
                run,
                actor=actor,
                action=action,
                require_active_session=require_active_session,
            )

    async def get_value(self, namespace: str, key: str) -> dict[str, Any] | None:
        found = self._values.get((namespace, key))
        if found is None or (found[1] is not None and found[1] <= utcnow()):
            return None
        return copy.deepcopy(found[0])

    async def put_value(
        self,
        namespace: str,
        key: str,
        value: dict[str, Any],
        *,
        expires_at: datetime | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        async with self._values_lock:
            if only_if_absent and await self.get_value(namespace, key) is not None:
                return False
            document = copy.deepcopy(value)
            await self._persist_value(namespace, key, document, expires_at)
            self._values[(namespace, key)] = (document, expires_at)
            return True

    async def _persist_value(
        self, namespace: str, key: str, value: dict[str, Any], expires_at: datetime | None
    ) -> None:
        """Make one bookkeeping document durable; memory has nothing to do."""

    async def delete_expired(self, namespace: str | None, now: datetime) -> int:
        gone = [
            (ns, key)
            for (ns, key), (_, expires_at) in self._values.items()
            if (namespace is None or ns == namespace)
            and expires_at is not None
            and expires_at <= now
        ]
        for ns, key in gone:
            del self._values[(ns, key)]
        await self._forget_values(gone)
        return len(gone)

    async def _forget_values(self, gone: list[tuple[str, str]]) -> None:
        """Remove deleted bookkeeping documents from durable storage; memory has none."""


def _page(items: Iterable[T], key: Any, limit: int, cursor: str | None) -> Page[T]:
    after: SortKey | None = decode_cursor(cursor) if cursor else None
    ordered = sorted((i for i in items if after is None or key(i) > after), key=key)
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return Page(chosen, encode_cursor(key(chosen[-1])) if more and chosen else None)
