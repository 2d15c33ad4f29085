"""The lease store of the database backend (SQLite and Postgres).

Taking or renewing a lease is one statement on both databases, an upsert that changes
the row only when the lease is free or already the asker's, and returns it only then::

    INSERT INTO limit_leases (name, holder, expires_at, acquired_at)
    VALUES (:name, :holder, :now + :ttl, :now)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, ...
    WHERE limit_leases.expires_at <= excluded.acquired_at
       OR limit_leases.holder = excluded.holder
    RETURNING holder

On Postgres two processes inserting at once serialise on the key (the second sees the
first's row and evaluates the ``WHERE`` on it); on SQLite writers are serialised
anyway.  So of any number of processes asking at once, exactly one gets a row back.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy import case, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.storage import schema as t

__all__ = ["DatabaseLeaseStore"]

Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection]]

_L = t.leases


class DatabaseLeaseStore:
    """:class:`~limit_graph.storage.leases.LeaseStore` on the backend's engine:
    ``read`` opens a read-only connection, ``write`` a write transaction."""

    def __init__(self, read: Connect, write: Connect, *, is_sqlite: bool) -> None:
        self._read = read
        self._write = write
        self._insert = sqlite_insert if is_sqlite else pg_insert

    async def acquire(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        upsert = self._insert(_L).values(
            name=name, holder=holder, expires_at=now + ttl_s, acquired_at=now
        )
        new = upsert.excluded
        renewing = _L.c.holder == new.holder
        statement = upsert.on_conflict_do_update(
            index_elements=[_L.c.name],
            set_={
                "holder": new.holder,
                "expires_at": new.expires_at,
                "acquired_at": case((renewing, _L.c.acquired_at), else_=new.acquired_at),
            },
            where=or_(_L.c.expires_at <= new.acquired_at, renewing),
        ).returning(_L.c.holder)
        async with self._write() as conn:
            taken = (await conn.execute(statement)).first()
        return taken is not None

    async def release(self, name: str, holder: str) -> bool:
        async with self._write() as conn:
            gone = await conn.execute(delete(_L).where(_L.c.name == name, _L.c.holder == holder))
        return bool(gone.rowcount)

    async def holder(self, name: str, now: float) -> str | None:
        async with self._read() as conn:
            found = await conn.scalar(
                select(_L.c.holder).where(_L.c.name == name, _L.c.expires_at > now)
            )
        return str(found) if found is not None else None
