"""The lease store: its contract on every backend, then two stores on one database (two
API processes sharing it) contending for the same lease.

Times are the caller's, so the tests move ``now`` by hand: no sleeps.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, inspect

from limit_graph.storage.base import Storage
from tests.fixtures.migrations import downgrade, migrate

T = 1_800_000_000.0
TTL = 5.0


# --- the contract, on every backend ---------------------------------------------------


async def test_a_free_lease_is_taken_and_then_refused_to_others(storage: Storage) -> None:
    leases = storage.leases
    assert await leases.holder("mirror", T) is None
    assert await leases.acquire("mirror", "a", TTL, T)
    assert await leases.holder("mirror", T) == "a"
    assert not await leases.acquire("mirror", "b", TTL, T + 1)
    assert await leases.holder("mirror", T + 1) == "a"
    assert await leases.acquire("supervisor", "b", TTL, T + 1)  # another name, another lease


async def test_the_holder_renews_and_others_wait_for_the_renewed_expiry(storage: Storage) -> None:
    leases = storage.leases
    assert await leases.acquire("mirror", "a", TTL, T)
    assert await leases.acquire("mirror", "a", TTL, T + 4)  # renewed until T + 9
    assert not await leases.acquire("mirror", "b", TTL, T + 6)
    assert not await leases.acquire("mirror", "b", TTL, T + 8.99)
    assert await leases.acquire("mirror", "b", TTL, T + 9)
    assert await leases.holder("mirror", T + 9) == "b"
    assert not await leases.acquire("mirror", "a", TTL, T + 10)  # too late to renew


async def test_an_unrenewed_lease_expires(storage: Storage) -> None:
    leases = storage.leases
    assert await leases.acquire("mirror", "a", TTL, T)
    assert await leases.holder("mirror", T + TTL - 0.01) == "a"
    assert await leases.holder("mirror", T + TTL) is None
    assert await leases.acquire("mirror", "b", TTL, T + TTL)


async def test_release_lets_another_in_at_once_and_only_the_holder_releases(
    storage: Storage,
) -> None:
    leases = storage.leases
    assert await leases.acquire("mirror", "a", TTL, T)
    assert not await leases.release("mirror", "b")
    assert await leases.holder("mirror", T) == "a"
    assert await leases.release("mirror", "a")
    assert not await leases.release("mirror", "a")
    assert await leases.holder("mirror", T) is None
    assert await leases.acquire("mirror", "b", TTL, T + 0.1)


# --- two processes on one database ------------------------------------------------------


async def test_two_stores_on_one_database_share_a_lease(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = (store.leases for store in two_stores)
    assert await first.acquire("mirror", "p1", TTL, T)
    assert not await second.acquire("mirror", "p2", TTL, T)
    assert await second.holder("mirror", T) == "p1"
    for step in range(1, 4):  # p1 renews every ttl/3; p2 keeps asking
        now = T + step * TTL / 3
        assert await first.acquire("mirror", "p1", TTL, now)
        assert not await second.acquire("mirror", "p2", TTL, now)
    # p1 dies (no release); its last renewal ran until T + TTL + TTL
    assert not await second.acquire("mirror", "p2", TTL, T + 2 * TTL - 0.01)
    assert await second.acquire("mirror", "p2", TTL, T + 2 * TTL)
    assert await first.holder("mirror", T + 2 * TTL) == "p2"
    assert not await first.acquire("mirror", "p1", TTL, T + 2 * TTL + 1)
    assert await second.release("mirror", "p2")
    assert await first.acquire("mirror", "p1", TTL, T + 2 * TTL + 1)


async def test_of_many_asking_at_once_exactly_one_wins(
    two_stores: tuple[Storage, Storage],
) -> None:
    stores = [store.leases for store in two_stores]
    for round_, now in enumerate((T, T + 2 * TTL)):  # a free lease, then an expired one
        askers = [(stores[i % 2], f"p{round_}-{i}") for i in range(40)]
        won = await asyncio.gather(*(s.acquire("mirror", h, TTL, now) for s, h in askers))
        assert sum(won) == 1
        winner = askers[won.index(True)][1]
        assert await stores[0].holder("mirror", now) == winner
        assert await stores[1].holder("mirror", now) == winner


def test_the_migration_makes_and_drops_the_table(engine: Engine) -> None:
    migrate(engine, "head")
    assert "limit_leases" in inspect(engine).get_table_names()
    downgrade(engine, "0009")
    assert "limit_leases" not in inspect(engine).get_table_names()
    migrate(engine, "head")
    assert {c["name"] for c in inspect(engine).get_columns("limit_leases")} == {
        "name",
        "holder",
        "expires_at",
        "acquired_at",
    }
