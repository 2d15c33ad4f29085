"""The quota store of the database backend (SQLite and Postgres).

Reserving and reconciling are writes of the group-commit writer, batched with the
records (:mod:`~limit_graph.storage.database.quota_statements` says how a claim stays
within its limit with several API processes on one database); an execution's write
changes its quotas in its own transaction
(:class:`~limit_graph.storage.quotas.QuotaWrite`).  Limits are set in an interactive
transaction with their ledger entry; reads are plain queries.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.core.models import utcnow
from limit_graph.core.quotas import QuotaLimits, QuotaResource
from limit_graph.storage import schema as t
from limit_graph.storage.database.group_commit import ExecutionWrite
from limit_graph.storage.database.transaction import DatabaseTransaction
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.quotas import (
    CounterKey,
    PreparedQuotaWrite,
    QuotaClaim,
    QuotaCounter,
    QuotaRefusal,
    QuotaReservation,
    ScopeLimits,
    checked_scope,
    prepare_claims,
    prepare_used,
)

__all__ = ["DatabaseQuotaStore"]

_LIMITS = t.quota_limits.c
_COUNTERS = t.quota_counters.c
_HELD = t.quota_reservations.c


class DatabaseQuotaStore:
    """:class:`~limit_graph.storage.quotas.QuotaStore` on the backend's engine: ``begin``
    opens a write transaction, ``read`` a read-only connection, ``submit`` hands a write
    to the group-commit writer."""

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[DatabaseTransaction]],
        read: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        submit: Callable[[ExecutionWrite], Awaitable[Any]],
        *,
        is_sqlite: bool,
    ) -> None:
        self._begin = begin
        self._read = read
        self._submit = submit
        self._upsert = sqlite.insert if is_sqlite else postgresql.insert

    async def set_limits(
        self, scope: str, limits: QuotaLimits, *, entry: EntryDraft
    ) -> QuotaLimits:
        checked_scope(scope)
        async with self._begin() as tx:
            if limits.limits():
                values = {"updated_us": t.to_micros(utcnow()), "document": limits.document()}
                upsert = self._upsert(t.quota_limits).values(scope=scope, **values)
                await tx.conn.execute(
                    upsert.on_conflict_do_update(index_elements=[_LIMITS.scope], set_=values)
                )
            else:
                await tx.conn.execute(delete(t.quota_limits).where(_LIMITS.scope == scope))
            await tx.append_entry(entry)
        return limits

    async def limits(self, scopes: Sequence[str]) -> list[ScopeLimits]:
        if not scopes:
            return []
        query = (
            select(_LIMITS.scope, _LIMITS.document)
            .where(_LIMITS.scope.in_(list(scopes)))
            .order_by(_LIMITS.scope)
        )
        async with self._read() as conn:
            found = (await conn.execute(query)).all()
        return [ScopeLimits(scope, QuotaLimits.model_validate(doc)) for scope, doc in found]

    async def reserve(
        self, execution_id: uuid.UUID, claims: Sequence[QuotaClaim]
    ) -> QuotaRefusal | None:
        prepared = prepare_claims(claims)
        if not prepared:
            return None
        write = PreparedQuotaWrite(prepared, None)
        refusal: QuotaRefusal | None = await self._submit(
            ExecutionWrite(None, quota=write, quota_only=execution_id)
        )
        return refusal

    async def reconcile(
        self, execution_id: uuid.UUID, used: Mapping[QuotaResource, float]
    ) -> list[QuotaReservation]:
        write = PreparedQuotaWrite([], prepare_used(used))
        settled: list[QuotaReservation] = await self._submit(
            ExecutionWrite(None, quota=write, quota_only=execution_id)
        )
        return settled

    async def reservations(self, execution_id: uuid.UUID) -> list[QuotaReservation]:
        query = (
            select(_HELD.scope, _HELD.resource, _HELD.window_key, _HELD.amount)
            .where(_HELD.execution_id == execution_id)
            .order_by(_HELD.scope, _HELD.resource)
        )
        async with self._read() as conn:
            found = (await conn.execute(query)).all()
        return [_reservation(execution_id, *row) for row in found]

    async def usage(self, keys: Sequence[CounterKey]) -> list[QuotaCounter]:
        counted: dict[CounterKey, tuple[int, int]] = {}
        if keys:
            c = _COUNTERS
            wanted = [(scope, resource.value, window) for scope, resource, window in keys]
            query = select(c.scope, c.resource, c.window_key, c.used, c.reserved).where(
                tuple_(c.scope, c.resource, c.window_key).in_(wanted)
            )
            async with self._read() as conn:
                for scope, name, window, used, reserved in await conn.execute(query):
                    counted[(scope, QuotaResource(name), window)] = (used, reserved)
        return [QuotaCounter.from_units(key, *counted.get(key, (0, 0))) for key in keys]


def _reservation(
    execution_id: uuid.UUID, scope: str, name: str, window: str, amount: int
) -> QuotaReservation:
    return QuotaReservation.from_units(execution_id, (scope, QuotaResource(name), window), amount)
