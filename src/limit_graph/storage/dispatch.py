"""The dispatch queue: the executions waiting for runners and the leases they run under,
shared by every API process of one platform (``orchestration/dispatch.py`` decides; this
keeps the state).

Each execution handed to runners has one row from the moment its ``queued`` record is
written until its final one is: the row changes in the same transaction as the record
(:class:`QueueChange`, given to ``Storage.write_execution``), so a record and its row
never disagree.  A row is

- ``queued``: claimable from ``ready_at`` (later than now for a retry after a backoff);
- ``leased``: a runner holds it until ``expires_at``, which its heartbeats push on, and
  it is overdue at ``deadline`` (its start, its timeout and one lease); ``cancel`` asks
  the runner to stop;
- ``reporting``: a result was accepted, and its final record is being written;
- ``expired``: its lease ran out (or it is overdue), and a reaper took it to write what
  follows (a retry, a time-out, a failure); the runner's result comes too late.

A claim, a renewal, a report's acceptance and the reaper's take of expired leases are
each one atomic statement (on Postgres under ``FOR UPDATE SKIP LOCKED``, on SQLite in
a write transaction, which is exclusive), so two processes never take the same row.
A process that takes a row and dies leaves it with an ``expires_at`` that passes:
another process's reaper takes it then.

``storage/memory_dispatch.py`` is the queue of one process (the memory and file stores,
which one process owns, and a database store told to keep it in memory);
``storage/database/dispatch.py`` is the shared one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from limit_graph.core.models import Execution

__all__ = [
    "FINAL_SIGNAL",
    "QUEUED_SIGNAL",
    "DispatchQueue",
    "Held",
    "QueueChange",
    "QueuedWork",
    "RowState",
    "RunnerSeen",
    "Settled",
    "SignalListener",
    "is_due",
    "queued_row",
    "settlement",
]

QUEUED_SIGNAL = "queued"
"""Work was queued (the payload names the instances and when it is ready)."""
FINAL_SIGNAL = "final"
"""Executions ended (the payload names them)."""

SignalListener = Callable[[str, list[str]], None]
"""Called with a signal's channel and values, for signals another process sent."""


class RowState(StrEnum):
    QUEUED = "queued"
    LEASED = "leased"
    REPORTING = "reporting"
    EXPIRED = "expired"


class Settled(StrEnum):
    """What became of one reported result."""

    ACCEPTED = "accepted"
    """The runner held the lease of that attempt: the row is ``reporting`` now."""
    DUPLICATE = "duplicate"
    """That attempt's result is being recorded already."""
    OTHER_RUNNER = "other-runner"
    """Another runner holds the lease of that attempt."""
    GONE = "gone"
    """No row holds that attempt: it ended, or went on to another attempt."""


@dataclass(frozen=True)
class QueuedWork:
    """An execution (attempt) to queue for a runner of ``instance``."""

    execution_id: uuid.UUID
    instance: str
    attempt: int
    ready_at: float
    timeout_s: float | None = None
    pinned: bool = False
    """Kept on its instance when it is retried (fan-out work)."""
    family: str | None = None
    """The target family it was routed for, which a failover keeps."""


@dataclass(frozen=True)
class QueueChange:
    """What a record's write does to its row: queue it (``put``), or drop it (``remove``,
    with the final record)."""

    put: QueuedWork | None = None
    remove: uuid.UUID | None = None

    @classmethod
    def queue(cls, work: QueuedWork) -> QueueChange:
        return cls(put=work)

    @classmethod
    def done(cls, execution_id: uuid.UUID) -> QueueChange:
        return cls(remove=execution_id)


@dataclass(frozen=True)
class Held:
    """One row of the queue."""

    execution_id: uuid.UUID
    instance: str
    attempt: int
    state: RowState
    ready_at: float
    runner_id: str | None = None
    expires_at: float | None = None
    deadline: float | None = None
    timeout_s: float | None = None
    cancel: bool = False
    pinned: bool = False
    family: str | None = None


@dataclass(frozen=True)
class RunnerSeen:
    runner_id: str
    pool: str
    instances: tuple[str, ...]
    seen_at: float


