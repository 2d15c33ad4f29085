"""The quota store of the database backend (SQLite and Postgres).

A claim is one statement: ``UPDATE limit_quota_counters SET reserved = reserved + :a
WHERE <key> AND used + reserved + :a <= :limit``, after an ``INSERT ... ON CONFLICT DO
NOTHING`` has made sure the counter exists.  On Postgres the update waits for the row
lock of any concurrent claim and then evaluates its condition again on the row as that
claim left it (read committed), so no number of API processes can overshoot a limit;
on SQLite the ``IMMEDIATE`` transaction holds the whole database.  An execution's claims
run in one transaction in counter-key order, so two reservations never wait on each
other in a cycle, and a refused claim rolls the transaction back: what was taken before
it is given back.

Reconciling deletes the execution's reservation rows with ``DELETE ... RETURNING`` and
settles exactly the rows it deleted, in the same transaction: of two processes
reconciling one execution, the second deletes (and settles) nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, delete, select, tuple_, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.core.models import utcnow
from limit_graph.core.quotas import QuotaLimits, QuotaResource
from limit_graph.storage import schema as t
from limit_graph.storage.database.transaction import DatabaseTransaction
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.quotas import (
    ClaimRefused,
    CounterKey,
    QuotaClaim,
    QuotaCounter,
    QuotaRefusal,
    QuotaReservation,
    ScopeLimits,
    UnitClaim,
    checked_scope,
    prepare_claims,
    prepare_used,
)

__all__ = ["DatabaseQuotaStore"]

_LIMITS = t.quota_limits.c
_COUNTERS = t.quota_counters.c
_HELD = t.quota_reservations.c


def _counter(key: CounterKey) -> ColumnElement[bool]:
    scope, resource, window = key
    return and_(
        _COUNTERS.scope == scope,
        _COUNTERS.resource == resource.value,
        _COUNTERS.window_key == window,
    )


class DatabaseQuotaStore:
    """:class:`~limit_graph.storage.quotas.QuotaStore` on the backend's engine: ``begin``
    opens a write transaction, ``read`` a read-only connection."""

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[DatabaseTransaction]],
        read: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        *,
        is_sqlite: bool,
    ) -> None:
        self._begin = begin
        self._read = read
        self._dialect_insert = sqlite.insert if is_sqlite else postgresql.insert

    def _insert(self, table: Table) -> Any:
        """An ``INSERT`` of the backend's dialect, which has ``ON CONFLICT``."""
        return self._dialect_insert(table)

    async def set_limits(
        self, scope: str, limits: QuotaLimits, *, entry: EntryDraft
    ) -> QuotaLimits:
        checked_scope(scope)
        async with self._begin() as tx:
            if limits.limits():
                values = {"updated_us": t.to_micros(utcnow()), "document": limits.document()}
                upsert = self._insert(t.quota_limits).values(scope=scope, **values)
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
        execution = {"execution_id": execution_id, "created_us": t.to_micros(utcnow())}
        held = [{**execution, **_key_columns(c.key), "amount": c.amount} for c in prepared]
        try:
            async with self._begin() as tx:
                conn = tx.conn
                if await self._holds(conn, execution_id):
                    return None
                # The reservation rows first: a concurrent reservation of the same
                # execution waits here, then fails on the primary key, taking nothing.
                await conn.execute(t.quota_reservations.insert(), held)
                new = self._insert(t.quota_counters).values(
                    [{**_key_columns(c.key), "used": 0, "reserved": 0} for c in prepared]
                )
                await conn.execute(new.on_conflict_do_nothing())
                for claim in prepared:
                    taken = await conn.execute(
                        update(t.quota_counters)
                        .where(
                            _counter(claim.key),
                            _COUNTERS.used + _COUNTERS.reserved + claim.amount <= claim.limit,
                        )
                        .values(reserved=_COUNTERS.reserved + claim.amount)
                    )
                    if taken.rowcount != 1:
                        raise await _refused(conn, claim)
        except ClaimRefused as refused:
            return refused.refusal
        except sa_exc.IntegrityError:
            if await self.reservations(execution_id):
                return None  # the concurrent reservation of this execution stands
            raise
        return None

    async def _holds(self, conn: AsyncConnection, execution_id: uuid.UUID) -> bool:
        query = select(_HELD.execution_id).where(_HELD.execution_id == execution_id).limit(1)
        return await conn.scalar(query) is not None

    async def reconcile(
        self, execution_id: uuid.UUID, used: Mapping[QuotaResource, float]
    ) -> list[QuotaReservation]:
        spent = prepare_used(used)
        async with self._begin() as tx:
            deleted = await tx.conn.execute(
                delete(t.quota_reservations)
                .where(_HELD.execution_id == execution_id)
                .returning(_HELD.scope, _HELD.resource, _HELD.window_key, _HELD.amount)
            )
            settled = sorted(deleted.all())
            for scope, name, window, amount in settled:
                resource = QuotaResource(name)
                await tx.conn.execute(
                    update(t.quota_counters)
                    .where(_counter((scope, resource, window)))
                    .values(
                        used=_COUNTERS.used + spent.get(resource, 0),
                        reserved=_COUNTERS.reserved - amount,
                    )
                )
        return [_reservation(execution_id, *row) for row in settled]

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


def _key_columns(key: CounterKey) -> dict[str, Any]:
    """The columns that hold a counter key, in its counter's row and its reservations'."""
    scope, resource, window = key
    return {"scope": scope, "resource": resource.value, "window_key": window}


async def _refused(conn: AsyncConnection, claim: UnitClaim) -> ClaimRefused:
    """The refusal of ``claim``, with its counter as this transaction sees it."""
    used, reserved = (
        await conn.execute(select(_COUNTERS.used, _COUNTERS.reserved).where(_counter(claim.key)))
    ).one()
    return claim.refused(used, reserved)


def _reservation(
    execution_id: uuid.UUID, scope: str, name: str, window: str, amount: int
) -> QuotaReservation:
    return QuotaReservation.from_units(execution_id, (scope, QuotaResource(name), window), amount)
