"""The read side of the database store: every query outside a write transaction, on a
read-only connection, in keyset pages; sensitive documents opened on the way out.

:class:`~limit_graph.storage.database.store.DatabaseStorage` is these reads plus its
lifecycle and its writes (interactive transactions and the group-commit writer).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from limit_graph.core.models import (
    BackendKind,
    Execution,
    ExecutionState,
    ProvenanceEntry,
    Session,
    WorkflowRun,
    WorkflowRunState,
    utcnow,
)
from limit_graph.storage import schema as t
from limit_graph.storage.base import SessionFilter
from limit_graph.storage.database.engine import READ_ONLY
from limit_graph.storage.database.sealing import DatabaseSeals
from limit_graph.storage.paging import Page, SortKey, decode_cursor, encode_cursor

__all__ = ["DatabaseReads"]

T = TypeVar("T")


class DatabaseReads:
    """The store's queries; the store sets the engine (at start) and the seals."""

    _engine: AsyncEngine | None
    _seals: DatabaseSeals

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("storage not started")
        return self._engine

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.execute(text("SELECT 1"))

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            await conn.execution_options(**{READ_ONLY: True})
            yield conn

    async def get_session(self, session_id: uuid.UUID) -> Session | None:
        async with self._read() as conn:
            row = await conn.scalar(
                select(t.sessions.c.document).where(t.sessions.c.id == session_id)
            )
        return Session.model_validate(row) if row is not None else None

    async def list_sessions(
        self, filter: SessionFilter, *, limit: int, cursor: str | None
    ) -> Page[Session]:
        query = select(t.sessions.c.document)
        if filter.tenant is not None:
            query = query.where(t.sessions.c.tenant == filter.tenant)
        if filter.state is not None:
            query = query.where(t.sessions.c.state == filter.state.value)
        if filter.exclude_state is not None:
            query = query.where(t.sessions.c.state != filter.exclude_state.value)
        if filter.tag is not None:
            tagged = select(t.session_tags.c.session_id).where(t.session_tags.c.tag == filter.tag)
            query = query.where(t.sessions.c.id.in_(tagged))
        items = await self._keyset_page(
            query, t.sessions.c.created_us, t.sessions.c.id, limit=limit, cursor=cursor
        )
        return _page([Session.model_validate(r) for r in items], limit, _session_key)

    async def get_execution(self, execution_id: uuid.UUID) -> Execution | None:
        async with self._read() as conn:
            row = await conn.scalar(
                select(t.executions.c.document).where(t.executions.c.id == execution_id)
            )
        return await self._seals.open_execution(row) if row is not None else None

    async def get_executions(
        self, execution_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Execution]:
        if not execution_ids:
            return {}
        async with self._read() as conn:
            rows = await conn.execute(
                select(t.executions.c.id, t.executions.c.document).where(
                    t.executions.c.id.in_(list(execution_ids))
                )
            )
            found = rows.all()
        return {row.id: await self._seals.open_execution(row.document) for row in found}

    async def find_execution_by_key(
        self, session_id: uuid.UUID, idempotency_key: str
    ) -> Execution | None:
        async with self._read() as conn:
            row = await conn.scalar(t.execution_by_key(session_id, idempotency_key))
        return await self._seals.open_execution(row) if row is not None else None

    async def list_executions(
        self,
        session_id: uuid.UUID,
        *,
        state: ExecutionState | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Execution]:
        c = t.executions.c
        query = select(c.document).where(c.session_id == session_id)
        if state is not None:
            query = query.where(c.state == state.value)
        items = await self._keyset_page(query, c.submitted_us, c.id, limit=limit, cursor=cursor)
        return _page(await self._seals.open_executions(items), limit, _execution_key)

    async def _keyset_page(
        self,
        query: Select[Any],
        micros_column: ColumnElement[int],
        id_column: ColumnElement[uuid.UUID],
        *,
        limit: int,
        cursor: str | None,
    ) -> list[Any]:
        """Up to ``limit + 1`` documents after ``cursor`` in (time, id) order."""
        if cursor:
            stamp, last_id = decode_cursor(cursor)
            micros = t.to_micros(stamp)
            query = query.where(
                (micros_column > micros) | ((micros_column == micros) & (id_column > last_id))
            )
        query = query.order_by(micros_column, id_column).limit(limit + 1)
        async with self._read() as conn:
            return list(await conn.scalars(query))

    async def count_executions(
        self, session_id: uuid.UUID
    ) -> dict[tuple[ExecutionState, str], int]:
        c = t.executions.c
        query = (
            select(c.state, c.backend, func.count())
            .where(c.session_id == session_id)
            .group_by(c.state, c.backend)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return {(ExecutionState(state), backend): n for state, backend, n in rows}

    async def last_change_at(self, session_id: uuid.UUID) -> datetime | None:
        query = (
            select(t.ledger.c.ts_us)
            .where(t.ledger.c.session_id == session_id)
            .order_by(t.ledger.c.idx.desc())
            .limit(1)
        )
        async with self._read() as conn:
            micros = await conn.scalar(query)
        return t.from_micros(micros) if micros is not None else None

    async def list_entries(
        self, *, session_id: uuid.UUID | None = None, after: int = -1, limit: int = 1000
    ) -> list[ProvenanceEntry]:
        c = t.ledger.c
        query = select(*t.ENTRY_COLUMNS).where(c.idx > after)
        if session_id is not None:
            query = query.where(c.session_id == session_id)
        query = query.order_by(c.idx).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [t.ledger_entry(*row) for row in rows]

    async def ledger_size(self) -> int:
        async with self._read() as conn:
            size = await conn.scalar(select(t.ledger_head.c.size).where(t.ledger_head.c.id == 1))
        return int(size or 0)

    async def get_archive(self, session_id: uuid.UUID) -> dict[str, Any] | None:
        async with self._read() as conn:
            row = await conn.scalar(
                select(t.archives.c.document).where(t.archives.c.session_id == session_id)
            )
        return await self._seals.open_archive(session_id, row) if row is not None else None

    async def list_unfinished_executions(self, backends: Sequence[BackendKind]) -> list[Execution]:
        c = t.executions.c
        query = (
            select(c.document)
            .where(
                c.state.in_([ExecutionState.QUEUED.value, ExecutionState.RUNNING.value]),
                c.backend.in_([b.value for b in backends]),
            )
            .order_by(c.submitted_us, c.id)
        )
        async with self._read() as conn:
            documents = list(await conn.scalars(query))
        return await self._seals.open_executions(documents)

    async def stale_reservations(self, before: datetime, *, limit: int = 100) -> list[uuid.UUID]:
        held, runs = t.quota_reservations.c, t.executions.c
        taken = func.min(held.created_us)
        unfinished = [ExecutionState.QUEUED.value, ExecutionState.RUNNING.value]
        query = (
            select(held.execution_id)
            .select_from(t.quota_reservations.outerjoin(t.executions, runs.id == held.execution_id))
            .where(or_(runs.id.is_(None), runs.state.not_in(unfinished)))
            .group_by(held.execution_id)
            .having(taken < t.to_micros(before))
            .order_by(taken, held.execution_id)
            .limit(limit)
        )
        async with self._read() as conn:
            return list(await conn.scalars(query))

    async def get_workflow_run(self, run_id: uuid.UUID) -> WorkflowRun | None:
        async with self._read() as conn:
            row = await conn.scalar(
                select(t.workflow_runs.c.document).where(t.workflow_runs.c.id == run_id)
            )
        return WorkflowRun.model_validate(row) if row is not None else None

    async def list_workflow_runs(
        self, session_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> Page[WorkflowRun]:
        c = t.workflow_runs.c
        query = select(c.document).where(c.session_id == session_id)
        items = await self._keyset_page(query, c.created_us, c.id, limit=limit, cursor=cursor)
        return _page([WorkflowRun.model_validate(r) for r in items], limit, _run_key)

    async def list_unfinished_workflow_runs(self) -> list[WorkflowRun]:
        c = t.workflow_runs.c
        unfinished = [WorkflowRunState.PENDING.value, WorkflowRunState.RUNNING.value]
        query = select(c.document).where(c.state.in_(unfinished)).order_by(c.created_us, c.id)
        async with self._read() as conn:
            return [WorkflowRun.model_validate(d) for d in await conn.scalars(query)]

    async def list_workflow_executions(self, run_id: uuid.UUID) -> list[Execution]:
        c = t.executions.c
        query = select(c.document).where(c.workflow_run_id == run_id).order_by(c.submitted_us, c.id)
        async with self._read() as conn:
            documents = list(await conn.scalars(query))
        return await self._seals.open_executions(documents)

    async def get_value(self, namespace: str, key: str) -> dict[str, Any] | None:
        c = t.kv.c
        query = select(c.document).where(
            c.namespace == namespace,
            c.key == key,
            or_(c.expires_us.is_(None), c.expires_us > t.to_micros(utcnow())),
        )
        async with self._read() as conn:
            found = await conn.scalar(query)
        return dict(found) if found is not None else None


def _session_key(session: Session) -> SortKey:
    return session.created_at, session.id


def _execution_key(execution: Execution) -> SortKey:
    return execution.submitted_at, execution.id


def _run_key(run: WorkflowRun) -> SortKey:
    return run.created_at, run.id


def _page(items: list[T], limit: int, key: Callable[[T], SortKey]) -> Page[T]:
    """The first ``limit`` items, and a cursor when a further one was fetched."""
    more = len(items) > limit
    chosen = items[:limit]
    return Page(chosen, encode_cursor(key(chosen[-1])) if more else None)
