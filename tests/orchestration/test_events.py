"""Session event streams wake for writes to their own session only: a commit in one
session makes its streams re-read the ledger, not every open stream's."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from limit_graph.core.models import ProvenanceEntry
from limit_graph.orchestration.events import SessionEvents
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.memory import MemoryStorage

A, B = uuid.UUID(int=0xA), uuid.UUID(int=0xB)
FOREVER_S = 3600.0
"""A poll interval no test waits out: only a wake-up makes a stream re-read."""


class CountingStorage(MemoryStorage):
    """The memory store, counting the ledger reads of each session and saying so."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[uuid.UUID | None] = Counter()
        self.read_done = asyncio.Event()

    async def list_entries(
        self, *, session_id: uuid.UUID | None = None, after: int = -1, limit: int = 1000
    ) -> list[ProvenanceEntry]:
        found = await super().list_entries(session_id=session_id, after=after, limit=limit)
        self.reads[session_id] += 1
        self.read_done.set()
        return found


async def _settle(storage: CountingStorage) -> None:
    """Until no stream reads any more (each has gone back to waiting)."""
    while True:
        storage.read_done.clear()
        for _ in range(20):
            await asyncio.sleep(0)
        if not storage.read_done.is_set():
            return


def _draft(session_id: uuid.UUID, n: int) -> EntryDraft:
    return EntryDraft(
        actor="alice",
        action="session.noted",
        resource_type="session",
        resource_id=str(session_id),
        session_id=session_id,
        payload={"n": n},
    )


@pytest.fixture
async def storage() -> AsyncIterator[CountingStorage]:
    store = CountingStorage()
    await store.start()
    yield store
    await store.close()


async def test_a_write_wakes_its_sessions_streams_and_no_other(storage: CountingStorage) -> None:
    events = SessionEvents(storage)
    seen: dict[uuid.UUID, list[int]] = {A: [], B: []}

    async def follow(session_id: uuid.UUID) -> None:
        async for entry in events.stream(session_id, poll_interval_s=FOREVER_S):
            seen[session_id].append(entry.index)

    streams = [asyncio.create_task(follow(s)) for s in (A, A, B)]
    await _settle(storage)
    assert storage.reads == {A: 2, B: 1}

    written = await storage.write_entry(_draft(B, 1))
    events.notify(B)
    await _settle(storage)
    assert storage.reads == {A: 2, B: 3}, "B's stream read its entry, then found no more"
    assert seen == {A: [], B: [written.index]}

    events.notify(A)
    await _settle(storage)
    assert storage.reads == {A: 4, B: 3}, "both of A's streams re-read; B's did not"

    events.notify()
    await _settle(storage)
    assert storage.reads == {A: 6, B: 4}, "a wake-up for everyone wakes every stream"

    events.drain()
    events.notify()
    await asyncio.wait_for(asyncio.gather(*streams), timeout=5)


async def test_a_stream_ends_its_wait_when_the_server_drains(storage: CountingStorage) -> None:
    events = SessionEvents(storage)
    written = await storage.write_entry(_draft(A, 1))

    async def entries() -> list[int]:
        return [e.index async for e in events.stream(A, poll_interval_s=FOREVER_S)]

    task = asyncio.create_task(entries())
    await _settle(storage)
    events.drain()
    assert await asyncio.wait_for(task, timeout=5) == [written.index]
