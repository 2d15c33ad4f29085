"""The dispatch queue of one process (``storage/dispatch.py`` says what its rows mean):
rows in a dict, each with the record it was queued with.  The memory and file stores
use it, and so does a database store whose API process is alone
(``[dispatch] queue = "process"``): its rows change after their records commit, and
a restart queues the unfinished records again."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from limit_graph.core.models import Execution
from limit_graph.storage.dispatch import (
    Held,
    QueueChange,
    QueuedWork,
    RowState,
    RunnerSeen,
    Settled,
    SignalListener,
    is_due,
    queued_row,
    settlement,
)

__all__ = ["MemoryDispatchQueue"]


class MemoryDispatchQueue:
    """The queue of one process: rows in a dict, in the order put, each with the record
    it was put with (or, with ``records``, the one that finds it in a store in memory).
    A claim may come without a record (a row adopted from the store): the caller reads
    it."""

    def __init__(self, records: Callable[[uuid.UUID], Execution | None] | None = None) -> None:
        self._lookup = records
        self._kept: dict[uuid.UUID, Execution] = {}
        self._rows: dict[uuid.UUID, Held] = {}
        self._flagged: set[uuid.UUID] = set()
        """Rows flagged for cancellation (dropped with their rows)."""
        self._runners: dict[str, RunnerSeen] = {}

    def listen(self, listener: SignalListener, waiting: Callable[[], bool]) -> None:
        pass  # no other process

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def apply(self, change: QueueChange, record: Execution | None = None) -> None:
        """The row change of a record just written (``Storage.write_execution``)."""
        if change.remove is not None:
            self._rows.pop(change.remove, None)
            self._kept.pop(change.remove, None)
            self._flagged.discard(change.remove)
        if change.put is not None:
            work = change.put
            self._rows.pop(work.execution_id, None)  # a new attempt goes to the back
            self._rows[work.execution_id] = queued_row(work)
            if record is not None:
                self._kept[work.execution_id] = record

    def _records(self, execution_id: uuid.UUID) -> Execution | None:
        if self._lookup is not None:
            return self._lookup(execution_id)
        return self._kept.get(execution_id)

    async def claim(
        self,
        instances: Sequence[str],
        runner_id: str,
        limit: int,
        *,
        now: float,
        lease_s: float,
    ) -> list[tuple[Held, Execution | None]]:
        wanted = set(instances)
        ready: list[Held] = []
        for row in self._rows.values():  # in the order put: no sort of the whole queue
            if row.state is RowState.QUEUED and row.instance in wanted and row.ready_at <= now:
                ready.append(row)
                if len(ready) >= limit:
                    break
        taken = []
        for row in ready:
            leased = replace(
                row,
                state=RowState.LEASED,
                runner_id=runner_id,
                expires_at=now + lease_s,
                deadline=None if row.timeout_s is None else now + row.timeout_s + lease_s,
            )
            self._rows[row.execution_id] = leased
            taken.append((leased, self._records(row.execution_id)))
        return taken

    async def renew(
        self, runner_id: str, execution_ids: Sequence[uuid.UUID], expires_at: float
    ) -> list[uuid.UUID]:
        for execution_id in execution_ids:
            row = self._rows.get(execution_id)
            if row is not None and row.state is RowState.LEASED and row.runner_id == runner_id:
                self._rows[execution_id] = replace(row, expires_at=expires_at)
        flagged = (self._rows.get(i) for i in self._flagged)  # not the whole queue
        return [
            row.execution_id
            for row in flagged
            if row is not None and row.state is RowState.LEASED and row.runner_id == runner_id
        ]

    async def settle(
        self, runner_id: str, results: Sequence[tuple[uuid.UUID, int]], *, hold_until: float
    ) -> dict[uuid.UUID, tuple[Settled, Held | None, Execution | None]]:
        outcome: dict[uuid.UUID, tuple[Settled, Held | None, Execution | None]] = {}
        for execution_id, attempt in results:
            row = self._rows.get(execution_id)
            settled = (
                Settled.DUPLICATE
                if execution_id in outcome
                else settlement(row, runner_id, attempt)
            )
            accepted = settled is Settled.ACCEPTED
            outcome[execution_id] = (
                settled,
                row,
                self._records(execution_id) if accepted else None,
            )
            if row is not None and accepted:
                self._rows[execution_id] = replace(
                    row, state=RowState.REPORTING, expires_at=hold_until
                )
        return outcome

    async def take(
        self, execution_id: uuid.UUID, *, states: Sequence[RowState], hold_until: float
    ) -> Held | None:
        row = self._rows.get(execution_id)
        if row is None or row.state not in states:
            return None
        taken = replace(row, state=RowState.REPORTING, cancel=True, expires_at=hold_until)
        self._rows[execution_id] = taken
        return row

    async def ask_cancel(self, execution_id: uuid.UUID) -> Held | None:
        row = self._rows.get(execution_id)
        if row is None or row.state is not RowState.LEASED:
            return None
        self._rows[execution_id] = flagged = replace(row, cancel=True)
        self._flagged.add(execution_id)
        return flagged

    async def expired(self, *, now: float, hold_until: float, limit: int = 256) -> list[Held]:
        due = [row for row in self._rows.values() if is_due(row, now)][:limit]
        for row in due:
            self._rows[row.execution_id] = replace(
                row, state=RowState.EXPIRED, expires_at=hold_until, deadline=None
            )
        return due

    async def drop(self, execution_ids: Sequence[uuid.UUID]) -> None:
        for execution_id in execution_ids:
            self._rows.pop(execution_id, None)
            self._kept.pop(execution_id, None)
            self._flagged.discard(execution_id)

    async def held(self, execution_ids: Sequence[uuid.UUID]) -> list[Held]:
        return [row for i in execution_ids if (row := self._rows.get(i)) is not None]

    async def adopt(self, work: Sequence[QueuedWork], leased: Sequence[QueuedWork]) -> int:
        added = 0
        for item, expired in _adoptions(work, leased):
            if item.execution_id not in self._rows:
                row = queued_row(item)
                if expired:
                    row = replace(row, state=RowState.LEASED, runner_id="", expires_at=0.0)
                self._rows[item.execution_id] = row
                added += 1
        return added

    async def counts(self) -> dict[tuple[str, RowState], int]:
        counts: dict[tuple[str, RowState], int] = {}
        for row in self._rows.values():
            key = (row.instance, row.state)
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def seen(
        self, runner_id: str, pool: str, instances: Sequence[str], *, now: float
    ) -> None:
        self._runners[runner_id] = RunnerSeen(runner_id, pool, tuple(instances), now)

    async def runners(self, *, since: float) -> list[RunnerSeen]:
        return [seen for seen in self._runners.values() if seen.seen_at >= since]

    async def forget_runner(self, runner_id: str) -> None:
        self._runners.pop(runner_id, None)


def _adoptions(
    work: Iterable[QueuedWork], leased: Iterable[QueuedWork]
) -> list[tuple[QueuedWork, bool]]:
    return [(item, False) for item in work] + [(item, True) for item in leased]
