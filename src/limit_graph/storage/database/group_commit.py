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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, Engine, insert
from sqlalchemy import exc as sa_exc

from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import utcnow
from limit_graph.storage import schema as t
from limit_graph.storage.database.dispatch_statements import QueueStatements
from limit_graph.storage.database.statements import pipelined
from limit_graph.storage.database.write_batch import (
    Batch,
    ExecutionWrite,
    Unhashable,
    WriterStatements,
)
from limit_graph.storage.ledger import LedgerHead

__all__ = ["ExecutionWrite", "GroupCommitter"]

MAX_BATCH = 512
_TENANTS_KEPT = 100_000
"""How many sessions' tenants the writer remembers before it starts again."""


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
        self._statements = WriterStatements(engine.dialect)
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

    def _gather(self, conn: Connection, batch: list[ExecutionWrite]) -> tuple[Batch, list[Any]]:
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
        work = Batch(
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
            except Unhashable as unhashable:
                results.append(unhashable.error)
        return work, results

    def _store(self, conn: Connection, work: Batch) -> None:
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
    def _add(conn: Connection, work: Batch, write: ExecutionWrite) -> Any:
        """Add one write to the batch and return its answer; a refusal is returned, and
        :class:`Unhashable` raised before the write changed the batch."""
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
