"""The quota store contract: one suite, run against every backend's ``storage.quotas``.

Each test gets a started, empty store of one kind (memory, file, SQLite, Postgres; the
fixtures are in ``tests/fixtures/backends.py``).  A reservation takes all its claims or
none; reconciling settles each reservation once; setting limits lands with its ledger
entry; bad input raises before anything is written.  The last test opens two stores on one
database (``two_stores``, in ``tests/fixtures/shared_database.py``); contention between
processes is in ``test_quota_contention.py``.
"""

from __future__ import annotations

import asyncio
import math
import uuid

import pytest

from limit_graph.core.errors import InvalidInput
from limit_graph.core.quotas import LIFETIME, QuotaLimits, QuotaPeriod, QuotaResource
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import EntryDraft, verify_entries
from limit_graph.storage.quotas import (
    QuotaClaim,
    QuotaCounter,
    QuotaRefusal,
    QuotaReservation,
    ScopeLimits,
)
from tests.fixtures.backends import Backend

R = QuotaResource
DAY1 = "2026-03-01T00:00:00+00:00"
DAY2 = "2026-03-02T00:00:00+00:00"
ACME = "tenant:acme"
PRINCIPAL = f"principal:{uuid.UUID(int=7)}"
SESSION = f"session:{uuid.UUID(int=9)}"


def claim(
    amount: float,
    limit: float,
    *,
    scope: str = ACME,
    resource: QuotaResource = R.SHOTS,
    window: str = LIFETIME,
) -> QuotaClaim:
    return QuotaClaim(scope, resource, window, amount, limit)


def entry(scope: str, limits: QuotaLimits) -> EntryDraft:
    return EntryDraft(
        actor="admin",
        action="quota.set",
        resource_type="quota",
        resource_id=scope,
        session_id=None,
        payload={"scope": scope, "limits": limits.document()},
    )


async def counter(
    storage: Storage, scope: str = ACME, resource: QuotaResource = R.SHOTS, window: str = LIFETIME
) -> tuple[float, float]:
    [found] = await storage.quotas.usage([(scope, resource, window)])
    return found.used, found.reserved


# --- limits --------------------------------------------------------------------------


async def test_set_limits_replaces_a_scopes_limits_each_with_its_ledger_entry(
    storage: Storage,
) -> None:
    quotas = storage.quotas
    daily = QuotaLimits(shots=1000, executions=20, period=QuotaPeriod.DAY)
    assert await quotas.set_limits(ACME, daily, entry=entry(ACME, daily)) == daily
    assert await quotas.limits([ACME, "tenant:other"]) == [ScopeLimits(ACME, daily)]

    hourly = QuotaLimits(qpu_seconds=12.5, period=QuotaPeriod.HOUR)
    await quotas.set_limits(ACME, hourly, entry=entry(ACME, hourly))
    alone = QuotaLimits(concurrent=2)
    await quotas.set_limits(PRINCIPAL, alone, entry=entry(PRINCIPAL, alone))
    assert await quotas.limits([PRINCIPAL, ACME]) == [
        ScopeLimits(PRINCIPAL, alone),
        ScopeLimits(ACME, hourly),
    ]
    assert await quotas.limits([]) == []

    cleared = QuotaLimits()
    await quotas.set_limits(ACME, cleared, entry=entry(ACME, cleared))
    assert await quotas.limits([ACME]) == []

    entries = await storage.list_entries()
    assert [(e.action, e.resource_id) for e in entries] == [
        ("quota.set", ACME),
        ("quota.set", ACME),
        ("quota.set", PRINCIPAL),
        ("quota.set", ACME),
    ]
    assert entries[1].payload == {"scope": ACME, "limits": {"qpu_seconds": 12.5, "period": "hour"}}
    assert verify_entries(entries) is None


