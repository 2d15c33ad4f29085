"""Quotas under contention: eight OS processes, each with its own store on one database
(a SQLite file, a fresh Postgres schema: the ``url`` fixture of
``tests/fixtures/migrations.py``), as eight API processes sharing it.

They reserve against one quota at once, four reservations in flight in each (so
four connections each: the Postgres server's limit is shared), far more
than the limit allows: exactly ``limit`` reservations win, none past it.  Then they all
reconcile, every one of them also reconciling the same partly used execution (100
shots reserved, 37 used): it is settled once, and exactly the 63 it did not use come
back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from dataclasses import replace
from multiprocessing.synchronize import Barrier
from typing import Any

from limit_graph.core.quotas import LIFETIME, QuotaResource
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.quotas import QuotaClaim

WORKERS = 8
LANES = 4
ATTEMPTS = 4  # per lane: 8 x 4 x 4 = 128 attempts at a limit of 60
LIMIT = 60
WAIT_S = 60.0
CONTENDED = QuotaClaim("tenant:contended", QuotaResource.EXECUTIONS, LIFETIME, 1, LIMIT)
PARTIAL = QuotaClaim("tenant:partial", QuotaResource.SHOTS, LIFETIME, 100, 1000)


def _worker(url: str, barrier: Barrier, results: Any, index: int, partial: str) -> None:
    asyncio.run(_work(url, barrier, results, index, uuid.UUID(partial)))


async def _work(url: str, barrier: Barrier, results: Any, index: int, partial: uuid.UUID) -> None:
    store = DatabaseStorage(url)
    await store.start()
    try:
        await asyncio.to_thread(barrier.wait, WAIT_S)  # every process is ready
        won: list[uuid.UUID] = []

        async def lane() -> None:
            for _ in range(ATTEMPTS):
                execution = uuid.uuid4()
                if await store.quotas.reserve(execution, [CONTENDED]) is None:
                    won.append(execution)

        await asyncio.gather(*(lane() for _ in range(LANES)))
        results.put(("reserved", index, [str(e) for e in won]))
        await asyncio.to_thread(barrier.wait, WAIT_S)  # the test looks at the counter
        await asyncio.to_thread(barrier.wait, WAIT_S)  # and lets everyone reconcile
        settled = [len(await store.quotas.reconcile(partial, {QuotaResource.SHOTS: 37}))]
        for execution in won:
            settled.append(
                len(await store.quotas.reconcile(execution, {QuotaResource.EXECUTIONS: 1}))
            )
        results.put(("reconciled", index, settled))
    finally:
        await store.close()


async def _counter(store: DatabaseStorage, claim: QuotaClaim) -> tuple[float, float]:
    [found] = await store.quotas.usage([claim.key])
    return found.used, found.reserved


def _take(results: Any, kind: str) -> dict[int, Any]:
    found: dict[int, Any] = {}
    while len(found) < WORKERS:
        got = results.get(timeout=WAIT_S)
        assert got[0] == kind, got
        found[got[1]] = got[2]
    return found


async def test_eight_processes_never_overshoot_a_quota_and_settle_each_reservation_once(
    url: str,
) -> None:
    store = DatabaseStorage(url)
    await store.start()  # migrates before the workers start
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS + 1)
    results = context.Queue()
    partial = uuid.uuid4()
    processes = [
        context.Process(target=_worker, args=(url, barrier, results, i, str(partial)))
        for i in range(WORKERS)
    ]
    try:
        assert await store.quotas.reserve(partial, [PARTIAL]) is None
        assert await _counter(store, PARTIAL) == (0, 100)
        for process in processes:
            process.start()
        await asyncio.to_thread(barrier.wait, WAIT_S)
        await asyncio.to_thread(barrier.wait, WAIT_S)
        won = _take(results, "reserved")
        holders = [uuid.UUID(e) for listed in won.values() for e in listed]
        assert len(holders) == len(set(holders)) == LIMIT
        assert await _counter(store, CONTENDED) == (0, LIMIT)
        for execution in holders[:10]:
            [held] = await store.quotas.reservations(execution)
            assert held.amount == 1 and held.scope == CONTENDED.scope
        await asyncio.to_thread(barrier.wait, WAIT_S)

        settled = _take(results, "reconciled")
        assert sum(counts[0] for counts in settled.values()) == 1  # the partial one, once
        assert all(counts[1:] == [1] * (len(counts) - 1) for counts in settled.values())
        assert await _counter(store, CONTENDED) == (LIMIT, 0)
        assert await _counter(store, PARTIAL) == (37, 0)  # 100 - 37 = 63 given back
        assert await store.quotas.reserve(uuid.uuid4(), [replace(PARTIAL, amount=963)]) is None
        assert await store.quotas.reserve(uuid.uuid4(), [replace(PARTIAL, amount=1)]) is not None
        for process in processes:
            process.join(WAIT_S)
            assert process.exitcode == 0
    finally:
        barrier.abort()
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(10)
        results.close()
        await store.close()
