"""Database storage on SQLAlchemy 2 (async): SQLite and Postgres through the same code.

Migrations (Alembic, ``storage/migrations``) run on start, under an advisory lock on
Postgres so that several API replicas may start at once.  Interactive transactions
(:class:`~limit_graph.storage.database.transaction.DatabaseTransaction`) serve the
services' multi-record writes; single-record writes go through the group-commit writer.
The queries outside a transaction are those of the class it extends,
:class:`~limit_graph.storage.database.reads.DatabaseReads`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, insert, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from limit_graph.core.errors import ConfigError
from limit_graph.core.models import Execution, ProvenanceEntry, Session, WorkflowRun
from limit_graph.core.sealing import KeyEncryptionKeys
from limit_graph.storage import schema as t
from limit_graph.storage.database import schema_versions
from limit_graph.storage.database.dispatch import DatabaseDispatchQueue
from limit_graph.storage.database.engine import (
    MIGRATION_LOCK_ID,
    RELAXED,
    configure_sqlite,
    sync_driver,
)
from limit_graph.storage.database.group_commit import ExecutionWrite, GroupCommitter
from limit_graph.storage.database.identity import DatabaseIdentityStore
from limit_graph.storage.database.keyring import DatabaseKeyRingBackend
from limit_graph.storage.database.leases import DatabaseLeaseStore
from limit_graph.storage.database.ledger import DatabaseLedger
from limit_graph.storage.database.lineage import DatabaseLineageStore
from limit_graph.storage.database.quotas import DatabaseQuotaStore
from limit_graph.storage.database.reads import DatabaseReads
from limit_graph.storage.database.sealing import DatabaseSeals
from limit_graph.storage.database.transaction import DatabaseTransaction
from limit_graph.storage.dispatch import QueueChange
from limit_graph.storage.keyring import KeyRing
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.memory_dispatch import MemoryDispatchQueue
from limit_graph.storage.quotas import QuotaWrite
from limit_graph.storage.sealed import SealedRecord, with_salts

__all__ = ["DatabaseStorage"]


class DatabaseStorage(DatabaseReads):
    """Records in SQLite (the embedded default) or Postgres."""

    kind = "database"

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        keks: KeyEncryptionKeys | None = None,
        key_refresh_s: float = 30.0,
        shared_queue: bool = True,
        pool_size: int = 32,
        max_overflow: int = 8,
    ) -> None:
        self.url = make_url(url)
        self._pool = {"pool_size": pool_size, "max_overflow": max_overflow}
        """The read and transaction pool; the writer's own pool is two connections."""
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
        self._quotas = DatabaseQuotaStore(
            self.transaction, self._read, self._submit, is_sqlite=self.is_sqlite
        )
        self._keyring = KeyRing(
            DatabaseKeyRingBackend(self.transaction, self._read), keks, refresh_s=key_refresh_s
        )
        self._seals = DatabaseSeals(self._keyring, self._read)
        self._ledger = DatabaseLedger(
            self._read,
            self._write_conn,
            is_sqlite=self.is_sqlite,
            sqlite_path=self.url.database if self.is_sqlite else None,
        )
        """Sensitive executions and archives are sealed in their rows."""
        self._lineage = DatabaseLineageStore(self._read, self._write_conn, is_sqlite=self.is_sqlite)
        self._shared = DatabaseDispatchQueue(
            self._read,
            self._queue_conn,
            self._queue_op,
            self._seals.open_execution,
            self.url,
            is_sqlite=self.is_sqlite,
        )
        self._dispatch: DatabaseDispatchQueue | MemoryDispatchQueue = (
            self._shared if shared_queue else MemoryDispatchQueue()
        )
        """The shared queue, or (``shared_queue=False``, one API process alone) the
        queue in this process's memory: its rows change after their records commit,
        and a restart queues the unfinished records again."""
        self._leases = DatabaseLeaseStore(self._read, self._write_conn, is_sqlite=self.is_sqlite)

    @property
    def identity(self) -> DatabaseIdentityStore:
        return self._identity

    @property
    def ledger(self) -> DatabaseLedger:
        return self._ledger

    @property
    def quotas(self) -> DatabaseQuotaStore:
        return self._quotas

    @property
    def dispatch(self) -> DatabaseDispatchQueue | MemoryDispatchQueue:
        return self._dispatch

    @property
    def lineage(self) -> DatabaseLineageStore:
        return self._lineage

    @property
    def leases(self) -> DatabaseLeaseStore:
        return self._leases

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

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
            options.update(pool_pre_ping=True)
        # A pool smaller than the load's concurrency opens and closes its overflow
        # connections all the time (on SQLite, a thread each): keep pool_size above it.
        engine = create_async_engine(self.url, **self._pool, **options)
        writer = create_engine(
            self.url.set(drivername=sync_driver(self.url)), pool_size=2, max_overflow=2, **options
        )
        if self.is_sqlite:
            configure_sqlite(engine.sync_engine)
            configure_sqlite(writer)
        self._engine = engine
        self._writer = writer
        async with engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
            await conn.run_sync(schema_versions.upgrade)
        self._committer = GroupCommitter(writer, self._write_lock, self._shared.statements)
        self._committer.start()
        await self._keyring.start()

    async def close(self) -> None:
        self._ledger.close()
        if self._committer is not None:
            await self._committer.close()
            self._committer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._writer is not None:
            self._writer.dispose()
            self._writer = None

    @asynccontextmanager
    async def _write_conn(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock or contextlib.nullcontext(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _queue_conn(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction of the dispatch queue, committed without waiting for the
        disk: a claim or a lease lost with the machine is taken again (the records
        that matter, ``queued`` and final, are durable and written in order after it)."""
        async with self._write_lock or contextlib.nullcontext(), self.engine.connect() as conn:
            await conn.execution_options(**{RELAXED: True})
            async with conn.begin():
                if not self.is_sqlite:
                    await conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
                yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[DatabaseTransaction]:
        async with self._write_lock or contextlib.nullcontext(), self.engine.begin() as conn:
            yield DatabaseTransaction(conn, self._seals)

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
        prepared = quota.prepared() if quota is not None else None
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
                quota=prepared,
                queue=queue if self._dispatch is self._shared else None,
                relaxed=relaxed,
            )
        )
        own = self._dispatch if isinstance(self._dispatch, MemoryDispatchQueue) else None
        written = isinstance(stored, Execution) and stored.id == execution.id  # not an earlier one
        if queue is not None and own is not None and written:
            own.apply(queue, stored if isinstance(stored, Execution) else None)
        if isinstance(stored, SealedRecord):  # an earlier execution with the same key
            return await self._seals.open_execution(stored.document)
        return stored

    async def _queue_op(self, op: Callable[[Connection], Any]) -> Any:
        """Run ``op`` (statements of the dispatch queue) in the writer's next batch."""
        return await self._submit(ExecutionWrite(None, op=op))

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

    async def put_value(
        self,
        namespace: str,
        key: str,
        value: dict[str, Any],
        *,
        expires_at: datetime | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        c = t.kv.c
        expires_us = t.to_micros(expires_at) if expires_at is not None else None
        row = {"namespace": namespace, "key": key, "document": value, "expires_us": expires_us}
        async with self.transaction() as tx:
            conn = tx.conn
            if only_if_absent:
                dialect = sqlite_insert if self.is_sqlite else pg_insert
                statement = dialect(t.kv).values(**row).on_conflict_do_nothing()
                added = await conn.execute(statement.returning(c.key))
                return added.first() is not None
            changed = await conn.execute(
                update(t.kv)
                .where(c.namespace == namespace, c.key == key)
                .values(document=value, expires_us=expires_us)
            )
            if changed.rowcount == 0:
                await conn.execute(insert(t.kv).values(**row))
        return True

    async def delete_expired(self, namespace: str | None, now: datetime) -> int:
        c = t.kv.c
        statement = delete(t.kv).where(c.expires_us <= t.to_micros(now))
        if namespace is not None:
            statement = statement.where(c.namespace == namespace)
        async with self.transaction() as tx:
            result = await tx.conn.execute(statement)
        return int(result.rowcount or 0)