async def test_limits_of_a_bad_scope_are_refused_and_nothing_is_written(storage: Storage) -> None:
    limits = QuotaLimits(shots=5)
    for scope in ("team:acme", "principal:not-a-uuid", "tenant:"):
        with pytest.raises(InvalidInput, match="is not a quota scope"):
            await storage.quotas.set_limits(scope, limits, entry=entry(scope, limits))
    assert await storage.ledger_size() == 0
    assert await storage.quotas.limits(["team:acme", "tenant:"]) == []


# --- reserving -----------------------------------------------------------------------


async def test_a_claim_is_taken_while_it_fits_and_refused_with_the_counter_after(
    storage: Storage,
) -> None:
    quotas = storage.quotas
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert await quotas.reserve(first, [claim(6, 10)]) is None
    assert await counter(storage) == (0, 6)
    refused = claim(5, 10)
    assert await quotas.reserve(second, [refused]) == QuotaRefusal(refused, used=0, reserved=6)
    assert await counter(storage) == (0, 6)
    assert await quotas.reservations(second) == []
    assert await quotas.reserve(third, [claim(4, 10)]) is None
    assert await counter(storage) == (0, 10)
    assert await quotas.reservations(first) == [QuotaReservation(first, ACME, R.SHOTS, LIFETIME, 6)]


async def test_a_refused_claim_gives_back_the_claims_taken_before_it(storage: Storage) -> None:
    execution = uuid.uuid4()
    taken_first = claim(3, 10, scope=PRINCIPAL)  # principal:… sorts before tenant:…
    too_many = claim(11, 20, scope=ACME)
    await storage.quotas.reserve(uuid.uuid4(), [claim(10, 20)])
    refusal = await storage.quotas.reserve(execution, [too_many, taken_first])
    assert refusal == QuotaRefusal(too_many, used=0, reserved=10)
    assert await counter(storage, PRINCIPAL) == (0, 0)
    assert await counter(storage, ACME) == (0, 10)
    assert await storage.quotas.reservations(execution) == []


async def test_a_limit_of_zero_refuses_anything_but_nothing(storage: Storage) -> None:
    assert await storage.quotas.reserve(uuid.uuid4(), [claim(0, 0)]) is None
    refused = claim(1, 0)
    assert await storage.quotas.reserve(uuid.uuid4(), [refused]) == QuotaRefusal(refused, 0, 0)


async def test_reserving_again_for_an_execution_that_holds_a_reservation_takes_nothing(
    storage: Storage,
) -> None:
    execution = uuid.uuid4()
    assert await storage.quotas.reserve(execution, [claim(3, 10)]) is None
    assert await storage.quotas.reserve(execution, [claim(3, 10)]) is None
    assert await storage.quotas.reserve(execution, [claim(1, 10, resource=R.EXECUTIONS)]) is None
    assert await counter(storage) == (0, 3)
    assert await counter(storage, resource=R.EXECUTIONS) == (0, 0)
    assert len(await storage.quotas.reservations(execution)) == 1


async def test_windows_count_apart(storage: Storage) -> None:
    assert await storage.quotas.reserve(uuid.uuid4(), [claim(5, 5, window=DAY1)]) is None
    assert await storage.quotas.reserve(uuid.uuid4(), [claim(5, 5, window=DAY2)]) is None
    refused = claim(1, 5, window=DAY1)
    assert await storage.quotas.reserve(uuid.uuid4(), [refused]) == QuotaRefusal(refused, 0, 5)
    assert await storage.quotas.usage(
        [(ACME, R.SHOTS, DAY2), (ACME, R.SHOTS, LIFETIME), (ACME, R.SHOTS, DAY1)]
    ) == [
        QuotaCounter(ACME, R.SHOTS, DAY2, 0, 5),
        QuotaCounter(ACME, R.SHOTS, LIFETIME, 0, 0),
        QuotaCounter(ACME, R.SHOTS, DAY1, 0, 5),
    ]


