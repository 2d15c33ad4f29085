"""Group commit for execution records: many writers, one transaction per batch.

A commit costs a few database round trips whatever it holds, so the execution
records (and their ledger entries) that arrive while one batch commits are written
together by the next: one ledger-head lock, one multi-row insert per table, one
commit.  Each writer still waits for its own record to be committed before it is
answered, so durability is unchanged; under load the cost per record falls with the
batch size.  A batch that fails is retried one record at a time, so one bad record
fails alone.

The batch runs on a synchronous engine in one dedicated writer thread: a whole
transaction is one hop off the event loop, where the async driver would pay a loop
round trip per statement (measured here: ~0.5 ms each with aiosqlite through
SQLAlchemy's async layer, against ~10 µs for the statement itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from limit_graph.core.errors import StateDenied
from limit_graph.core.models import Execution, ProvenanceEntry, Session, SessionState
from limit_graph.storage import schema as t
from limit_graph.storage.base import execution_draft, session_draft
from limit_graph.storage.ledger import EntryDraft, LedgerHead, chain_entry

__all__ = ["ExecutionWrite", "GroupCommitter"]

MAX_BATCH = 512


@dataclass
class ExecutionWrite:
    """One record to write: an execution, a new session, or a bare ledger entry."""

    execution: Execution | None
    draft: EntryDraft | None = None
    new_session: Session | None = None
    actor: str = ""
    action: str = ""
    require_active_session: bool = False
    started: Execution | None = None
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommitter:
    def __init__(self, engine: Engine, write_lock: asyncio.Lock | None = None) -> None:
        self._engine = engine
        self._write_lock = write_lock
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="limit-writer")
        self._queue: asyncio.Queue[ExecutionWrite] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

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
                            write.done.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

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
        with self._engine.begin() as conn:
            return self._write(conn, batch)

    def _write(self, conn: Connection, batch: list[ExecutionWrite]) -> list[Any]:
        size, last_hash = conn.execute(t.LOCK_LEDGER_HEAD).one()
        head = LedgerHead(size, last_hash)
        executions = [w.execution for w in batch if w.execution is not None]
        ids = [e.id for e in executions]
        existing = (
            set((conn.scalars(select(t.executions.c.id).where(t.executions.c.id.in_(ids)))).all())
            if ids
            else set()
        )
        gated = {e.session_id for w in batch if w.require_active_session and (e := w.execution)}
        states: dict[uuid.UUID, str] = {}
        if gated:
            rows = conn.execute(
                select(t.sessions.c.id, t.sessions.c.state).where(t.sessions.c.id.in_(gated))
            )
            states = {row.id: row.state for row in rows}
        keyed: dict[tuple[uuid.UUID, str], Execution] = {}
        new_sessions: list[Session] = []
        results: list[Any] = []
        entries: list[ProvenanceEntry] = []
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for write in batch:
            execution = write.execution
            if write.new_session is not None:
                session = write.new_session
                entry = chain_entry(
                    head, session_draft(session, actor=write.actor, action=write.action)
                )
                head = LedgerHead.after(entry)
                entries.append(entry)
                states[session.id] = session.state.value
                new_sessions.append(session)
                results.append(session)
                continue
            if execution is None:
                assert write.draft is not None
                entry = chain_entry(head, write.draft)
                head = LedgerHead.after(entry)
                entries.append(entry)
                results.append(entry)
                continue
            is_new = execution.id not in existing
            if (
                write.require_active_session
                and states.get(execution.session_id) != SessionState.ACTIVE
            ):
                results.append(
                    StateDenied(f"session {execution.session_id} is not active", ["session-active"])
                )
                continue
            key = execution.idempotency_key
            if is_new and key is not None:
                earlier = keyed.get((execution.session_id, key))
                if earlier is None:
                    document = conn.scalar(t.execution_by_key(execution.session_id, key))
                    earlier = Execution.model_validate(document) if document is not None else None
                if earlier is not None:
                    results.append(earlier)
                    continue
            if write.started is not None:
                first = chain_entry(
                    head,
                    execution_draft(write.started, actor=write.actor, action="execution.started"),
                )
                head = LedgerHead.after(first)
                entries.append(first)
            entry = chain_entry(
                head, execution_draft(execution, actor=write.actor, action=write.action)
            )
            head = LedgerHead.after(entry)
            entries.append(entry)
            stored = execution.model_copy(update={"provenance_entry": entry.index})
            if is_new:
                existing.add(stored.id)
                inserts.append(t.execution_row(stored))
                if key is not None:
                    keyed[(stored.session_id, key)] = stored
            else:
                updates.append(t.execution_changes(stored))
            results.append(stored)
        if new_sessions:
            conn.execute(insert(t.sessions), [t.session_row(n) for n in new_sessions])
            tags = [row for n in new_sessions for row in t.tag_rows(n)]
            if tags:
                conn.execute(insert(t.session_tags), tags)
        if entries:
            conn.execute(insert(t.ledger), [t.ledger_row(e) for e in entries])
            conn.execute(t.move_ledger_head(head))
        if inserts:
            conn.execute(insert(t.executions), inserts)
        if updates:
            conn.execute(t.UPDATE_EXECUTIONS, updates)
        return results
