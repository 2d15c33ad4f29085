"""Group commit for execution records: many writers, one transaction per batch.

A commit costs a few database round trips whatever it holds, so the execution
records, workflow runs, new sessions and bare entries (each record with its ledger
entries) that arrive while one batch commits are written
together by the next: one ledger-head lock, one multi-row insert per table, one
commit.  Each writer still waits for its own record to be committed before it is
answered, so durability is unchanged; under load the cost per record falls with the
batch size.

One bad record fails alone.  A record whose entries cannot be built (a document with
no canonical JSON form, say) is answered with that error and left out of its batch,
which commits without it; a batch the database refuses is retried one record at a
time, so only the record it refuses fails (a data error as :class:`InvalidInput`).

An execution's quotas change in the transaction that records it
(:mod:`~limit_graph.storage.database.quota_statements`): its claims are taken before
its record joins the batch, and a final record settles its reservations; a claim that
does not fit answers that write with :class:`ClaimRefused`, and the batch commits
without it.  Reserving and settling with no record are writes of their own, batched
with the rest.  A batch of nothing but reservations commits without waiting for the disk
(SQLite's ``synchronous=NORMAL`` in WAL mode, Postgres's ``synchronous_commit = off``):
it is as visible to every other process as any commit, and the next durable commit --
its execution's record, at the latest -- carries it to disk, since both logs are written
in order.  A crash before that loses the reservation with the only trace of its
execution, as giving it back would have.  So does a batch of nothing but relaxed
records (an execution written ``running`` as a runner claims it: lost with the
machine, the execution is still ``queued`` and runs again), and reservations.

An execution's row of the dispatch queue changes in its record's transaction too
(:class:`~limit_graph.storage.database.dispatch.QueueStatements`), with the signal that
wakes the other processes.

The batch runs on a synchronous engine in one dedicated writer thread: a whole
transaction is one hop off the event loop, where the async driver would pay a loop
round trip per statement (measured here: ~0.5 ms each with aiosqlite through
SQLAlchemy's async layer, against ~10 µs for the statement itself).

The statements of every batch (lock and move the ledger head, insert entries, insert
and update executions) are compiled once for the engine's dialect and sent to the
driver's cursor with the parameters SQLAlchemy's own column types would bind
(:mod:`~limit_graph.storage.database.statements`): a batch of one record (a lone
request) paid SQLAlchemy's ~0.15 ms of compiling six times.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, insert, text
from sqlalchemy import exc as sa_exc

from limit_graph.core.errors import InvalidInput, StateDenied
from limit_graph.core.models import (
    Execution,
    ProvenanceEntry,
    Session,
    SessionState,
    WorkflowRun,
    utcnow,
)
from limit_graph.storage import schema as t
from limit_graph.storage.base import (
    execution_draft,
    inactive_session,
    session_draft,
    workflow_run_draft,
)
from limit_graph.storage.database.dispatch_statements import QueueStatements
from limit_graph.storage.database.ledger_append import LedgerAppend
from limit_graph.storage.database.quota_statements import QuotaStatements
from limit_graph.storage.database.statements import Lookup, Prepared, pipelined
from limit_graph.storage.dispatch import QueueChange
from limit_graph.storage.ledger import BuiltEntry, EntryDraft, LedgerHead, NodeRow, build_entry
from limit_graph.storage.quotas import ClaimRefused, PreparedQuotaWrite
from limit_graph.storage.sealed import SealedRecord

__all__ = ["ExecutionWrite", "GroupCommitter"]

MAX_BATCH = 512
_TENANTS_KEPT = 100_000
"""How many sessions' tenants the writer remembers before it starts again."""


class _Statements:
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


