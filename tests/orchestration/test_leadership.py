"""Leadership: of the processes sharing a store, one runs a guarded service at a time.

Two stores opened on one database stand for two API processes (SQLite and Postgres).
Rounds are driven by hand with a fake clock where the test is about time; the loops
run for real, with a lease of a fraction of a second, where it is about the loops.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from limit_graph.orchestration.leadership import Leadership, process_holder
from limit_graph.storage.base import Storage
from limit_graph.storage.leases import LeaseStore
from limit_graph.storage.memory_leases import MemoryLeaseStore
from tests.fixtures.clock import FakeClock
from tests.fixtures.migrations import url
from tests.fixtures.shared_database import two_stores
from tests.fixtures.waiting import eventually

__all__ = ["two_stores", "url"]

LOG = "limit_graph.orchestration.leadership"
TTL = 5.0


class Recorder:
    """The service a leadership guards: what it was told, in order."""

    def __init__(self, name: str, events: list[tuple[str, str]]) -> None:
        self.name = name
        self.events = events

    async def gained(self) -> None:
        self.events.append((self.name, "gained"))

    async def lost(self) -> None:
        self.events.append((self.name, "lost"))

    async def resigned(self) -> None:
        self.events.append((self.name, "resigned"))


def leading(
    leases: LeaseStore,
    holder: str,
    events: list[tuple[str, str]],
    clock: FakeClock | None = None,
    ttl_s: float = TTL,
) -> Leadership:
    service = Recorder(holder, events)
    extra = {"clock": clock} if clock is not None else {}
    return Leadership(
        leases,
        "mirror",
        holder,
        on_gained=service.gained,
        on_lost=service.lost,
        on_resign=service.resigned,
        ttl_s=ttl_s,
        **extra,
    )


class FlakyLeases:
    """A real lease store whose connection can be cut (``down``) or made to hang."""

    def __init__(self) -> None:
        self.inner = MemoryLeaseStore()
        self.down = False
        self.hang = asyncio.Event()  # set: answers; clear: hangs
        self.hang.set()

    async def _reach(self) -> None:
        await self.hang.wait()
        if self.down:
            raise ConnectionError("the database went away")

    async def acquire(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        await self._reach()
        return await self.inner.acquire(name, holder, ttl_s, now)

    async def release(self, name: str, holder: str) -> bool:
        await self._reach()
        return await self.inner.release(name, holder)

    async def holder(self, name: str, now: float) -> str | None:
        await self._reach()
        return await self.inner.holder(name, now)


# --- two processes, rounds by hand ----------------------------------------------------


async def test_one_leads_and_the_other_takes_over_once_the_dead_ones_lease_ran_out(
    two_stores: tuple[Storage, Storage],
) -> None:
    clock, events = FakeClock(1_800_000_000.0), list[tuple[str, str]]()
    first = leading(two_stores[0].leases, "p1", events, clock)
    second = leading(two_stores[1].leases, "p2", events, clock)
    assert await first.tick()
    assert not await second.tick()
    assert (first.current_holder, second.current_holder) == ("p1", "p1")
    for _ in range(6):  # the leader renews every ttl/3; the other keeps asking
        clock.advance(TTL / 3)
        assert await first.tick()
        assert not await second.tick()
    assert events == [("p1", "gained")]

    # p1 dies without a word: its last renewal holds until now + TTL
    clock.advance(TTL - 0.01)
    assert not await second.tick()
    clock.advance(0.01)
    assert await second.tick()
    assert second.current_holder == "p2"
    assert events == [("p1", "gained"), ("p2", "gained")]

    # p1 was only stalled: its next renewal is refused, and it stops its service
    assert not await first.tick()
    assert not first.is_leader and first.current_holder == "p2"
    assert events[-1] == ("p1", "lost")


async def test_close_gives_the_lease_back_so_the_other_takes_over_at_once(
    two_stores: tuple[Storage, Storage],
) -> None:
    clock, events = FakeClock(1_800_000_000.0), list[tuple[str, str]]()
    first = leading(two_stores[0].leases, "p1", events, clock)
    second = leading(two_stores[1].leases, "p2", events, clock)
    await first.start()
    await second.start()
    assert first.is_leader and not second.is_leader
    await second.close()  # not the leader: nothing to stop, nothing to give back
    assert await two_stores[0].leases.holder("mirror", clock()) == "p1"
    await first.close()
    assert events == [("p1", "gained"), ("p1", "resigned")]
    assert await two_stores[1].leases.holder("mirror", clock()) is None
    third = leading(two_stores[1].leases, "p3", events, clock)
    assert await third.tick()  # the same instant
    assert events[-1] == ("p3", "gained")


# --- two processes, real loops ----------------------------------------------------------


async def test_the_loops_hand_over_when_the_leader_is_killed(
    two_stores: tuple[Storage, Storage],
) -> None:
    """``kill -9``: the leader's loop stops between two renewals, nothing is released."""
    events: list[tuple[str, str]] = []
    first = leading(two_stores[0].leases, process_holder(), events, ttl_s=0.3)
    second = leading(two_stores[1].leases, process_holder(), events, ttl_s=0.3)
    loops = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    try:
        await eventually(lambda: _leaders(first, second), lambda n: n == 1, 5, 0.02)
        await asyncio.sleep(0.5)  # several rounds: the leader keeps it, the other waits
        assert await _leaders(first, second) == 1 and len(events) == 1
        leader, other = (first, second) if first.is_leader else (second, first)
        assert other.current_holder == leader.holder
        loops[0 if leader is first else 1].cancel()
        await eventually(lambda: _leaders(other), lambda n: n == 1, 3, 0.02)
        assert events == [(leader.holder, "gained"), (other.holder, "gained")]
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)


