"""The result cache: entries in the store, the most recent ones also in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from limit_graph.core.models import ExecutionState, utcnow
from limit_graph.orchestration.cache import MEMORY_RESULT_BYTES, NAMESPACE, ResultCache
from limit_graph.storage.database import DatabaseStorage
from tests.fixtures.clock import FakeUtcClock
from tests.fixtures.records import (
    commit_execution,
    commit_session,
    make_execution,
    make_session,
)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[DatabaseStorage]:
    store = DatabaseStorage(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


class CountingStorage:
    """Counts the store's reads of cache entries, and passes everything through."""

    def __init__(self, storage: DatabaseStorage) -> None:
        self._storage = storage
        self.reads = 0

    async def get_value(self, namespace: str, key: str) -> object:
        self.reads += 1
        return await self._storage.get_value(namespace, key)

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)


async def test_a_stored_result_is_found_in_memory_then_by_another_process_in_the_store(
    storage: DatabaseStorage,
) -> None:
    session = await commit_session(storage, make_session())
    original = await commit_execution(storage, make_execution(session))
    counting = CountingStorage(storage)
    here = ResultCache(counting)  # type: ignore[arg-type]
    await here.store("k", original)
    assert await here.lookup("k") == original
    assert counting.reads == 0  # answered from memory

    elsewhere_store = CountingStorage(storage)
    elsewhere = ResultCache(elsewhere_store)  # type: ignore[arg-type]
    assert await elsewhere.lookup("k") == original
    assert await elsewhere.lookup("k") == original
    assert elsewhere_store.reads == 1  # the first lookup read it and kept it
    assert await elsewhere.lookup("other") is None


async def test_an_entry_expires_in_memory_as_in_the_store(storage: DatabaseStorage) -> None:
    session = await commit_session(storage, make_session())
    original = await commit_execution(storage, make_execution(session))
    # Stored a day ago by the cache's clock, for 0.2 s: expired in the store (which goes
    # by the real time) at once, and in memory once the cache's clock has moved on.
    clock = FakeUtcClock(utcnow() - timedelta(days=1))
    cache = ResultCache(storage, ttl_s=0.2, clock=clock)
    await cache.store("k", original)
    assert await cache.lookup("k") == original  # from memory: not expired by its clock
    clock.advance(0.3)
    assert await cache.lookup("k") is None
    assert await storage.get_value(NAMESPACE, "k") is None


async def test_memory_keeps_the_most_recent_entries_and_small_results_only(
    storage: DatabaseStorage,
) -> None:
    session = await commit_session(storage, make_session())
    small = [await commit_execution(storage, make_execution(session)) for _ in range(3)]
    big = make_execution(session).model_copy(update={"result": {"x": "y" * MEMORY_RESULT_BYTES}})
    big = await commit_execution(storage, big)
    counting = CountingStorage(storage)
    cache = ResultCache(counting, memory_entries=2)  # type: ignore[arg-type]
    for n, execution in enumerate(small):
        await cache.store(f"s{n}", execution)
    await cache.store("big", big)
    assert await cache.lookup("s2") == small[2]
    assert await cache.lookup("s1") == small[1]
    assert counting.reads == 0
    assert await cache.lookup("s0") == small[0]  # pushed out of memory: read again
    assert await cache.lookup("big") == big
    assert counting.reads == 2


async def test_an_entry_whose_execution_is_not_a_success_is_no_hit(
    storage: DatabaseStorage,
) -> None:
    session = await commit_session(storage, make_session())
    failed = await commit_execution(storage, make_execution(session, state=ExecutionState.FAILED))
    await storage.put_value(
        NAMESPACE,
        "k",
        {"execution_id": str(failed.id), "agent": "echo"},
        expires_at=utcnow() + timedelta(hours=1),
    )
    assert await ResultCache(storage).lookup("k") is None