def _entries(
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


class _Unhashable(Exception):
    """A record whose entries cannot be built; it fails alone with ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Batch:
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
        :class:`_Unhashable` and leaves the batch as it was."""
        return self.keep(self.chain(drafts))

    def chain(self, drafts: Callable[[], list[EntryDraft]]) -> list[BuiltEntry]:
        """One record's entries, following the batch's, not yet kept; :class:`_Unhashable`
        for a record whose documents cannot be built or hashed."""
        try:
            return _entries(self.head.size, drafts(), self.tenants)
        except Exception as exc:
            raise _Unhashable(exc) from exc

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

        def drafts() -> list[EntryDraft]:
            final = execution_draft(execution, actor=write.actor, action=write.action)
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
        row = t.execution_row(stored) if is_new else t.execution_changes(stored)
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


class GroupCommitter:
    def __init__(
        self,
        engine: Engine,
        write_lock: asyncio.Lock | None = None,
        queue: QueueStatements | None = None,
    ) -> None:
        self._engine = engine
        self._queue_statements = queue
        self._write_lock = write_lock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="limit-writer")
        self._queue: asyncio.Queue[ExecutionWrite] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._statements = _Statements(engine.dialect)
        self._is_sqlite = engine.dialect.name == "sqlite"
        self._tenants: dict[uuid.UUID, str] = {}
        self.record_entries = True
        """Whether executions are written with their ledger entries: always, but in
        ``bench/ledger``'s measure of what the ledger costs an ``echo`` execute, which
        turns it off to time the same writes without (the head's lock, the entries'
        drafts, hashes and rows, the tree's nodes).  Nothing in the platform sets it;
        sessions, workflow runs and bare entries are written with theirs regardless."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="limit-group-commit")

    async def close(self) -> None:
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._thread.shutdown(wait=True)

    async def submit(self, write: ExecutionWrite) -> Any:
        if self._task is None or self._task.done():
            raise RuntimeError("storage is not started")
        await self._queue.put(write)
        return await write.done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit_batch(batch)
            except Exception:
                for write in batch:
                    try:
                        await self._commit_batch([write])
                    except Exception as exc:
                        if not write.done.done():
                            write.done.set_exception(self._refusal(exc))
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _refusal(self, exc: Exception) -> Exception:
        """What the caller of a record the database refused is told: the driver's own
        error, whether the statement raised it or (its writes sent pipelined) the
        commit; a data error (SQLSTATE class 22, such as a NUL in a Postgres text
        column) is the record's own fault, so it is :class:`InvalidInput`."""
        dbapi = self._engine.dialect.loaded_dbapi
        cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
        if not isinstance(cause, dbapi.DataError):
            return cause if isinstance(cause, Exception) else exc
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
        refused = InvalidInput(f"the database cannot store this record: {reason}")
        refused.__cause__ = exc
        return refused

    async def _commit_batch(self, batch: list[ExecutionWrite]) -> None:
        loop = asyncio.get_running_loop()
        async with self._write_lock or contextlib.nullcontext():
            results = await loop.run_in_executor(self._thread, self._commit_sync, batch)
        for write, result in zip(batch, results, strict=True):
            if write.done.done():
                continue
            if isinstance(result, Exception):
                write.done.set_exception(result)
            else:
                write.done.set_result(result)

    def _commit_sync(self, batch: list[ExecutionWrite]) -> list[Any]:
        try:
            return self._commit_once(batch)
        except Exception:
            if not self._statements.ledger.forget():
                raise
            # It extended the head it had left, unread: another writer may have moved it.
            return self._commit_once(batch)

    def _commit_once(self, batch: list[ExecutionWrite]) -> list[Any]:
        """One transaction for the batch: its reads and claims, each answered as it
        runs, then its writes sent together (:func:`pipelined`), then the commit."""
        durable = not all(w.is_reservation or w.relaxed or w.op is not None for w in batch)
        with self._engine.connect() as conn:
            if not durable and self._is_sqlite:  # only outside a transaction; FULL after
                self._sqlite_synchronous(conn, "NORMAL")
            try:
                with conn.begin():
                    if not durable and not self._is_sqlite:
                        self._statements.no_wait_for_disk.execute(conn, [{}])
                    work, results = self._gather(conn, batch)
                    with pipelined(conn):  # its end waits for them, and raises their error
                        self._store(conn, work)
                    if work.queue_changes and self._queue_statements is not None:
                        self._queue_statements.apply(conn, work.queue_changes)
            finally:
                if not durable and self._is_sqlite:
                    self._sqlite_synchronous(conn, "FULL")
        if work.entries:
            self._statements.ledger.committed(work.head)
        return results

    @staticmethod
    def _sqlite_synchronous(conn: Connection, level: str) -> None:
        with contextlib.closing(conn.connection.cursor()) as cursor:
            cursor.execute(f"PRAGMA synchronous={level}")

    def _gather(self, conn: Connection, batch: list[ExecutionWrite]) -> tuple[_Batch, list[Any]]:
        """What the batch writes, in ``conn``'s transaction (the reads it needs and the
        quota claims, whose answers decide), and each write's answer."""
        sql = self._statements
        recorded = any(
            w.quota_only is None and w.op is None and (self.record_entries or w.execution is None)
            for w in batch
        )
        head = sql.ledger.head(conn) if recorded else LedgerHead()
        executions = list(dict.fromkeys(w.execution.id for w in batch if w.execution))
        runs = list(dict.fromkeys(w.workflow_run.id for w in batch if w.workflow_run))
        gated = list(dict.fromkeys(s for w in batch if (s := w.gated_session) is not None))
        found = set(sql.executions_found.find(conn, executions)) if executions else set()
        found_runs = set(sql.runs_found.find(conn, runs)) if runs else set()
        states = (
            {key: row[0] for key, row in sql.session_states.find(conn, gated).items()}
            if gated
            else {}
        )
        work = _Batch(
            head,
            (head.size, head.edge_bytes()),
            found,
            found_runs,
            states,
            sql.quotas,
            t.to_micros(utcnow()),
            self._tenants_of(conn, batch),
            self.record_entries,
        )
        results: list[Any] = []
        for write in batch:
            try:
                results.append(self._add(conn, work, write))
            except _Unhashable as unhashable:
                results.append(unhashable.error)
        return work, results

    def _store(self, conn: Connection, work: _Batch) -> None:
        """Write what :meth:`_gather` gathered: statements whose answers nobody reads."""
        sql = self._statements
        if work.new_sessions:
            conn.execute(insert(t.sessions), [t.session_row(n) for n in work.new_sessions])
            tags = [row for n in work.new_sessions for row in t.tag_rows(n)]
            if tags:
                conn.execute(insert(t.session_tags), tags)
        if work.entries:
            entry_rows = [t.ledger_row(e) for e in work.entries]
            sql.ledger.append(conn, entry_rows, work.nodes, work.head, work.was)
        for statement, rows in (
            (sql.insert_executions, work.inserts),
            (sql.update_executions, work.updates),
            (sql.insert_runs, work.run_inserts),
            (sql.update_runs, work.run_updates),
        ):
            if rows:
                statement.execute(conn, rows)

    def _tenants_of(self, conn: Connection, batch: list[ExecutionWrite]) -> dict[uuid.UUID, str]:
        """The tenants of the sessions the batch's entries belong to (a session's tenant
        never changes, so those seen before are remembered)."""
        wanted: set[uuid.UUID] = set()
        for write in batch:
            record = write.execution or write.workflow_run
            if record is not None:
                wanted.add(record.session_id)
            elif write.draft is not None and write.draft.session_id is not None:
                wanted.add(write.draft.session_id)
        unknown = [s for s in wanted if s not in self._tenants]
        if unknown:
            if len(self._tenants) > _TENANTS_KEPT:
                self._tenants.clear()
            found = self._statements.session_tenants.find(conn, unknown)
            self._tenants.update({key: row[0] for key, row in found.items()})
        return {s: self._tenants[s] for s in wanted if s in self._tenants}

    @staticmethod
    def _add(conn: Connection, work: _Batch, write: ExecutionWrite) -> Any:
        """Add one write to the batch and return its answer; a refusal is returned, and
        :class:`_Unhashable` raised before the write changed the batch."""
        if write.new_session is not None:
            return work.add_session(write.new_session, write)
        if write.quota_only is not None:
            return work.quota_only(conn, write)
        if write.op is not None:
            return write.op(conn)
        if write.execution is None and write.workflow_run is None:
            draft = write.draft
            assert draft is not None
            return work.append(lambda: [draft])
        refused = work.refused(write)
        if refused is not None:
            work.release(conn, write)
            return refused
        if write.workflow_run is not None:
            return work.add_workflow_run(write.workflow_run, write)
        assert write.execution is not None
        return work.add_execution(conn, write.execution, write)
