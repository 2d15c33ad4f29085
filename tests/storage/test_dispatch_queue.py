"""The dispatch queue shared by the processes on one database (two stores on one SQLite
file or Postgres schema are two API processes), and the memory queue with the same rules.

A record and its queue row change in one transaction; claims from two processes at
once take different rows; a report is accepted once, for the runner and attempt that
hold the lease; the reaper's take of an expired lease goes to one process; and a
process hears the other's signals.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from limit_graph.core.models import BackendKind, Execution, ExecutionState, Session
from limit_graph.storage.base import Storage
from limit_graph.storage.dispatch import (
    FINAL_SIGNAL,
    QUEUED_SIGNAL,
    QueueChange,
    QueuedWork,
    RowState,
    Settled,
)
from limit_graph.storage.memory import MemoryStorage
from tests.fixtures.records import commit_session, make_execution, make_session

LEASE_S = 10.0


def _queued(session: Session, instance: str = "remote-a") -> Execution:
    execution = make_execution(session, state=ExecutionState.QUEUED, backend=BackendKind.REMOTE)
    return execution.model_copy(update={"instance": instance})


async def _queue(
    store: Storage, n: int, *, instance: str = "remote-a", now: float = 0.0
) -> list[Execution]:
    session = await commit_session(store, make_session())
    written = []
    for _ in range(n):
        execution = _queued(session, instance)
        work = QueuedWork(execution.id, instance, 1, now, 30.0)
        written.append(
            await store.write_execution(
                execution, actor="alice", action="execution.queued", queue=QueueChange.queue(work)
            )
        )
    return written


@pytest.fixture
async def memory() -> AsyncIterator[Storage]:
    store = MemoryStorage()
    await store.start()
    yield store
    await store.close()


async def test_a_record_written_queued_is_claimable_once_and_its_final_write_removes_it(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    (execution,) = await _queue(first, 1)
    assert await second.dispatch.counts() == {("remote-a", RowState.QUEUED): 1}
    taken = await second.dispatch.claim(["remote-a"], "r-1", 10, now=1.0, lease_s=LEASE_S)
    assert [row.execution_id for row, _ in taken] == [execution.id]
    assert taken[0][1] == execution  # the record as stored comes with it
    assert taken[0][0].expires_at == 1.0 + LEASE_S
    assert taken[0][0].deadline == 1.0 + LEASE_S + 30.0  # its start, its timeout, one lease
    assert await first.dispatch.claim(["remote-a"], "r-2", 10, now=1.0, lease_s=LEASE_S) == []
    final = execution.model_copy(update={"state": ExecutionState.SUCCEEDED})
    await first.write_execution(
        final, actor="alice", action="execution.succeeded", queue=QueueChange.done(execution.id)
    )
    assert await second.dispatch.counts() == {}


async def test_a_refused_write_leaves_no_row(two_stores: tuple[Storage, Storage]) -> None:
    first, _ = two_stores
    session = await commit_session(first, make_session())
    execution = _queued(session)
    work = QueuedWork(execution.id, "remote-a", 1, 0.0)
    await first.write_execution(
        execution, actor="alice", action="execution.queued", queue=QueueChange.queue(work)
    )
    twin = _queued(session).model_copy(update={"idempotency_key": "k"})
    first_keyed = await first.write_execution(
        twin,
        actor="alice",
        action="execution.queued",
        queue=QueueChange.queue(QueuedWork(twin.id, "remote-a", 1, 0.0)),
    )
    late = twin.model_copy(update={"id": uuid.uuid4()})  # same key: the earlier one is found
    found = await first.write_execution(
        late,
        actor="alice",
        action="execution.queued",
        queue=QueueChange.queue(QueuedWork(late.id, "remote-a", 1, 0.0)),
    )
    assert found.id == first_keyed.id
    assert await first.dispatch.held([late.id]) == []
    assert len(await first.dispatch.held([execution.id, twin.id])) == 2


async def test_claims_of_two_processes_at_once_take_different_rows(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    written = await _queue(first, 60)

    async def claims(store: Storage, runner: str) -> list[uuid.UUID]:
        taken: list[uuid.UUID] = []
        for _ in range(12):
            rows = await store.dispatch.claim(["remote-a"], runner, 4, now=1.0, lease_s=LEASE_S)
            taken += [row.execution_id for row, _ in rows]
        return taken

    one, two = await asyncio.gather(claims(first, "r-1"), claims(second, "r-2"))
    assert not set(one) & set(two)
    assert sorted(one + two) == sorted(e.id for e in written)


async def test_a_report_is_accepted_once_for_the_runner_and_attempt_that_hold_the_lease(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    a, b = await _queue(first, 2)
    await first.dispatch.claim(["remote-a"], "r-1", 10, now=1.0, lease_s=LEASE_S)
    outcome = await second.dispatch.settle("r-1", [(a.id, 1), (b.id, 2)], hold_until=2.0 + LEASE_S)
    assert outcome[a.id][0] is Settled.ACCEPTED
    assert outcome[b.id][0] is Settled.GONE  # attempt 2 holds no lease
    again = await first.dispatch.settle("r-1", [(a.id, 1)], hold_until=3.0)
    assert again[a.id][0] is Settled.DUPLICATE
    other = await first.dispatch.settle("r-2", [(b.id, 1)], hold_until=3.0)
    assert other[b.id][0] is Settled.OTHER_RUNNER


async def test_an_expired_lease_is_taken_by_one_process(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    (execution,) = await _queue(first, 1)
    await first.dispatch.claim(["remote-a"], "r-1", 10, now=1.0, lease_s=LEASE_S)
    assert await second.dispatch.expired(now=5.0, hold_until=15.0) == []
    cancels = await second.dispatch.renew("r-1", [execution.id], 20.0)
    assert cancels == []
    assert await second.dispatch.expired(now=15.0, hold_until=25.0) == []
    taken = await asyncio.gather(
        first.dispatch.expired(now=21.0, hold_until=31.0),
        second.dispatch.expired(now=21.0, hold_until=31.0),
    )
    assert sorted(len(t) for t in taken) == [0, 1]
    assert [r.execution_id for r in taken[0] + taken[1]] == [execution.id]


async def _late_report_after_expiry(first: Storage, second: Storage) -> None:
    (execution,) = await _queue(first, 1)
    await first.dispatch.claim(["remote-a"], "r-1", 10, now=1.0, lease_s=LEASE_S)
    (taken,) = await second.dispatch.expired(now=12.0, hold_until=22.0)
    assert taken.state is RowState.LEASED and taken.runner_id == "r-1"  # as it was
    # The runner's result and heartbeat come after the reaper took the lease: the
    # result is refused (the reaper writes what follows), the lease is not renewed.
    late = await first.dispatch.settle("r-1", [(execution.id, 1)], hold_until=23.0)
    assert late[execution.id][0] is Settled.GONE
    await first.dispatch.renew("r-1", [execution.id], 40.0)
    (row,) = await first.dispatch.held([execution.id])
    assert row.state is RowState.EXPIRED and row.expires_at == 22.0
    assert await first.dispatch.expired(now=21.0, hold_until=31.0) == []
    # A reaper that took it and died: another takes it once its hold has passed.
    again = await first.dispatch.expired(now=23.0, hold_until=33.0)
    assert [r.execution_id for r in again] == [execution.id]


async def test_a_result_reported_after_the_reaper_took_the_lease_is_refused(
    two_stores: tuple[Storage, Storage],
) -> None:
    await _late_report_after_expiry(*two_stores)


async def test_the_memory_queue_refuses_a_result_reported_after_expiry(memory: Storage) -> None:
    await _late_report_after_expiry(memory, memory)


async def test_cancellation_flags_a_lease_and_its_runner_hears_of_it(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    a, b = await _queue(first, 2)
    await first.dispatch.claim(["remote-a"], "r-1", 1, now=1.0, lease_s=LEASE_S)
    flagged = await second.dispatch.ask_cancel(a.id)
    assert flagged is not None and flagged.cancel
    assert await second.dispatch.ask_cancel(b.id) is None  # queued, not leased
    assert await first.dispatch.renew("r-1", [a.id], 20.0) == [a.id]
    taken = await first.dispatch.take(b.id, states=[RowState.QUEUED], hold_until=9.0)
    assert taken is not None and taken.state is RowState.QUEUED
    assert await second.dispatch.take(b.id, states=[RowState.QUEUED], hold_until=9.0) is None


async def test_a_process_hears_what_another_queued_and_finished(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    heard: list[tuple[str, list[str]]] = []
    got = asyncio.Event()

    def listener(kind: str, values: list[str]) -> None:
        heard.append((kind, values))
        got.set()

    second.dispatch.listen(listener, lambda: True)
    await second.dispatch.start()
    await asyncio.sleep(0.2)  # listening before the first write
    (execution,) = await _queue(first, 1, instance="remote-b", now=7.5)
    await asyncio.wait_for(got.wait(), 5)
    assert heard[0] == (QUEUED_SIGNAL, ["remote-b@7.500"])
    got.clear()
    final = execution.model_copy(update={"state": ExecutionState.SUCCEEDED})
    await first.write_execution(
        final, actor="alice", action="execution.succeeded", queue=QueueChange.done(execution.id)
    )
    await asyncio.wait_for(got.wait(), 5)
    assert heard[-1] == (FINAL_SIGNAL, [str(execution.id)])
    assert all(kind in (QUEUED_SIGNAL, FINAL_SIGNAL) for kind, _ in heard)


async def test_unfinished_executions_without_a_row_are_adopted_once(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    (execution,) = await _queue(first, 1)
    other = QueuedWork(uuid.uuid4(), "remote-a", 2, 0.0)
    added = await second.dispatch.adopt([QueuedWork(execution.id, "remote-a", 1, 0.0)], [other])
    assert added == 1  # the queued one had its row already
    (row,) = await first.dispatch.held([other.execution_id])
    assert row.state is RowState.LEASED and row.expires_at == 0.0


async def test_the_memory_queue_follows_the_same_rules(memory: Storage) -> None:
    a, b = await _queue(memory, 2)
    taken = await memory.dispatch.claim(["remote-a"], "r-1", 1, now=1.0, lease_s=LEASE_S)
    assert [row.execution_id for row, _ in taken] == [a.id]
    outcome = await memory.dispatch.settle("r-1", [(a.id, 1), (b.id, 1)], hold_until=20.0)
    assert outcome[a.id][0] is Settled.ACCEPTED and outcome[b.id][0] is Settled.GONE
    assert (await memory.dispatch.settle("r-1", [(a.id, 1)], hold_until=20.0))[a.id][
        0
    ] is Settled.DUPLICATE
    assert [r.execution_id for r in await memory.dispatch.expired(now=21.0, hold_until=31.0)] == [
        a.id
    ]
    final = b.model_copy(update={"state": ExecutionState.CANCELLED})
    await memory.write_execution(
        final, actor="alice", action="execution.cancelled", queue=QueueChange.done(b.id)
    )
    assert await memory.dispatch.held([b.id]) == []
