"""The storage protocol every backend implements, and the record/entry pairing rules.

Writes happen inside :meth:`Storage.transaction`; every ``save_*`` also appends a
provenance entry in the same transaction, so a record and its entry land together
or not at all.  Reads outside a transaction see committed data only.

Records and their entries: a session's entry has ``resource_type`` ``"session"``, an
execution's ``"execution"`` and a workflow run's ``"workflow_run"``; each payload is the
record's document (an execution's without its own entry index), so the last entry of a
record verifies the record as stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from limit_graph.core.errors import StateDenied
from limit_graph.core.models import (
    BackendKind,
    Execution,
    ExecutionState,
    ProvenanceEntry,
    Session,
    SessionState,
    WorkflowRun,
)
from limit_graph.storage.dispatch import DispatchQueue, QueueChange
from limit_graph.storage.identity import IdentityStore
from limit_graph.storage.keyring import KeyRing
from limit_graph.storage.leases import LeaseStore
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.ledger_store import LedgerStore
from limit_graph.storage.lineage import LineageStore
from limit_graph.storage.paging import Page
from limit_graph.storage.quotas import ClaimRefused, QuotaRefusal, QuotaStore, QuotaWrite
from limit_graph.storage.sealed import ledger_document, with_salts

__all__ = [
    "SessionFilter",
    "Storage",
    "StorageTransaction",
    "TransactionQuotas",
    "execution_draft",
    "inactive_session",
    "session_draft",
    "workflow_run_draft",
    "write_execution_in",
    "write_workflow_run_in",
]


@dataclass(frozen=True)
class SessionFilter:
    tenant: str | None = None
    state: SessionState | None = None
    tag: str | None = None
    exclude_state: SessionState | None = None


def session_draft(session: Session, *, actor: str, action: str) -> EntryDraft:
    return EntryDraft(
        actor=actor,
        action=action,
        resource_type="session",
        resource_id=str(session.id),
        session_id=session.id,
        payload=session.document(),
    )


def execution_draft(
    execution: Execution,
    *,
    actor: str,
    action: str,
    document: dict[str, Any] | None = None,
) -> EntryDraft:
    """The entry for an execution; its payload leaves out the entry's own index, and a
    sensitive execution's sealed fields are commitments (:mod:`~limit_graph.storage.sealed`).
    ``document``, when the caller dumped it already, is the execution's own
    ``document()`` (not a sensitive one's)."""
    payload = dict(document) if document is not None else ledger_document(execution)
    payload["provenance_entry"] = None
    return EntryDraft(
        actor=actor,
        action=action,
        resource_type="execution",
        resource_id=str(execution.id),
        session_id=execution.session_id,
        payload=payload,
    )


def workflow_run_draft(run: WorkflowRun, *, actor: str, action: str) -> EntryDraft:
    """The entry for a workflow run: its whole document, filed under its session."""
    return EntryDraft(
        actor=actor,
        action=action,
        resource_type="workflow_run",
        resource_id=str(run.id),
        session_id=run.session_id,
        payload=run.document(),
    )


def inactive_session(session_id: uuid.UUID) -> StateDenied:
    """The refusal of a write that needs an active session."""
    return StateDenied(f"session {session_id} is not active", ["session-active"])


def _require_active(session: Session | None, session_id: uuid.UUID) -> None:
    if session is None or session.state is not SessionState.ACTIVE:
        raise inactive_session(session_id)


class TransactionQuotas(Protocol):
    """A :class:`~limit_graph.storage.quotas.QuotaWrite` as a backend without batching
    applies it on the transaction of an execution's write."""

    def claim(self, execution_id: uuid.UUID) -> QuotaRefusal | None:
        """Take the write's claims for the execution, or none of them (the refusal)."""

    def settle(self, execution_id: uuid.UUID) -> None:
        """Settle what the execution holds with what the write says it used, if it does."""

    def release(self, execution_id: uuid.UUID) -> None:
        """Give back everything the execution holds."""


async def write_execution_in(
    tx: StorageTransaction,
    execution: Execution,
    *,
    actor: str,
    action: str,
    require_active_session: bool,
    started: Execution | None = None,
    quotas: TransactionQuotas | None = None,
) -> Execution | StateDenied | ClaimRefused:
    """:meth:`Storage.write_execution` on one transaction, for backends without batching.

    A refusal is returned, not raised, so that what the write did to the execution's
    quotas (given back) commits with the transaction; the caller raises it.
    """
    execution = with_salts(execution)
    started = with_salts(started, like=execution) if started is not None else None
    if require_active_session:
        session = await tx.get_session(execution.session_id)
        if session is None or session.state is not SessionState.ACTIVE:
            if quotas is not None:
                quotas.release(execution.id)
            return inactive_session(execution.session_id)
    if execution.idempotency_key is not None and await tx.get_execution(execution.id) is None:
        earlier = await tx.find_execution_by_key(execution.session_id, execution.idempotency_key)
        if earlier is not None:
            if quotas is not None:
                quotas.release(execution.id)
            return earlier
    if quotas is not None and (refusal := quotas.claim(execution.id)) is not None:
        return ClaimRefused(refusal)
    if started is not None:
        await tx.save_execution(started, actor=actor, action="execution.started")
    stored = await tx.save_execution(execution, actor=actor, action=action)
    if quotas is not None:
        quotas.settle(execution.id)
    return stored


async def write_workflow_run_in(
    tx: StorageTransaction,
    run: WorkflowRun,
    *,
    actor: str,
    action: str,
    require_active_session: bool,
) -> WorkflowRun:
    """:meth:`Storage.write_workflow_run` on one transaction, for backends without batching."""
    if require_active_session:
        _require_active(await tx.get_session(run.session_id), run.session_id)
    return await tx.save_workflow_run(run, actor=actor, action=action)


class StorageTransaction(Protocol):
    """Reads see this transaction's own writes; nothing is visible to others until commit."""

    async def get_session(self, session_id: uuid.UUID) -> Session | None: ...

    async def get_execution(self, execution_id: uuid.UUID) -> Execution | None: ...

    async def find_execution_by_key(
        self, session_id: uuid.UUID, idempotency_key: str
    ) -> Execution | None: ...

    async def session_executions(self, session_id: uuid.UUID) -> list[Execution]: ...

    async def session_entries(self, session_id: uuid.UUID) -> list[ProvenanceEntry]: ...

    async def get_entry(self, index: int) -> ProvenanceEntry | None: ...

    async def save_session(self, session: Session, *, actor: str, action: str) -> Session: ...

    async def save_execution(
        self, execution: Execution, *, actor: str, action: str
    ) -> Execution: ...

    async def get_workflow_run(self, run_id: uuid.UUID) -> WorkflowRun | None:
        """The run as this transaction sees it; on Postgres its row stays locked until the
        transaction ends (as :meth:`get_execution`'s does)."""

    async def session_workflow_runs(self, session_id: uuid.UUID) -> list[WorkflowRun]:
        """The session's workflow runs in (created_at, id) order."""

    async def save_workflow_run(self, run: WorkflowRun, *, actor: str, action: str) -> WorkflowRun:
        """Insert or replace the run and append its entry (:func:`workflow_run_draft`)."""

    async def save_archive(self, session_id: uuid.UUID, bundle: dict[str, Any]) -> None: ...

    async def append_entry(self, draft: EntryDraft) -> ProvenanceEntry: ...


class Storage(Protocol):
    """Durable records of sessions, executions, workflow runs, archives and the
    provenance ledger."""

    kind: str

    @property
    def identity(self) -> IdentityStore:
        """Tenants, principals, keys, signing keys, policies and grants, in this store."""

    @property
    def ledger(self) -> LedgerStore:
        """The ledger's tree, checkpoints, trail reads and erasure, in this store."""

    @property
    def quotas(self) -> QuotaStore:
        """Quota limits, counters and reservations, in this store."""

    @property
    def lineage(self) -> LineageStore:
        """The lineage graph derived from the ledger, and its followers' cursors."""

    @property
    def keyring(self) -> KeyRing:
        """The data keys sealing this store's sensitive records (wrapped by the KEK)."""

    @property
    def dispatch(self) -> DispatchQueue:
        """The executions waiting for runners and their leases, for every process
        sharing this store."""

    @property
    def leases(self) -> LeaseStore:
        """Named leases: which of the processes sharing this store runs a service."""

    async def start(self) -> None:
        """Open connections, create or migrate the schema, recover interrupted writes."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    def transaction(self) -> AbstractAsyncContextManager[StorageTransaction]: ...

    async def get_session(self, session_id: uuid.UUID) -> Session | None: ...

    async def list_sessions(
        self, filter: SessionFilter, *, limit: int, cursor: str | None
    ) -> Page[Session]: ...

    async def get_execution(self, execution_id: uuid.UUID) -> Execution | None: ...

    async def get_executions(
        self, execution_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Execution]:
        """The executions found among ``execution_ids``, in one read."""

    async def find_execution_by_key(
        self, session_id: uuid.UUID, idempotency_key: str
    ) -> Execution | None: ...

    async def list_executions(
        self,
        session_id: uuid.UUID,
        *,
        state: ExecutionState | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Execution]: ...

    async def count_executions(
        self, session_id: uuid.UUID
    ) -> dict[tuple[ExecutionState, str], int]:
        """Executions of a session by (state, backend)."""

    async def list_entries(
        self, *, session_id: uuid.UUID | None = None, after: int = -1, limit: int = 1000
    ) -> list[ProvenanceEntry]:
        """Ledger entries with index > ``after``, in index order."""

    async def last_change_at(self, session_id: uuid.UUID) -> datetime | None:
        """When the session or one of its executions last changed: its latest ledger
        entry's time; ``None`` if it has none."""

    async def ledger_size(self) -> int: ...

    async def get_archive(self, session_id: uuid.UUID) -> dict[str, Any] | None: ...

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
        relaxed: bool = False,
    ) -> Execution:
        """Save one execution and its entry in a transaction of its own (which the
        backend may share with concurrent writes: group commit).

        ``started`` is the same execution as it began, for work that finished before
        anything was written: its ``execution.started`` entry goes in first.

        A new execution whose idempotency key the session already used is not written;
        the earlier one is returned.  With ``require_active_session`` the write is
        refused (:class:`StateDenied`) unless the session is active when it commits.
        ``quota`` is what the write does to the execution's quotas, in the same
        transaction (:class:`~limit_graph.storage.quotas.QuotaWrite`): claims that do not
        fit raise :class:`~limit_graph.storage.quotas.ClaimRefused`, with nothing written.
        ``queue`` is what the write does to the execution's row of :attr:`dispatch`, in
        the same transaction (none when the write is refused or finds an earlier one).
        ``relaxed``: the commit need not wait for the disk (a record that, lost with the
        machine, is written again: ``running``); it is atomic and visible at once, and
        the next durable commit carries it to disk.
        """

    async def write_entry(self, draft: EntryDraft) -> ProvenanceEntry:
        """Append one ledger entry in a transaction of its own (may be group-committed)."""

    async def write_new_session(self, session: Session, *, actor: str, action: str) -> Session:
        """Insert a new session and its entry in a transaction of its own (may be
        group-committed)."""

    async def list_unfinished_executions(self, backends: Sequence[BackendKind]) -> list[Execution]:
        """Executions on those backends still ``queued`` or ``running``, oldest first
        (what a restarted dispatcher puts back in its queues)."""

    async def stale_reservations(self, before: datetime, *, limit: int = 100) -> list[uuid.UUID]:
        """The executions holding quota reservations taken before ``before`` that no
        write is left to settle: never recorded, or recorded final.  The longest held
        first, at most ``limit``."""

    async def get_workflow_run(self, run_id: uuid.UUID) -> WorkflowRun | None: ...

    async def list_workflow_runs(
        self, session_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> Page[WorkflowRun]:
        """The session's workflow runs in (created_at, id) order, a keyset page at a time."""

    async def list_unfinished_workflow_runs(self) -> list[WorkflowRun]:
        """Runs still ``pending`` or ``running``, in every session, oldest first (what a
        restarted workflow engine carries on)."""

    async def list_workflow_executions(self, run_id: uuid.UUID) -> list[Execution]:
        """The executions tagged with this run (``execution.workflow.run_id``), in
        (submitted_at, id) order."""

    async def write_workflow_run(
        self,
        run: WorkflowRun,
        *,
        actor: str,
        action: str,
        require_active_session: bool = False,
    ) -> WorkflowRun:
        """Save the run and its entry in a transaction of its own (which the backend may
        share with concurrent writes: group commit).

        With ``require_active_session`` the write is refused (:class:`StateDenied`) unless
        the session is active when it commits; then nothing is written.
        """

    async def get_value(self, namespace: str, key: str) -> dict[str, Any] | None:
        """A small document of the platform's own bookkeeping (cursors, cache entries);
        ``None`` when absent or expired.  Not part of the ledger."""

    async def put_value(
        self,
        namespace: str,
        key: str,
        value: dict[str, Any],
        *,
        expires_at: datetime | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """Insert or replace a bookkeeping document, durably; with ``only_if_absent``
        only insert it, ``False`` when one was there (an expired one counts as there
        until it is deleted)."""

    async def delete_expired(self, namespace: str | None, now: datetime) -> int:
        """Remove documents whose ``expires_at`` is at or before ``now``; how many went."""
