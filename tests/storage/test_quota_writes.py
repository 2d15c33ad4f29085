"""An execution's write changes its quotas in its own transaction, on every backend.

``write_execution(..., quota=QuotaWrite(...))`` takes the claims before the record is
written (a claim that does not fit raises :class:`ClaimRefused`, with no record and no
ledger entry), a final record settles what the execution holds with what it used, and a
write that does not record the execution (an earlier one answers its idempotency key,
or its session is not active) takes nothing and gives back what it holds; the stale
reservations are those no write is left to settle.  Contention between processes is in
``test_quota_contention.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from limit_graph.core.errors import InvalidInput, StateDenied
from limit_graph.core.models import Execution, ExecutionState, Session, SessionState, utcnow
from limit_graph.core.quotas import LIFETIME, QuotaResource
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import verify_entries
from limit_graph.storage.quotas import ClaimRefused, QuotaClaim, QuotaRefusal, QuotaWrite
from tests.fixtures.records import (
    advanced,
    commit_execution,
    commit_session,
    make_execution,
    make_session,
)

R = QuotaResource
SHOTS = QuotaClaim("tenant:acme", R.SHOTS, LIFETIME, 300, 1000)
RUNS = QuotaClaim("tenant:acme", R.EXECUTIONS, LIFETIME, 1, 3)


async def counter(storage: Storage, claim: QuotaClaim) -> tuple[float, float]:
    [found] = await storage.quotas.usage([claim.key])
    return found.used, found.reserved


async def write(
    storage: Storage, execution: Execution, quota: QuotaWrite, *, gated: bool = False
) -> Execution:
    return await storage.write_execution(
        execution,
        actor="alice",
        action=f"execution.{execution.state.value}",
        require_active_session=gated,
        quota=quota,
    )


def final(execution: Execution) -> Execution:
    return execution.model_copy(update={"state": ExecutionState.SUCCEEDED, "result": {"y": 1}})


@pytest.fixture
async def session(storage: Storage) -> Session:
    return await commit_session(storage, make_session())


async def test_claims_land_with_the_record_and_its_final_write_settles_them(
    storage: Storage, session: Session
) -> None:
    queued = make_execution(session, state=ExecutionState.QUEUED)
    stored = await write(storage, queued, QuotaWrite([SHOTS, RUNS]))
    assert stored.id == queued.id and stored.provenance_entry is not None
    assert await counter(storage, SHOTS) == (0, 300)
    assert await counter(storage, RUNS) == (0, 1)
    assert {r.resource for r in await storage.quotas.reservations(queued.id)} == {
        R.SHOTS,
        R.EXECUTIONS,
    }

    used = {R.SHOTS: 120, R.EXECUTIONS: 1}
    await write(storage, final(stored), QuotaWrite(used=used))
    assert await counter(storage, SHOTS) == (120, 0)  # 180 of the 300 given back
    assert await counter(storage, RUNS) == (1, 0)
    assert await storage.quotas.reservations(queued.id) == []

    await write(storage, final(stored), QuotaWrite(used=used))  # settles nothing again
    assert await counter(storage, SHOTS) == (120, 0)
    assert verify_entries(await storage.list_entries()) is None


async def test_a_claim_that_does_not_fit_writes_nothing_and_takes_back_the_others(
    storage: Storage, session: Session
) -> None:
    fits = make_execution(session, state=ExecutionState.QUEUED)
    await write(storage, fits, QuotaWrite([SHOTS]))
    entries = await storage.ledger_size()
    big = QuotaClaim("tenant:acme", R.SHOTS, LIFETIME, 800, 1000)
    too_many = make_execution(session, state=ExecutionState.QUEUED)
    with pytest.raises(ClaimRefused) as refused:
        # the executions claim sorts first and fits: it is given back with the refusal
        await write(storage, too_many, QuotaWrite([big, RUNS]))
    assert refused.value.refusal == QuotaRefusal(big, used=0, reserved=300)
    assert await storage.get_execution(too_many.id) is None
    assert await storage.ledger_size() == entries
    assert await counter(storage, SHOTS) == (0, 300)
    assert await counter(storage, RUNS) == (0, 0)
    assert await storage.quotas.reservations(too_many.id) == []


async def test_claims_are_not_taken_twice_for_one_execution(
    storage: Storage, session: Session
) -> None:
    queued = make_execution(session, state=ExecutionState.QUEUED)
    assert await storage.quotas.reserve(queued.id, [SHOTS]) is None
    await write(storage, queued, QuotaWrite([SHOTS]))  # held already: nothing more taken
    assert await counter(storage, SHOTS) == (0, 300)


async def test_a_write_answered_by_an_earlier_execution_takes_nothing_and_gives_back(
    storage: Storage, session: Session
) -> None:
    first = make_execution(session, state=ExecutionState.QUEUED, key="k")
    await write(storage, first, QuotaWrite([SHOTS]))

    again = make_execution(session, state=ExecutionState.QUEUED, key="k")
    assert (await write(storage, again, QuotaWrite([SHOTS]))).id == first.id
    assert await counter(storage, SHOTS) == (0, 300)  # only the first one's claim

    ran_first = make_execution(session, key="k")  # work that reserved, ran, then lost
    assert await storage.quotas.reserve(ran_first.id, [SHOTS]) is None
    assert await counter(storage, SHOTS) == (0, 600)
    answered = await write(storage, ran_first, QuotaWrite(used={R.SHOTS: 300}))
    assert answered.id == first.id
    assert await counter(storage, SHOTS) == (0, 300)  # its reservation given back
    assert await storage.quotas.reservations(ran_first.id) == []


async def test_a_write_refused_for_an_inactive_session_gives_back_what_it_held(
    storage: Storage, session: Session
) -> None:
    done = make_execution(session)
    assert await storage.quotas.reserve(done.id, [SHOTS]) is None
    await commit_session(storage, advanced(session, SessionState.COMPLETED))
    with pytest.raises(StateDenied):
        await write(storage, done, QuotaWrite(used={R.SHOTS: 300}), gated=True)
    assert await storage.get_execution(done.id) is None
    assert await counter(storage, SHOTS) == (0, 0)

    queued = make_execution(session, state=ExecutionState.QUEUED)
    with pytest.raises(StateDenied):
        await write(storage, queued, QuotaWrite([SHOTS]), gated=True)
    assert await counter(storage, SHOTS) == (0, 0)


async def test_a_cache_hit_claims_and_settles_in_one_write(
    storage: Storage, session: Session
) -> None:
    hit = make_execution(session)
    await write(storage, hit, QuotaWrite([SHOTS, RUNS], used={R.EXECUTIONS: 1}))
    assert await counter(storage, SHOTS) == (0, 0)
    assert await counter(storage, RUNS) == (1, 0)

    big = QuotaClaim("tenant:acme", R.SHOTS, LIFETIME, 1001, 1000)
    refused = make_execution(session)
    with pytest.raises(ClaimRefused):  # the executions claim fits first, then is undone
        await write(storage, refused, QuotaWrite([big, RUNS], used={R.EXECUTIONS: 1}))
    assert await storage.get_execution(refused.id) is None
    assert await counter(storage, RUNS) == (1, 0)
    assert await counter(storage, SHOTS) == (0, 0)


async def test_bad_claims_or_use_are_refused_before_anything_is_written(
    storage: Storage, session: Session
) -> None:
    entries = await storage.ledger_size()
    negative = QuotaClaim("tenant:acme", R.SHOTS, LIFETIME, -1, 1000)
    bad_scope = QuotaClaim("acme", R.SHOTS, LIFETIME, 1, 1000)
    for quota in (
        QuotaWrite([negative]),
        QuotaWrite([bad_scope]),
        QuotaWrite([SHOTS, SHOTS]),
        QuotaWrite(used={R.SHOTS: float("nan")}),
    ):
        execution = make_execution(session, state=ExecutionState.QUEUED)
        with pytest.raises(InvalidInput):
            await write(storage, execution, quota)
        assert await storage.get_execution(execution.id) is None
    assert await storage.ledger_size() == entries
    assert await counter(storage, SHOTS) == (0, 0)


async def test_concurrent_writes_never_overshoot_and_each_refused_one_is_unrecorded(
    storage: Storage, session: Session
) -> None:
    executions = [make_execution(session, state=ExecutionState.QUEUED) for _ in range(20)]
    outcomes = await asyncio.gather(
        *(write(storage, e, QuotaWrite([RUNS])) for e in executions), return_exceptions=True
    )
    recorded = [o for o in outcomes if isinstance(o, Execution)]
    refused = [o for o in outcomes if isinstance(o, ClaimRefused)]
    assert len(recorded) == 3 and len(refused) == 17
    assert await counter(storage, RUNS) == (0, 3)
    counts = await storage.count_executions(session.id)
    assert counts == {(ExecutionState.QUEUED, "local"): 3}
    for execution in executions:
        held = await storage.quotas.reservations(execution.id)
        assert bool(held) == (await storage.get_execution(execution.id) is not None)
    assert verify_entries(await storage.list_entries()) is None


async def test_an_unknown_execution_settles_nothing(storage: Storage) -> None:
    assert await storage.quotas.reconcile(uuid.uuid4(), {R.SHOTS: 5}) == []


async def test_stale_reservations_are_those_no_write_is_left_to_settle(
    storage: Storage, session: Session
) -> None:
    never_recorded = uuid.uuid4()
    assert await storage.quotas.reserve(never_recorded, [SHOTS]) is None
    unfinished = make_execution(session, state=ExecutionState.QUEUED)
    await write(storage, unfinished, QuotaWrite([RUNS]))
    finished_unsettled = make_execution(session, state=ExecutionState.QUEUED)
    await write(storage, finished_unsettled, QuotaWrite([SHOTS]))
    await commit_execution(storage, final(finished_unsettled))  # final, not reconciled

    later = utcnow() + timedelta(hours=1)
    assert await storage.stale_reservations(later) == [never_recorded, finished_unsettled.id]
    assert await storage.stale_reservations(later, limit=1) == [never_recorded]
    assert await storage.stale_reservations(utcnow() - timedelta(hours=1)) == []
    await storage.quotas.reconcile(never_recorded, {})
    assert await storage.stale_reservations(later) == [finished_unsettled.id]
