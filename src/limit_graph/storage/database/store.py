"""Database storage on SQLAlchemy 2 (async): SQLite and Postgres through the same code.

Migrations (Alembic, ``storage/migrations``) run on start, under an advisory lock on
Postgres so that several API replicas may start at once.  Interactive transactions
(:class:`~limit_graph.storage.database.transaction.DatabaseTransaction`) serve the
services' multi-record writes; single-record writes go through the group-commit writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    create_engine,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from limit_graph.core.errors import ConfigError
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
from limit_graph.core.sealing import KeyEncryptionKeys
from limit_graph.storage import schema as t
from limit_graph.storage.base import SessionFilter
from limit_graph.storage.database.engine import (
    MIGRATION_LOCK_ID,
    READ_ONLY,
    configure_sqlite,
    run_migrations,
    sync_driver,
)
from limit_graph.storage.database.identity import DatabaseIdentityStore
from limit_graph.storage.database.keyring import DatabaseKeyRingBackend
from limit_graph.storage.database.quotas import DatabaseQuotaStore
from limit_graph.storage.database.sealing import DatabaseSeals
from limit_graph.storage.database.transaction import DatabaseTransaction
from limit_graph.storage.group_commit import ExecutionWrite, GroupCommitter
from limit_graph.storage.keyring import KeyRing
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.paging import Page, SortKey, decode_cursor, encode_cursor
from limit_graph.storage.sealed import SealedRecord, with_salts

__all__ = ["DatabaseStorage"]

T = TypeVar("T")


class DatabaseStorage:
    """Records in SQLite (the embedded default) or Postgres."""

    kind = "database"

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        keks: KeyEncryptionKeys | None = None,
        key_refresh_s: float = 30.0,
    ) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.kind = "sqlite" if self.is_sqlite else "postgres"
        self._engine: AsyncEngine | None = None
        self._committer: GroupCommitter | None = None
        self._writer: Engine | None = None
        # One writer at a time within this process on SQLite: waiting on a lock is
        # cheaper than SQLite's busy handler, which sleeps and polls.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._echo = echo
        self._identity = DatabaseIdentityStore(
            self.transaction, self._read, is_sqlite=self.is_sqlite
        )
        self._quotas = DatabaseQuotaStore(self.transaction, self._read, is_sqlite=self.is_sqlite)
        self._keyring = KeyRing(
            DatabaseKeyRingBackend(self.transaction, self._read), keks, refresh_s=key_refresh_s
        )
        self._seals = DatabaseSeals(self._keyring, self._read)
        """Sensitive executions and archives are sealed in their rows."""

    @property
    def identity(self) -> DatabaseIdentityStore:
        return self._identity

    @property
    def quotas(self) -> DatabaseQuotaStore:
        return self._quotas

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("storage not started")
        return self._engine

    async def start(self) -> None:
        if self.is_sqlite:
            if self.url.database in (None, "", ":memory:"):
                raise ConfigError(
                    "an in-memory SQLite URL is not supported: use storage type 'memory', "
                    "or a SQLite file"
                )
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"echo": self._echo}
        if not self.is_sqlite:
            options.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        engine = create_async_engine(self.url, **options)
        writer = create_engine(self.url.set(drivername=sync_driver(self.url)), **options)
        if self.is_sqlite:
            configure_sqlite(engine.sync_engine)
            configure_sqlite(writer)
        self._engine = engine
        self._writer = writer
        async with engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
            await conn.run_sync(run_migrations)
        self._committer = GroupCommitter(writer, self._write_lock)
        self._committer.start()
        await self._keyring.start()

    async def close(self) -> None:
        if self._committer is not None:
            await self._committer.close()
            self._committer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._writer is not None:
            self._writer.dispose()
            self._writer = None

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.execute(text("SELECT 1"))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[DatabaseTransaction]:
        async with self._write_lock or contextlib.nullcontext(), self.engine.begin() as conn:
            yield DatabaseTransaction(conn, self._seals)

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
            select(t.ledger.c.document)
            .where(t.ledger.c.session_id == session_id)
            .order_by(t.ledger.c.idx.desc())
            .limit(1)
        )
        async with self._read() as conn:
            row = await conn.scalar(query)
        return datetime.fromisoformat(row["timestamp"]) if row is not None else None

    async def list_entries(
        self, *, session_id: uuid.UUID | None = None, after: int = -1, limit: int = 1000
    ) -> list[ProvenanceEntry]:
        query = select(t.ledger.c.document).where(t.ledger.c.idx > after)
        if session_id is not None:
            query = query.where(t.ledger.c.session_id == session_id)
        query = query.order_by(t.ledger.c.idx).limit(limit)
        async with self._read() as conn:
            rows = await conn.scalars(query)
            return [ProvenanceEntry.model_validate(r) for r in rows]

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

    async def write_execution(
        self,
        execution: Execution,
        *,
        actor: str,
        action: str,
        require_active_session: bool = False,
        started: Execution | None = None,
    ) -> Execution:
        execution = with_salts(execution)
        started = with_salts(started, like=execution) if started is not None else None
        stored: Execution | SealedRecord = await self._submit(
            ExecutionWrite(
                execution,
                actor=actor,
                action=action,
                require_active_session=require_active_session,
                started=started,
                sealed=await self._seals.seal_execution(execution),
            )
        )
        if isinstance(stored, SealedRecord):  # an earlier execution with the same key
            return await self._seals.open_execution(stored.document)
        return stored

    async def _submit(self, write: ExecutionWrite) -> Any:
        """Hand one record to the group-commit writer; its answer once committed."""
        if self._committer is None:
            raise RuntimeError("storage not started")
        return await self._committer.submit(write)

    async def write_entry(self, draft: EntryDraft) -> ProvenanceEntry:
        entry: ProvenanceEntry = await self._submit(ExecutionWrite(None, draft))
        return entry

    async def write_new_session(self, session: Session, *, actor: str, action: str) -> Session:
        stored: Session = await self._submit(
            ExecutionWrite(None, new_session=session, actor=actor, action=action)
        )
        return stored

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

    async def write_workflow_run(
        self,
        run: WorkflowRun,
        *,
        actor: str,
        action: str,
        require_active_session: bool = False,
    ) -> WorkflowRun:
        written: WorkflowRun = await self._submit(
            ExecutionWrite(
                None,
                workflow_run=run,
                actor=actor,
                action=action,
                require_active_session=require_active_session,
            )
        )
        return written

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

    async def put_value(
        self,
        namespace: str,
        key: str,
        value: dict[str, Any],
        *,
        expires_at: datetime | None = None,
    ) -> None:
        c = t.kv.c
        expires_us = t.to_micros(expires_at) if expires_at is not None else None
        async with self.transaction() as tx:
            conn = tx.conn
            changed = await conn.execute(
                update(t.kv)
                .where(c.namespace == namespace, c.key == key)
                .values(document=value, expires_us=expires_us)
            )
            if changed.rowcount == 0:
                await conn.execute(
                    insert(t.kv).values(
                        namespace=namespace, key=key, document=value, expires_us=expires_us
                    )
                )

    async def delete_expired(self, namespace: str | None, now: datetime) -> int:
        c = t.kv.c
        statement = delete(t.kv).where(c.expires_us <= t.to_micros(now))
        if namespace is not None:
            statement = statement.where(c.namespace == namespace)
        async with self.transaction() as tx:
            result = await tx.conn.execute(statement)
        return int(result.rowcount or 0)


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
