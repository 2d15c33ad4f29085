"""Quotas under contention: eight OS processes, each with its own store on one database
(a SQLite file, a fresh Postgres schema: the ``url`` fixture of
``tests/fixtures/migrations.py``), as eight API processes sharing it.

They reserve against one quota at once, four reservations in flight in each (so
four connections each: the Postgres server's limit is shared), far more than the limit
allows, half of them as the claims of an execution's own write (recorded ``queued``
only if its claim fits, as admission records new work) and half as reservations of
their own (as work that runs before it is recorded reserves): exactly ``limit`` win,
none past it, and no refused execution is recorded.  Then they all reconcile (a
recorded execution by its final write), every one of them also reconciling the same
partly used execution (100 shots reserved, 37 used): it is settled once, and exactly
the 63 it did not use come back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from dataclasses import replace
from multiprocessing.synchronize import Barrier
from typing import Any

from limit_graph.core.models import Execution, ExecutionState, Session
from limit_graph.core.quotas import LIFETIME, QuotaResource
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.quotas import ClaimRefused, QuotaClaim, QuotaWrite
from tests.fixtures.records import commit_session, make_execution, make_session

WORKERS = 8
LANES = 4
ATTEMPTS = 4  # per lane: 8 x 4 x 4 = 128 attempts at a limit of 60
LIMIT = 60
WAIT_S = 60.0
CONTENDED = QuotaClaim("tenant:contended", QuotaResource.EXECUTIONS, LIFETIME, 1, LIMIT)
PARTIAL = QuotaClaim("tenant:partial", QuotaResource.SHOTS, LIFETIME, 100, 1000)


def _worker(
    url: str, barrier: Barrier, results: Any, index: int, partial: str, session: str
) -> None:
    work = _work(
        url, barrier, results, index, uuid.UUID(partial), Session.model_validate_json(session)
    )
    asyncio.run(work)


async def _work(
    url: str, barrier: Barrier, results: Any, index: int, partial: uuid.UUID, session: Session
) -> None:
    store = DatabaseStorage(url)
    await store.start()
    try:
        await asyncio.to_thread(barrier.wait, WAIT_S)  # every process is ready
        won: list[uuid.UUID] = []
        recorded: list[Execution] = []

        async def lane(number: int) -> None:
            for attempt in range(ATTEMPTS):
                if (number + attempt) % 2:
                    execution = uuid.uuid4()
                    if await store.quotas.reserve(execution, [CONTENDED]) is None:
                        won.append(execution)
                    continue
                queued = make_execution(session, state=ExecutionState.QUEUED)
                try:
                    await store.write_execution(
                        queued, actor="w", action="execution.queued", quota=QuotaWrite([CONTENDED])
                    )
                except ClaimRefused:
                    continue
                won.append(queued.id)
                recorded.append(queued)

        await asyncio.gather(*(lane(n) for n in range(LANES)))
        results.put(("reserved", index, [str(e) for e in won], len(recorded)))
        await asyncio.to_thread(barrier.wait, WAIT_S)  # the test looks at the counter
        await asyncio.to_thread(barrier.wait, WAIT_S)  # and lets everyone reconcile
        settled = [len(await store.quotas.reconcile(partial, {QuotaResource.SHOTS: 37}))]
        ran = {QuotaResource.EXECUTIONS: 1}
        for execution in recorded:
            final = execution.model_copy(update={"state": ExecutionState.SUCCEEDED})
            await store.write_execution(
                final, actor="w", action="execution.succeeded", quota=QuotaWrite(used=ran)
            )
        for execution_id in won:
            settled.append(len(await store.quotas.reconcile(execution_id, ran)))
        results.put(("reconciled", index, settled, len(recorded)))
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
        found[got[1]] = got[2:]
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
    session = await commit_session(store, make_session())
    shared = (str(partial), session.model_dump_json())
    processes = [
        context.Process(target=_worker, args=(url, barrier, results, i, *shared))
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
        holders = [uuid.UUID(e) for listed, _ in won.values() for e in listed]
        assert len(holders) == len(set(holders)) == LIMIT
        assert await _counter(store, CONTENDED) == (0, LIMIT)
        recorded = sum(count for _, count in won.values())
        assert 0 < recorded < LIMIT  # both ways of reserving won some
        counts = await store.count_executions(session.id)
        assert counts == {(ExecutionState.QUEUED, "local"): recorded}  # no refused one
        for execution in holders[:10]:
            [held] = await store.quotas.reservations(execution)
            assert held.amount == 1 and held.scope == CONTENDED.scope
        await asyncio.to_thread(barrier.wait, WAIT_S)

        settled = _take(results, "reconciled")
        assert sum(counts[0] for counts, _ in settled.values()) == 1  # the partial one, once
        for counts, recorded_here in settled.values():  # a final write settled each recorded
            assert sorted(counts[1:]) == [0] * recorded_here + [1] * (
                len(counts) - 1 - recorded_here
            )
        assert await _counter(store, CONTENDED) == (LIMIT, 0)
        counts = await store.count_executions(session.id)
        assert counts == {(ExecutionState.SUCCEEDED, "local"): recorded}
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
