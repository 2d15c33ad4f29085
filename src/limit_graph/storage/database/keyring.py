"""The key ring backend of the database store: ``limit_data_keys``, and resealing rows.

A rotation finds the rows holding a field under an old key by the key id in their
document's text (``LIKE`` on the document cast to text: no column or index to keep in
step with every writer), in primary-key order after a cursor, so that a pass over a
table reads it once.  Each batch then locks its rows (``FOR UPDATE`` on Postgres; the
``IMMEDIATE`` transaction holds the database on SQLite), seals again only the fields
still under the old key in what it reads there, and writes the documents back: a writer
that changed a row first is what gets resealed, one that comes after waits and writes
its own document whole.  Executions go first, then archives, then signing keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import ColumnElement, Text, bindparam, cast, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.core.identity import SigningKeyRecord
from limit_graph.core.sealing import is_sealed, token_key_id
from limit_graph.storage import schema as t
from limit_graph.storage.database.identity_rows import UPDATE_SIGNING_KEYS
from limit_graph.storage.database.transaction import DatabaseTransaction
from limit_graph.storage.keyring import DataKeyRecord, ResealProgress
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.sealed import (
    Resealer,
    reseal_archive,
    reseal_execution,
    sealed_pattern,
    signing_key_place,
)

__all__ = ["DatabaseKeyRingBackend"]

_KINDS = ("executions", "archives", "signing")
_E = t.executions.c
_A = t.archives.c
_S = t.signing_keys.c
_SET_ARCHIVE = update(t.archives).where(_A.session_id == bindparam("b_id"))


class DatabaseKeyRingBackend:
    """:class:`~limit_graph.storage.keyring.KeyRingBackend` on the store's engine."""

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[DatabaseTransaction]],
        read: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
    ) -> None:
        self._begin = begin
        self._read = read

    async def list_data_keys(self) -> list[DataKeyRecord]:
        query = select(t.data_keys.c.document).order_by(t.data_keys.c.created_us, t.data_keys.c.kid)
        async with self._read() as conn:
            return [DataKeyRecord.model_validate(d) for d in await conn.scalars(query)]

    async def put_data_keys(self, records: Sequence[DataKeyRecord], *, entry: EntryDraft) -> None:
        c = t.data_keys.c
        async with self._begin() as tx:
            for record in records:
                document = record.model_dump(mode="json")
                changed = await tx.conn.execute(
                    update(t.data_keys)
                    .where(c.kid == record.kid)
                    .values(state=record.state.value, document=document)
                )
                if changed.rowcount == 0:
                    await tx.conn.execute(
                        insert(t.data_keys).values(
                            kid=record.kid,
                            state=record.state.value,
                            created_us=t.to_micros(record.created_at),
                            document=document,
                        )
                    )
            await tx.append_entry(entry)

    async def reseal(
        self, kid: str, reseal: Resealer, *, limit: int, cursor: str | None
    ) -> ResealProgress:
        first, _, after = (cursor or f"{_KINDS[0]}:").partition(":")
        for kind in _KINDS[_KINDS.index(first) :]:
            found = await self._candidates(kind, kid, after, limit + 1)
            after = ""
            if not found:
                continue
            chosen = found[:limit]
            resealed = await self._reseal_rows(kind, kid, reseal, chosen)
            if len(found) > limit:
                return ResealProgress(resealed, f"{kind}:{chosen[-1]}")
            following = _KINDS.index(kind) + 1
            rest = f"{_KINDS[following]}:" if following < len(_KINDS) else None
            return ResealProgress(resealed, rest)
        return ResealProgress(0, None)

    async def _candidates(self, kind: str, kid: str, after: str, limit: int) -> list[str]:
        """Up to ``limit`` keys of rows whose document's text names ``kid``, after ``after``."""
        key, document = _columns(kind)
        query = select(key).where(cast(document, Text).like(sealed_pattern(kid)))
        if after:
            query = query.where(key > (uuid.UUID(after) if kind != "signing" else after))
        async with self._read() as conn:
            return [str(k) for k in await conn.scalars(query.order_by(key).limit(limit))]

    async def _reseal_rows(self, kind: str, kid: str, reseal: Resealer, keys: Sequence[str]) -> int:
        key, document = _columns(kind)
        wanted: list[Any] = [uuid.UUID(k) for k in keys] if kind != "signing" else list(keys)
        async with self._begin() as tx:
            if kind == "signing":
                query = select(key, document).where(key.in_(wanted))
                locked = t.signing_keys
            else:
                owner = _E.session_id if kind == "executions" else _A.session_id
                table = t.executions if kind == "executions" else t.archives
                query = (
                    select(key, document, t.sessions.c.tenant)
                    .select_from(table.join(t.sessions, owner == t.sessions.c.id))
                    .where(key.in_(wanted))
                )
                locked = table
            rows = (await tx.conn.execute(query.order_by(key).with_for_update(of=locked))).all()
            changes = [c for row in rows if (c := _resealed(kind, kid, reseal, row)) is not None]
            if changes:
                statement = {
                    "executions": t.UPDATE_EXECUTIONS,
                    "archives": _SET_ARCHIVE,
                    "signing": UPDATE_SIGNING_KEYS,
                }[kind]
                await tx.conn.execute(statement, changes)
        return len(changes)


def _columns(kind: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    if kind == "executions":
        return _E.id, _E.document
    if kind == "archives":
        return _A.session_id, _A.document
    return _S.kid, _S.document


def _resealed(kind: str, kid: str, reseal: Resealer, row: Any) -> dict[str, Any] | None:
    """The update of one locked row, or ``None`` when nothing in it is under ``kid``."""
    if kind == "signing":
        record = SigningKeyRecord.model_validate(row[1])
        token = record.private_key
        if not is_sealed(token) or token_key_id(token) != kid:
            return None
        sealed = reseal(token, signing_key_place(record.kid))
        updated = record.model_copy(update={"private_key": sealed})
        return {"b_kid": record.kid, "document": updated.model_dump(mode="json")}
    record_id, doc, tenant = row
    if kind == "executions":
        changed = reseal_execution(doc, tenant=tenant, kid=kid, reseal=reseal)
    else:
        changed = reseal_archive(doc, tenant=tenant, session_id=record_id, kid=kid, reseal=reseal)
    return {"b_id": record_id, "document": changed} if changed is not None else None