async def test_qpu_seconds_compare_exactly_in_microseconds(storage: Storage) -> None:
    qpu = R.QPU_SECONDS
    assert await storage.quotas.reserve(uuid.uuid4(), [claim(0.1, 0.3, resource=qpu)]) is None
    assert await storage.quotas.reserve(uuid.uuid4(), [claim(0.2, 0.3, resource=qpu)]) is None
    assert await counter(storage, resource=qpu) == (0, 0.3)
    refused = claim(0.000001, 0.3, resource=qpu)
    assert await storage.quotas.reserve(uuid.uuid4(), [refused]) == QuotaRefusal(refused, 0, 0.3)
    # an amount is rounded up to the next microsecond, so it can never slip under a limit
    late = uuid.uuid4()
    assert (
        await storage.quotas.reserve(late, [claim(1e-7, 1, resource=qpu, scope=PRINCIPAL)]) is None
    )
    assert await counter(storage, PRINCIPAL, qpu) == (0, 0.000001)


# --- reconciling ---------------------------------------------------------------------


async def test_reconciling_records_the_use_and_gives_back_the_rest_once(storage: Storage) -> None:
    quotas = storage.quotas
    execution = uuid.uuid4()
    claims = [
        claim(100, 1000),
        claim(1, 2, resource=R.CONCURRENT),
        claim(2.5, 10, resource=R.QPU_SECONDS, window=DAY1),
        claim(1, 5, resource=R.EXECUTIONS, scope=PRINCIPAL, window=DAY1),
    ]
    assert await quotas.reserve(execution, claims) is None
    held = await quotas.reservations(execution)
    assert {(h.scope, h.resource, h.amount) for h in held} == {
        (ACME, R.SHOTS, 100),
        (ACME, R.CONCURRENT, 1),
        (ACME, R.QPU_SECONDS, 2.5),
        (PRINCIPAL, R.EXECUTIONS, 1),
    }
    used = {R.SHOTS: 37, R.CONCURRENT: 1, R.QPU_SECONDS: 1.25, R.EXECUTIONS: 1}
    settled = await quotas.reconcile(execution, used)
    assert sorted(settled, key=str) == sorted(held, key=str)
    expected = [
        (ACME, R.SHOTS, LIFETIME, (37, 0)),
        (ACME, R.CONCURRENT, LIFETIME, (0, 0)),  # a gauge: running is not using up
        (ACME, R.QPU_SECONDS, DAY1, (1.25, 0)),
        (PRINCIPAL, R.EXECUTIONS, DAY1, (1, 0)),
    ]
    for scope, resource, window, values in expected:
        assert await counter(storage, scope, resource, window) == values
    assert await quotas.reservations(execution) == []

    assert await quotas.reconcile(execution, used) == []
    assert await quotas.reconcile(uuid.uuid4(), used) == []
    for scope, resource, window, values in expected:
        assert await counter(storage, scope, resource, window) == values
    # the 1000 - 37 left are free again
    assert await quotas.reserve(uuid.uuid4(), [claim(963, 1000)]) is None
    assert await quotas.reserve(uuid.uuid4(), [claim(1, 1000)]) is not None


async def test_a_resource_not_in_what_was_used_used_nothing(storage: Storage) -> None:
    execution = uuid.uuid4()
    await storage.quotas.reserve(execution, [claim(50, 100), claim(1, 3, resource=R.EXECUTIONS)])
    await storage.quotas.reconcile(execution, {})
    assert await counter(storage) == (0, 0)
    assert await counter(storage, resource=R.EXECUTIONS) == (0, 0)


