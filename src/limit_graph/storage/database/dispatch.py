"""The dispatch queue of the database backend: one queue for every API process on the
database (``storage/dispatch.py`` says what its rows mean).

Claims, renewals, acceptances and the reaper's takes are each one transaction: on
Postgres the rows are picked ``FOR UPDATE SKIP LOCKED`` (two processes claiming at once
take different rows, neither waits for the other), on SQLite every writing transaction
begins ``IMMEDIATE`` and so runs alone.  A record's row changes are written by the
group-commit writer in the record's own transaction (:class:`QueueStatements`), and so
are the signals that wake other processes: ``pg_notify`` on Postgres (delivered when
the transaction commits, to every process that ``LISTEN``s), a row of
``limit_signals`` on SQLite, which the other processes read (every 10 ms while they
wait for something, every second otherwise) from the last ``seq`` they saw.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg
from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.core.models import Execution
from limit_graph.storage import schema as t
from limit_graph.storage.database.dispatch_statements import (
    NOTIFY_CHANNEL,
    QueueStatements,
    documents,
    held_of,
    queued_values,
    raw_held,
)
from limit_graph.storage.dispatch import (
    Held,
    QueuedWork,
    RowState,
    RunnerSeen,
    Settled,
    SignalListener,
    settlement,
)

__all__ = ["DatabaseDispatchQueue"]

log = logging.getLogger(__name__)

Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection]]

FAST_POLL_S = 0.01
SLOW_POLL_S = 1.0
SIGNALS_KEPT_S = 60.0
PRUNE_EVERY_S = 10.0
RUNNERS_KEPT_S = 3600.0

_D = t.dispatch
_R = t.dispatch_runners
_S = t.signals


class DatabaseDispatchQueue:
    """The shared queue (``storage/dispatch.py``'s :class:`DispatchQueue`) on SQLite or
    Postgres."""

    def __init__(
        self,
        read: Connect,
        write: Connect,
        submit: Callable[[Callable[[Connection], Any]], Awaitable[Any]],
        open_execution: Callable[[Any], Awaitable[Execution]],
        url: URL,
        *,
        is_sqlite: bool,
    ) -> None:
        self._read = read
        self._write = write
        self._submit = submit
        self._open = open_execution
        self._url = url
        self.is_sqlite = is_sqlite
        self.sender = uuid.uuid4().hex[:16]
        """This process's name in the signals it sends (its own are not given back)."""
        self.statements = QueueStatements(is_sqlite, self.sender)
        self._listeners: list[SignalListener] = []
        self._task: asyncio.Task[None] | None = None
        self._interest: Callable[[], bool] = lambda: False

    # --- signals --------------------------------------------------------------------

    def listen(self, listener: SignalListener, waiting: Callable[[], bool]) -> None:
        self._listeners.append(listener)
        self._interest = waiting

    async def start(self) -> None:
        if self._task is None and self._listeners:
            follow = self._follow_table if self.is_sqlite else self._follow_notifies
            self._task = asyncio.create_task(follow(), name="limit-dispatch-signals")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _deliver(self, payload: str) -> None:
        try:
            signal = json.loads(payload)
        except ValueError:
            return
        if not isinstance(signal, dict) or signal.get("from") == self.sender:
            return
        kind, values = signal.get("kind"), signal.get("values")
        if not isinstance(kind, str) or not isinstance(values, list):
            return
        for listener in self._listeners:
            try:
                listener(kind, [str(v) for v in values])
            except Exception:
                log.exception("a dispatch signal's listener failed")

    async def _follow_notifies(self) -> None:
        """``LISTEN`` on a connection of its own, connecting again after a loss."""
        conninfo = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    backoff = 0.5
                    async for notify in conn.notifies():
                        self._deliver(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dispatch signals lost (%s); listening again in %.1f s", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _follow_table(self) -> None:
        last: int | None = None
        pruned = time.monotonic()
        while True:
            try:
                async with self._read() as conn:
                    if last is None:
                        last = int(await conn.scalar(select(func.max(_S.c.seq))) or 0)
                    rows = (
                        await conn.execute(
                            select(_S.c.seq, _S.c.payload)
                            .where(_S.c.seq > last)
                            .order_by(_S.c.seq)
                            .limit(1000)
                        )
                    ).all()
                for seq, payload in rows:
                    last = seq
                    self._deliver(payload)
                if time.monotonic() - pruned > PRUNE_EVERY_S:
                    pruned = time.monotonic()
                    async with self._write() as conn:
                        await conn.execute(delete(_S).where(_S.c.at < time.time() - SIGNALS_KEPT_S))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading dispatch signals failed (%s); trying again", exc)
            await asyncio.sleep(FAST_POLL_S if self._interest() else SLOW_POLL_S)

    # --- rows -----------------------------------------------------------------------
    # Each change runs on the group-commit writer's connection, in the transaction of
    # its next batch (one hop off the event loop, no commit of its own under load).

    async def _opened(self, found: dict[uuid.UUID, Any]) -> dict[uuid.UUID, Execution]:
        return {i: await self._open(d) for i, d in found.items()}

    async def claim(
        self,
        instances: Sequence[str],
        runner_id: str,
        limit: int,
        *,
        now: float,
        lease_s: float,
    ) -> list[tuple[Held, Execution | None]]:
        if not instances or limit <= 0:
            return []
        names = list(dict.fromkeys(instances))
        ready = (
            select(_D.c.execution_id)
            .where(
                _D.c.state == RowState.QUEUED.value,
                _D.c.instance.in_(names),
                _D.c.ready_at <= now,
            )
            .limit(1)
        )
        async with self._read() as conn:  # nothing ready: no write
            if await conn.scalar(ready) is None:
                return []
        values: dict[str, Any] = {f"i{n}": name for n, name in enumerate(names)}
        values.update(
            now=now, runner_id=runner_id, expires_at=now + lease_s, lease_end=now + lease_s
        )

        def op(conn: Connection) -> tuple[list[Held], dict[uuid.UUID, Any]]:
            statement = self.statements.prepared(conn.dialect).claim(len(names), limit)
            rows = [raw_held(r) for r in statement.rows(conn, values)]
            return rows, documents(conn, [r.execution_id for r in rows])

        rows, stored = await self._submit(op)
        records = await self._opened(stored)
        ordered = sorted(rows, key=lambda h: h.ready_at)
        return [(row, records.get(row.execution_id)) for row in ordered]

    async def renew(
        self, runner_id: str, execution_ids: Sequence[uuid.UUID], expires_at: float
    ) -> list[uuid.UUID]:
        cancels = select(_D.c.execution_id).where(
            _D.c.runner_id == runner_id,
            _D.c.state == RowState.LEASED.value,
            _D.c.cancel.is_(True),
        )
        if not execution_ids:  # nothing to renew: a read
            async with self._read() as conn:
                return list(await conn.scalars(cancels))
        renewal = (
            update(_D)
            .where(
                _D.c.execution_id.in_(list(execution_ids)),
                _D.c.runner_id == runner_id,
                _D.c.state == RowState.LEASED.value,
            )
            .values(expires_at=expires_at)
        )

        def op(conn: Connection) -> list[uuid.UUID]:
            conn.execute(renewal)
            return list(conn.scalars(cancels))

        renewed: list[uuid.UUID] = await self._submit(op)
        return renewed

    async def settle(
        self, runner_id: str, results: Sequence[tuple[uuid.UUID, int]], *, hold_until: float
    ) -> dict[uuid.UUID, tuple[Settled, Held | None, Execution | None]]:
        ids = list(dict.fromkeys(i for i, _ in results))
        if not ids:
            return {}

        def op(
            conn: Connection,
        ) -> tuple[dict[uuid.UUID, tuple[Settled, Held | None]], dict[uuid.UUID, Any]]:
            rows = {
                row.execution_id: held_of(row)
                for row in conn.execute(
                    select(_D).where(_D.c.execution_id.in_(ids)).with_for_update()
                )
            }
            outcome: dict[uuid.UUID, tuple[Settled, Held | None]] = {}
            for execution_id, attempt in results:
                row = rows.get(execution_id)
                if execution_id in outcome:
                    outcome[execution_id] = (Settled.DUPLICATE, row)
                else:
                    outcome[execution_id] = (settlement(row, runner_id, attempt), row)
            accepted = [i for i, (v, _) in outcome.items() if v is Settled.ACCEPTED]
            if accepted:
                conn.execute(
                    update(_D)
                    .where(_D.c.execution_id.in_(accepted))
                    .values(state=RowState.REPORTING.value, expires_at=hold_until)
                )
            return outcome, documents(conn, accepted)

        outcome, stored = await self._submit(op)
        records = await self._opened(stored)
        return {i: (v, row, records.get(i)) for i, (v, row) in outcome.items()}

    async def take(
        self, execution_id: uuid.UUID, *, states: Sequence[RowState], hold_until: float
    ) -> Held | None:
        def op(conn: Connection) -> Held | None:
            row = conn.execute(
                select(_D)
                .where(
                    _D.c.execution_id == execution_id,
                    _D.c.state.in_([s.value for s in states]),
                )
                .with_for_update()
            ).first()
            if row is None:
                return None
            conn.execute(
                update(_D)
                .where(_D.c.execution_id == execution_id)
                .values(state=RowState.REPORTING.value, cancel=True, expires_at=hold_until)
            )
            return held_of(row)

        taken: Held | None = await self._submit(op)
        return taken

    async def ask_cancel(self, execution_id: uuid.UUID) -> Held | None:
        statement = (
            update(_D)
            .where(_D.c.execution_id == execution_id, _D.c.state == RowState.LEASED.value)
            .values(cancel=True)
            .returning(*_D.c)
        )

        def op(conn: Connection) -> Held | None:
            row = conn.execute(statement).first()
            return held_of(row) if row is not None else None

        flagged: Held | None = await self._submit(op)
        return flagged

    async def expired(self, *, now: float, hold_until: float, limit: int = 256) -> list[Held]:
        due = (_D.c.state != RowState.QUEUED.value) & (
            (_D.c.expires_at < now) | (_D.c.deadline < now)
        )

        def op(conn: Connection) -> list[Held]:
            rows = conn.execute(
                select(_D).where(due).limit(limit).with_for_update(skip_locked=True)
            ).all()
            if rows:
                conn.execute(
                    update(_D)
                    .where(_D.c.execution_id.in_([r.execution_id for r in rows]))
                    .values(state=RowState.EXPIRED.value, expires_at=hold_until, deadline=None)
                )
            return [held_of(r) for r in rows]

        taken: list[Held] = await self._submit(op)
        return taken

    async def drop(self, execution_ids: Sequence[uuid.UUID]) -> None:
        if execution_ids:
            statement = delete(_D).where(_D.c.execution_id.in_(list(execution_ids)))
            await self._submit(lambda conn: conn.execute(statement) and None)

    async def held(self, execution_ids: Sequence[uuid.UUID]) -> list[Held]:
        if not execution_ids:
            return []
        async with self._read() as conn:
            rows = await conn.execute(select(_D).where(_D.c.execution_id.in_(list(execution_ids))))
            return [held_of(r) for r in rows]

    async def adopt(self, work: Sequence[QueuedWork], leased: Sequence[QueuedWork]) -> int:
        rows = [queued_values(w) for w in work]
        rows += [
            {**queued_values(w), "state": RowState.LEASED.value, "runner_id": "", "expires_at": 0.0}
            for w in leased
        ]
        if not rows:
            return 0
        insert = sqlite_insert(_D) if self.is_sqlite else pg_insert(_D)
        statement = insert.on_conflict_do_nothing(index_elements=[_D.c.execution_id]).returning(
            _D.c.execution_id
        )

        def op(conn: Connection) -> int:
            return len(conn.execute(statement, rows).all())

        added: int = await self._submit(op)
        return added

    async def counts(self) -> dict[tuple[str, RowState], int]:
        async with self._read() as conn:
            rows = await conn.execute(
                select(_D.c.instance, _D.c.state, func.count()).group_by(_D.c.instance, _D.c.state)
            )
            return {(instance, RowState(state)): n for instance, state, n in rows}

    async def seen(
        self, runner_id: str, pool: str, instances: Sequence[str], *, now: float
    ) -> None:
        insert = sqlite_insert(_R) if self.is_sqlite else pg_insert(_R)
        statement = insert.values(
            runner_id=runner_id, pool=pool, instances=list(instances), seen_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=[_R.c.runner_id],
            set_={
                "pool": statement.excluded.pool,
                "instances": statement.excluded.instances,
                "seen_at": statement.excluded.seen_at,
            },
        )
        await self._submit(lambda conn: conn.execute(statement) and None)

    async def runners(self, *, since: float) -> list[RunnerSeen]:
        async with self._read() as conn:
            rows = await conn.execute(select(_R).where(_R.c.seen_at >= since))
            return [RunnerSeen(r.runner_id, r.pool, tuple(r.instances), r.seen_at) for r in rows]

    async def forget_runner(self, runner_id: str) -> None:
        """Forget ``runner_id``, and every runner not heard from in an hour."""
        statement = delete(_R).where(
            (_R.c.runner_id == runner_id) | (_R.c.seen_at < time.time() - RUNNERS_KEPT_S)
        )
        await self._submit(lambda conn: conn.execute(statement) and None)
