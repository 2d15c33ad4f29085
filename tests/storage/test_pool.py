"""The database store's connection pool is as large as ``[storage] pool_size`` says:
concurrent reads within it reuse their connections instead of opening new ones."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from limit_graph.core.settings import load_settings
from limit_graph.storage import open_storage
from limit_graph.storage.database import DatabaseStorage

pytestmark = pytest.mark.asyncio


@pytest.fixture
def connects() -> Iterator[list[object]]:
    """Every database connection opened while the test runs, by any pool."""
    opened: list[object] = []

    def count(dbapi_connection: object, _record: Any) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", count)
    try:
        yield opened
    finally:
        event.remove(Pool, "connect", count)


async def _concurrent_reads(store: DatabaseStorage, width: int, rounds: int) -> None:
    for _ in range(rounds):
        found = await asyncio.gather(*(store.get_session(uuid.uuid4()) for _ in range(width)))
        assert found == [None] * width


async def test_reads_within_the_pool_open_no_connection_after_the_first(
    url: str, connects: list[object]
) -> None:
    settings = load_settings(
        environ={}, storage__url=url, storage__pool_size=8, storage__max_overflow=8
    )
    store = open_storage(settings)
    assert isinstance(store, DatabaseStorage)
    await store.start()
    try:
        await _concurrent_reads(store, width=8, rounds=3)
        warmed = len(connects)
        await _concurrent_reads(store, width=8, rounds=20)
        assert len(connects) == warmed
    finally:
        await store.close()


async def test_a_pool_smaller_than_the_reads_opens_and_closes_connections(
    url: str, connects: list[object]
) -> None:
    store = DatabaseStorage(url, pool_size=1, max_overflow=7)
    await store.start()
    try:
        await _concurrent_reads(store, width=8, rounds=3)
        warmed = len(connects)
        await _concurrent_reads(store, width=8, rounds=20)
        assert len(connects) > warmed + 20
    finally:
        await store.close()