async def test_use_past_the_reservation_is_recorded_as_it_was(storage: Storage) -> None:
    execution = uuid.uuid4()
    await storage.quotas.reserve(execution, [claim(1, 2, resource=R.QPU_SECONDS)])
    await storage.quotas.reconcile(execution, {R.QPU_SECONDS: 3.5})
    assert await counter(storage, resource=R.QPU_SECONDS) == (3.5, 0)
    refused = claim(0, 2, resource=R.QPU_SECONDS)
    assert await storage.quotas.reserve(uuid.uuid4(), [refused]) == QuotaRefusal(refused, 3.5, 0)


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        claim(-1, 10),
        claim(math.nan, 10),
        claim(1, math.inf),
        claim(1, -5),
        claim(1, 10, scope="team:acme"),
        claim(1, 10, window="yesterday"),
    ],
    ids=["negative", "nan", "infinite-limit", "negative-limit", "scope", "window"],
)
async def test_a_bad_claim_is_refused_before_anything_is_taken(
    storage: Storage, bad: QuotaClaim
) -> None:
    execution = uuid.uuid4()
    with pytest.raises(InvalidInput, match="the quota claims are not valid") as raised:
        await storage.quotas.reserve(execution, [claim(1, 10, scope=PRINCIPAL), bad])
    assert raised.value.errors[0]["loc"] == ["claims", 1]
    assert await storage.quotas.reservations(execution) == []
    assert await counter(storage, PRINCIPAL) == (0, 0)


async def test_claiming_one_quota_twice_is_refused(storage: Storage) -> None:
    with pytest.raises(InvalidInput) as raised:
        await storage.quotas.reserve(uuid.uuid4(), [claim(1, 10), claim(2, 10, window=DAY1)])
    assert "claimed twice" in raised.value.errors[0]["msg"]
    assert await counter(storage) == (0, 0)


async def test_a_bad_use_is_refused_and_the_reservation_stays(storage: Storage) -> None:
    execution = uuid.uuid4()
    await storage.quotas.reserve(execution, [claim(5, 10)])
    for used in ({R.SHOTS: -1}, {R.SHOTS: math.nan}, {"bogus": 1}):
        with pytest.raises(InvalidInput, match="what the execution used is not valid"):
            await storage.quotas.reconcile(execution, used)  # type: ignore[arg-type]
    assert len(await storage.quotas.reservations(execution)) == 1
    assert await counter(storage) == (0, 5)


# --- durability and sharing ----------------------------------------------------------


async def test_quota_records_survive_a_reopen(durable_backend: Backend) -> None:
    execution, settled = uuid.uuid4(), uuid.uuid4()
    limits = QuotaLimits(shots=1000, period=QuotaPeriod.MONTH)
    store = durable_backend.open()
    await store.start()
    try:
        await store.quotas.set_limits(ACME, limits, entry=entry(ACME, limits))
        await store.quotas.reserve(execution, [claim(100, 1000, window=DAY1)])
        await store.quotas.reserve(settled, [claim(10, 1000, window=DAY1)])
        await store.quotas.reconcile(settled, {R.SHOTS: 4})
    finally:
        await store.close()
    reopened = durable_backend.open()
    await reopened.start()
    try:
        assert await reopened.quotas.limits([ACME]) == [ScopeLimits(ACME, limits)]
        assert await counter(reopened, window=DAY1) == (4, 100)
        assert await reopened.quotas.reservations(settled) == []
        assert await reopened.quotas.reconcile(execution, {R.SHOTS: 37}) == [
            QuotaReservation(execution, ACME, R.SHOTS, DAY1, 100)
        ]
        assert await counter(reopened, window=DAY1) == (41, 0)
    finally:
        await reopened.close()


async def test_two_stores_on_one_database_share_one_quota(
    two_stores: tuple[Storage, Storage],
) -> None:
    one, two = two_stores
    executions = [uuid.uuid4() for _ in range(12)]
    refusals = await asyncio.gather(
        *(
            store.quotas.reserve(e, [claim(1, 5, resource=R.EXECUTIONS)])
            for store, e in zip((one, two) * 6, executions, strict=True)
        )
    )
    assert sum(r is None for r in refusals) == 5
    assert await counter(one, resource=R.EXECUTIONS) == (0, 5)
    holders = [e for e, r in zip(executions, refusals, strict=True) if r is None]
    for index, execution in enumerate(holders):
        store = (one, two)[index % 2]
        assert len(await store.quotas.reconcile(execution, {R.EXECUTIONS: 1})) == 1
        assert await (two, one)[index % 2].quotas.reconcile(execution, {R.EXECUTIONS: 1}) == []
    assert await counter(two, resource=R.EXECUTIONS) == (5, 0)
