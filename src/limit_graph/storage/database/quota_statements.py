"""Quota claims and settlements as the group-commit writer runs them, in its batch.

An execution's quotas change in the transaction that records it (and a reservation or
a settling with no record is a write of its own in a batch), so that reserving and
reconciling cost no commit of their own.  Each claim is one conditional statement,
``UPDATE limit_quota_counters SET reserved = reserved + :amount WHERE <key> AND used +
reserved + :amount <= :limit``, after an ``INSERT ... ON CONFLICT DO NOTHING`` has made
sure the counter exists; a batch holds the ledger head's row lock on Postgres, and the
whole database on SQLite, so claims of several API processes are taken one batch after
another and none can overshoot a limit.  A claim that does not fit gives back, in the
same transaction, those of the execution taken before it.  Settling deletes the
execution's reservations with ``DELETE ... RETURNING`` and settles exactly the rows it
deleted: settling twice settles nothing the second time.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Dialect,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from limit_graph.core.quotas import QuotaResource
from limit_graph.storage import schema as t
from limit_graph.storage.database.statements import Prepared
from limit_graph.storage.quotas import CounterKey, QuotaRefusal, QuotaReservation, UnitClaim

__all__ = ["QuotaStatements"]

_COUNTERS = t.quota_counters.c
_HELD = t.quota_reservations.c


def _key(key: CounterKey) -> dict[str, Any]:
    scope, resource, window = key
    return {"k_scope": scope, "k_resource": resource.value, "k_window": window}


class QuotaStatements:
    """The quota statements of the writer, prepared for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        counter = and_(
            _COUNTERS.scope == bindparam("k_scope"),
            _COUNTERS.resource == bindparam("k_resource"),
            _COUNTERS.window_key == bindparam("k_window"),
        )
        amount = bindparam("k_amount", type_=BigInteger())
        dialect_insert = sqlite.insert if dialect.name == "sqlite" else postgresql.insert
        new_counter = dialect_insert(t.quota_counters).values(
            scope=bindparam("k_scope"),
            resource=bindparam("k_resource"),
            window_key=bindparam("k_window"),
            used=0,
            reserved=0,
        )
        self._new_counter = Prepared(new_counter.on_conflict_do_nothing(), dialect)
        self._take = Prepared(
            update(t.quota_counters)
            .where(counter, _COUNTERS.used + _COUNTERS.reserved + amount <= bindparam("k_limit"))
            .values(reserved=_COUNTERS.reserved + amount),
            dialect,
        )
        self._give_back = Prepared(
            update(t.quota_counters).where(counter).values(reserved=_COUNTERS.reserved - amount),
            dialect,
        )
        self._settle = Prepared(
            update(t.quota_counters)
            .where(counter)
            .values(
                used=_COUNTERS.used + bindparam("k_spent"),
                reserved=_COUNTERS.reserved - amount,
            ),
            dialect,
        )
        self._take_spent = Prepared(
            update(t.quota_counters)
            .where(counter, _COUNTERS.used + _COUNTERS.reserved + amount <= bindparam("k_limit"))
            .values(used=_COUNTERS.used + bindparam("k_spent")),
            dialect,
        )
        self._unspend = Prepared(
            update(t.quota_counters)
            .where(counter)
            .values(used=_COUNTERS.used - bindparam("k_spent")),
            dialect,
        )
        self._counter = Prepared(select(_COUNTERS.used, _COUNTERS.reserved).where(counter), dialect)
        self._hold = Prepared(insert(t.quota_reservations), dialect)
        execution = _HELD.execution_id == bindparam("k_execution")
        self._holds = Prepared(select(_HELD.execution_id).where(execution).limit(1), dialect)
        self._take_held = Prepared(
            delete(t.quota_reservations)
            .where(execution)
            .returning(_HELD.scope, _HELD.resource, _HELD.window_key, _HELD.amount),
            dialect,
        )

    def holds(self, conn: Connection, execution_id: uuid.UUID) -> bool:
        """Whether ``execution_id`` holds reservations."""
        return bool(self._holds.rows(conn, {"k_execution": execution_id}))

    def claim(
        self, conn: Connection, execution_id: uuid.UUID, claims: Sequence[UnitClaim], now_us: int
    ) -> QuotaRefusal | None:
        """Take every claim (in the order given: the lock order) for ``execution_id``, or
        none of them and return the refusal; nothing when it holds reservations already."""
        if not claims or self.holds(conn, execution_id):
            return None
        self._new_counter.execute(conn, [_key(c.key) for c in claims])
        for index, claim in enumerate(claims):
            asked = {**_key(claim.key), "k_amount": claim.amount, "k_limit": claim.limit}
            if self._take.count(conn, asked) == 1:
                continue
            [(used, reserved)] = self._counter.rows(conn, _key(claim.key))
            taken = claims[:index]
            if taken:
                self._give_back.execute(
                    conn, [{**_key(c.key), "k_amount": c.amount} for c in taken]
                )
            return claim.refused(used, reserved).refusal
        held = [
            {
                "execution_id": execution_id,
                "scope": c.claim.scope,
                "resource": c.claim.resource.value,
                "window_key": c.claim.window,
                "amount": c.amount,
                "created_us": now_us,
            }
            for c in claims
        ]
        self._hold.execute(conn, held)
        return None

    def claim_spent(
        self,
        conn: Connection,
        execution_id: uuid.UUID,
        claims: Sequence[UnitClaim],
        spent: Mapping[QuotaResource, int],
    ) -> QuotaRefusal | None:
        """:meth:`claim` and :meth:`settle` at once, for work recorded final by the write
        that claims for it: each claim is one conditional statement that adds what was
        spent to its counter, and no reservation is kept in between."""
        if self.holds(conn, execution_id):
            self.settle(conn, execution_id, spent)
            return None
        self._new_counter.execute(conn, [_key(c.key) for c in claims])
        for index, claim in enumerate(claims):
            used = spent.get(claim.claim.resource, 0)
            asked = {**_key(claim.key), "k_amount": claim.amount, "k_limit": claim.limit}
            if self._take_spent.count(conn, asked | {"k_spent": used}) == 1:
                continue
            [(now_used, reserved)] = self._counter.rows(conn, _key(claim.key))
            taken = claims[:index]
            if taken:
                self._unspend.execute(
                    conn,
                    [{**_key(c.key), "k_spent": spent.get(c.claim.resource, 0)} for c in taken],
                )
            return claim.refused(now_used, reserved).refusal
        return None

    def settle(
        self, conn: Connection, execution_id: uuid.UUID, spent: Mapping[QuotaResource, int]
    ) -> list[QuotaReservation]:
        """Turn what ``execution_id`` holds into what it ``spent`` (in units), the rest
        given back; what it held (nothing the second time)."""
        held = sorted(self._take_held.rows(conn, {"k_execution": execution_id}))
        if not held:
            return []
        settled: list[QuotaReservation] = []
        changes: list[dict[str, Any]] = []
        for scope, name, window, amount in held:
            key = (scope, QuotaResource(name), window)
            settled.append(QuotaReservation.from_units(execution_id, key, amount))
            changes.append({**_key(key), "k_amount": amount, "k_spent": spent.get(key[1], 0)})
        self._settle.execute(conn, changes)
        return settled