async def _leaders(*leaderships: Leadership) -> int:
    return sum(lead.is_leader for lead in leaderships)


# --- an unreachable store -----------------------------------------------------------------


async def test_a_leader_cut_off_from_the_store_steps_down_after_the_ttl(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, events, leases = FakeClock(1_800_000_000.0), list[tuple[str, str]](), FlakyLeases()
    lead = leading(leases, "p1", events, clock)
    assert await lead.tick()
    leases.down = True
    with caplog.at_level(logging.INFO, LOG):
        for _ in range(2):  # within the lease it still leads
            clock.advance(TTL / 3)
            assert await lead.tick()
        clock.advance(TTL / 3)  # the last renewal ran out
        assert not await lead.tick()
        assert events == [("p1", "gained"), ("p1", "lost")]
        clock.advance(TTL / 3)
        assert not await lead.tick()
        failing = [r for r in caplog.records if "could not renew" in r.getMessage()]
        assert len(failing) == 1 and failing[0].exc_info is None  # once, no traceback
        leases.down = False
        clock.advance(TTL / 3)
        assert await lead.tick()  # nobody took it meanwhile
    assert events[-1] == ("p1", "gained")
    assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_a_leader_whose_store_hangs_steps_down_when_its_lease_runs_out() -> None:
    events: list[tuple[str, str]] = []
    leases = FlakyLeases()
    lead = leading(leases, "p1", events, ttl_s=0.3)
    assert await lead.tick()
    leases.hang.clear()
    round_ = asyncio.create_task(lead.tick())
    await eventually(lambda: _leaders(lead), lambda n: n == 0, 3, 0.02)
    assert events == [("p1", "gained"), ("p1", "lost")]
    assert not round_.done()  # the hung statement is not cancelled, only not waited on
    leases.hang.set()
    assert not await round_  # its late answer does not count: the lease ran out meanwhile


async def test_a_service_that_cannot_start_gives_its_lease_back() -> None:
    leases, events = MemoryLeaseStore(), list[tuple[str, str]]()

    async def broken() -> None:
        events.append(("p1", "gained"))
        raise RuntimeError("no Prefect")

    lead = Leadership(
        leases,
        "supervisor",
        "p1",
        on_gained=broken,
        on_lost=Recorder("p1", events).lost,
        clock=FakeClock(),
    )
    assert not await lead.tick()
    assert events == [("p1", "gained"), ("p1", "lost")]
    assert await leases.holder("supervisor", FakeClock()()) is None