class DispatchQueue(Protocol):
    """The rows of work for runners; every method is atomic on its own."""

    def listen(self, listener: SignalListener, waiting: Callable[[], bool]) -> None:
        """Call ``listener`` for the signals other processes send (none in a store
        that one process owns); ``waiting()`` says whether anything waits for one now
        (a queue that polls for signals may poll less often otherwise)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def claim(
        self,
        instances: Sequence[str],
        runner_id: str,
        limit: int,
        *,
        now: float,
        lease_s: float,
    ) -> list[tuple[Held, Execution | None]]:
        """Lease up to ``limit`` ready rows of ``instances`` to ``runner_id``, oldest first,
        each with its execution's record as it is stored."""
        ...

    async def renew(
        self, runner_id: str, execution_ids: Sequence[uuid.UUID], expires_at: float
    ) -> list[uuid.UUID]:
        """Push on the leases ``runner_id`` holds among ``execution_ids``; the executions
        it holds that it must cancel come back."""
        ...

    async def settle(
        self, runner_id: str, results: Sequence[tuple[uuid.UUID, int]], *, hold_until: float
    ) -> dict[uuid.UUID, tuple[Settled, Held | None, Execution | None]]:
        """Accept the results of the leases ``runner_id`` holds at those attempts (each
        with its row as it was, and an accepted one with its execution's record); the
        accepted rows are ``reporting`` until ``hold_until``."""
        ...

    async def take(
        self, execution_id: uuid.UUID, *, states: Sequence[RowState], hold_until: float
    ) -> Held | None:
        """Take the row if it is in one of ``states`` (a cancellation, or a lease that
        outlived its grace): it becomes ``reporting``, flagged ``cancel``, until
        ``hold_until``; ``None`` when it is not there or in another state."""
        ...

    async def ask_cancel(self, execution_id: uuid.UUID) -> Held | None:
        """Flag a leased row for cancellation; the row, or ``None`` if it is not leased."""
        ...

    async def expired(self, *, now: float, hold_until: float, limit: int = 256) -> list[Held]:
        """Rows whose lease (or report) expired or that are overdue, as they were; each
        is ``expired`` now until ``hold_until``, so that one process deals with it and
        no result of the attempt is accepted any more."""
        ...

    async def drop(self, execution_ids: Sequence[uuid.UUID]) -> None:
        """Remove rows that no longer stand for an unfinished attempt."""
        ...

    async def held(self, execution_ids: Sequence[uuid.UUID]) -> list[Held]: ...

    async def adopt(self, work: Sequence[QueuedWork], leased: Sequence[QueuedWork]) -> int:
        """Rows for unfinished executions that have none (written before the queue was
        shared): ``work`` queued, ``leased`` as leases that have expired; how many."""
        ...

    async def counts(self) -> dict[tuple[str, RowState], int]:
        """Rows per (instance, state)."""
        ...

    async def seen(
        self, runner_id: str, pool: str, instances: Sequence[str], *, now: float
    ) -> None: ...

    async def runners(self, *, since: float) -> list[RunnerSeen]: ...

    async def forget_runner(self, runner_id: str) -> None: ...


def queued_row(work: QueuedWork) -> Held:
    """The ``queued`` row of ``work``."""
    return Held(
        execution_id=work.execution_id,
        instance=work.instance,
        attempt=work.attempt,
        state=RowState.QUEUED,
        ready_at=work.ready_at,
        timeout_s=work.timeout_s,
        pinned=work.pinned,
        family=work.family,
    )


def settlement(row: Held | None, runner_id: str, attempt: int) -> Settled:
    """The rule every queue applies to one reported result."""
    if row is None or row.attempt != attempt or row.state in (RowState.QUEUED, RowState.EXPIRED):
        return Settled.GONE
    if row.state is RowState.REPORTING:
        return Settled.DUPLICATE
    if row.runner_id != runner_id:
        return Settled.OTHER_RUNNER
    return Settled.ACCEPTED


def is_due(row: Held, now: float) -> bool:
    if row.state is RowState.QUEUED:
        return False
    expired = row.expires_at is not None and row.expires_at < now
    overdue = row.deadline is not None and row.deadline < now
    return expired or overdue
