"""The statements of the shared dispatch queue (``storage/database/dispatch.py``): its rows
as the driver gives and takes them, the record writes' row changes and signals
(:class:`QueueStatements`, run by the group-commit writer in the records'
transaction), the claim, and the documents of claimed executions, each compiled once
for the dialect (:class:`~limit_graph.storage.database.statements.Prepared`)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from limit_graph.storage import schema as t
from limit_graph.storage.database.statements import Lookup, Prepared
from limit_graph.storage.dispatch import (
    FINAL_SIGNAL,
    QUEUED_SIGNAL,
    Held,
    QueueChange,
    QueuedWork,
    RowState,
)

__all__ = [
    "NOTIFY_BYTES",
    "NOTIFY_CHANNEL",
    "QueueStatements",
    "documents",
    "held_of",
    "queued_values",
    "raw_held",
]

NOTIFY_CHANNEL = "limit_dispatch"
NOTIFY_BYTES = 7000
"""Postgres refuses a payload of 8,000 bytes or more; ids are sent in chunks below it."""

_D = t.dispatch
_S = t.signals


def held_of(row: Any) -> Held:
    return Held(
        execution_id=row.execution_id,
        instance=row.instance,
        attempt=row.attempt,
        state=RowState(row.state),
        ready_at=row.ready_at,
        runner_id=row.runner_id,
        expires_at=row.expires_at,
        deadline=row.deadline,
        timeout_s=row.timeout_s,
        cancel=bool(row.cancel),
        pinned=bool(row.pinned),
        family=row.family,
    )


def raw_held(row: tuple[Any, ...]) -> Held:
    """A row as the driver returns it, in the table's column order (a UUID as SQLite's
    32 hex digits, a boolean as 0 or 1 there)."""
    execution_id, instance, attempt, state, ready_at, runner_id, expires_at, deadline = row[:8]
    timeout_s, cancel, pinned, family = row[8:12]
    return Held(
        execution_id=execution_id
        if isinstance(execution_id, uuid.UUID)
        else uuid.UUID(execution_id),
        instance=instance,
        attempt=attempt,
        state=RowState(state),
        ready_at=ready_at,
        runner_id=runner_id,
        expires_at=expires_at,
        deadline=deadline,
        timeout_s=timeout_s,
        cancel=bool(cancel),
        pinned=bool(pinned),
        family=family,
    )


def queued_values(work: QueuedWork) -> dict[str, Any]:
    return {
        "execution_id": work.execution_id,
        "instance": work.instance,
        "attempt": work.attempt,
        "state": RowState.QUEUED.value,
        "ready_at": work.ready_at,
        "runner_id": None,
        "expires_at": None,
        "deadline": None,
        "timeout_s": work.timeout_s,
        "cancel": False,
        "pinned": work.pinned,
        "family": work.family,
    }


def _chunks(kind: str, values: list[str], sender: str) -> list[str]:
    """Signal payloads (JSON) of ``values``, each under :data:`NOTIFY_BYTES`."""
    payloads: list[str] = []
    batch: list[str] = []
    size = 0
    for value in values:
        if batch and size + len(value) + 3 > NOTIFY_BYTES - 100:
            payloads.append(json.dumps({"from": sender, "kind": kind, "values": batch}))
            batch, size = [], 0
        batch.append(value)
        size += len(value) + 3
    if batch:
        payloads.append(json.dumps({"from": sender, "kind": kind, "values": batch}))
    return payloads


class _Prepared:
    """The queue's statements compiled once for a dialect (:class:`Prepared`): the
    writer runs them on the driver's cursor."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        is_sqlite = dialect.name == "sqlite"
        insert = sqlite_insert(_D) if is_sqlite else pg_insert(_D)
        names = [c.name for c in _D.c if c.name != "execution_id"]
        upsert = insert.on_conflict_do_update(
            index_elements=[_D.c.execution_id],
            set_={name: getattr(insert.excluded, name) for name in names},
        )
        self.upsert = Prepared(upsert, dialect, [c.name for c in _D.c])
        key = bindparam("execution_id", type_=_D.c.execution_id.type)
        self.remove = Prepared(delete(_D).where(_D.c.execution_id == key), dialect)
        self.signal = Prepared(_S.insert(), dialect, ["channel", "payload", "at"])
        self.notify = Prepared(
            select(func.pg_notify(bindparam("channel"), bindparam("payload"))), dialect
        )
        self._claims: dict[tuple[int, int], Prepared] = {}

    def claim(self, instances: int, limit: int) -> Prepared:
        """The claim of up to ``limit`` rows of ``instances`` instances (binds ``i0``...,
        ``now``, ``runner_id``, ``expires_at``, ``lease_end``)."""
        prepared = self._claims.get((instances, limit))
        if prepared is None:
            names = [bindparam(f"i{n}", type_=_D.c.instance.type) for n in range(instances)]
            picked = (
                select(_D.c.execution_id)
                .where(
                    _D.c.state == RowState.QUEUED.value,
                    _D.c.instance.in_(names),
                    _D.c.ready_at <= bindparam("now", type_=_D.c.ready_at.type),
                )
                .order_by(_D.c.ready_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            lease_end = bindparam("lease_end", type_=_D.c.deadline.type)
            statement = (
                update(_D)
                .where(_D.c.execution_id.in_(picked.scalar_subquery()))
                .values(
                    state=RowState.LEASED.value,
                    runner_id=bindparam("runner_id", type_=_D.c.runner_id.type),
                    expires_at=bindparam("expires_at", type_=_D.c.expires_at.type),
                    deadline=case(
                        (_D.c.timeout_s.is_(None), None), else_=_D.c.timeout_s + lease_end
                    ),
                )
                .returning(*_D.c)
            )
            prepared = self._claims.setdefault(
                (instances, limit), Prepared(statement, self.dialect)
            )
        return prepared


class QueueStatements:
    """The row changes and signals of a batch of records, in the writer's transaction."""

    def __init__(self, is_sqlite: bool, sender: str) -> None:
        self.is_sqlite = is_sqlite
        self.sender = sender
        self._prepared: _Prepared | None = None

    def prepared(self, dialect: Dialect) -> _Prepared:
        if self._prepared is None:
            self._prepared = _Prepared(dialect)
        return self._prepared

    def apply(self, conn: Connection, changes: Sequence[QueueChange]) -> None:
        sql = self.prepared(conn.dialect)
        removed = [c.remove for c in changes if c.remove is not None]
        put = {c.put.execution_id: c.put for c in changes if c.put is not None}
        if removed:
            sql.remove.execute(conn, [{"execution_id": i} for i in removed])
        if put:
            sql.upsert.execute(conn, [queued_values(w) for w in put.values()])
        signals: list[tuple[str, list[str]]] = []
        if put:
            ready = {w.instance: max(w.ready_at, 0.0) for w in put.values()}
            signals.append((QUEUED_SIGNAL, [f"{name}@{at:.3f}" for name, at in ready.items()]))
        if removed:
            signals.append((FINAL_SIGNAL, [str(i) for i in removed]))
        for kind, values in signals:
            for payload in _chunks(kind, values, self.sender):
                if self.is_sqlite:
                    sql.signal.execute(
                        conn, [{"channel": kind, "payload": payload, "at": time.time()}]
                    )
                else:
                    sql.notify.execute(conn, [{"channel": NOTIFY_CHANNEL, "payload": payload}])


_DOCUMENTS: dict[str, Lookup] = {}


def documents(conn: Connection, execution_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The stored documents of these executions (sealed ones as they are stored), by a
    statement prepared once per number of ids (:class:`Lookup`)."""
    if not execution_ids:
        return {}
    lookup = _DOCUMENTS.get(conn.dialect.name)
    if lookup is None:
        columns = [t.executions.c.document]
        lookup = _DOCUMENTS.setdefault(
            conn.dialect.name, Lookup(t.executions.c.id, columns, conn.dialect)
        )
    found = lookup.find(conn, execution_ids)
    return {
        i: json.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
        for i, row in found.items()
    }
