"""Encryption at rest for the database store: sensitive executions and their archives
sealed on the way into a row and opened on the way out.

A sealed field is bound to its record's tenant, which an execution's row does not hold:
it is its session's, read once per session and kept (a session's tenant never changes).
Opening a row fetches any data key it names that this process has not seen (another
process may have rotated meanwhile); sealing uses the ring's active key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.core.errors import SealError
from limit_graph.core.models import Execution
from limit_graph.core.sealing import is_sealed, token_key_id
from limit_graph.storage import schema as t
from limit_graph.storage.keyring import KeyRing
from limit_graph.storage.sealed import (
    archive_is_sensitive,
    execution_key_ids,
    open_archive,
    open_execution,
    seal_archive,
    seal_execution,
)

__all__ = ["DatabaseSeals"]

_TENANTS_KEPT = 100_000
"""Sessions whose tenant is remembered; past that the memory starts again."""


class DatabaseSeals:
    """Seals and opens the database store's sensitive documents."""

    def __init__(
        self,
        ring: KeyRing,
        read: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
    ) -> None:
        self.ring = ring
        self._read = read
        self._tenants: dict[uuid.UUID, str] = {}

    async def tenant(self, session_id: uuid.UUID, conn: AsyncConnection | None = None) -> str:
        """The tenant of ``session_id`` (read on ``conn`` when given: a transaction that
        may have just written the session)."""
        known = self._tenants.get(session_id)
        if known is not None:
            return known
        query = select(t.sessions.c.tenant).where(t.sessions.c.id == session_id)
        if conn is not None:
            found = await conn.scalar(query)
        else:
            async with self._read() as reader:
                found = await reader.scalar(query)
        if found is None:
            raise SealError(f"no session {session_id} to bind its sealed records to")
        if len(self._tenants) >= _TENANTS_KEPT:
            self._tenants.clear()
        self._tenants[session_id] = found
        return str(found)

    async def open_execution(
        self, doc: Mapping[str, Any], conn: AsyncConnection | None = None
    ) -> Execution:
        """The execution of a stored document, its sealed fields opened."""
        if not doc.get("sensitive"):
            return Execution.model_validate(doc)
        tenant = await self.tenant(uuid.UUID(str(doc["session_id"])), conn)
        await self.ring.load(execution_key_ids(doc))
        return open_execution(doc, tenant=tenant, key_for=self.ring.key)

    async def open_executions(
        self, docs: Iterable[Mapping[str, Any]], conn: AsyncConnection | None = None
    ) -> list[Execution]:
        return [await self.open_execution(doc, conn) for doc in docs]

    async def seal_execution(
        self, execution: Execution, conn: AsyncConnection | None = None
    ) -> dict[str, Any] | None:
        """The document to store for a sensitive ``execution`` (its salts set), without
        its entry index (the writer sets it); ``None`` for any other."""
        if not execution.sensitive:
            return None
        key = await self.ring.active()
        tenant = await self.tenant(execution.session_id, conn)
        return seal_execution(execution, tenant=tenant, key=key)

    async def seal_archive(
        self, session_id: uuid.UUID, bundle: dict[str, Any], conn: AsyncConnection
    ) -> dict[str, Any]:
        """The document to store for an archive bundle: sealed whole when it holds a
        sensitive execution."""
        if not archive_is_sensitive(bundle):
            return bundle
        key = await self.ring.active()
        tenant = await self.tenant(session_id, conn)
        return seal_archive(bundle, tenant=tenant, session_id=session_id, key=key)

    async def open_archive(self, session_id: uuid.UUID, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The bundle of a stored archive document: as it is, unless sealed whole."""
        token = doc.get("sealed")
        if set(doc) != {"sealed"} or not is_sealed(token):
            return dict(doc)
        await self.ring.load([token_key_id(token)])
        tenant = await self.tenant(session_id)
        return open_archive(doc, tenant=tenant, session_id=session_id, key_for=self.ring.key)
