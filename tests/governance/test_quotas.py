"""The quota service: what applies to an execution, the refusals users read, periods that
reset on a fake clock, the limits cache, and bad limits refused with nothing written.

The service runs over a real store (memory and SQLite); :class:`CountingQuotas` passes
every call through to it and counts them, to show what the hot path does not touch.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from limit_graph.core.errors import InvalidInput, QuotaCapReached, QuotaExceeded
from limit_graph.core.models import Session, SessionConfig
from limit_graph.core.quotas import QuotaLimits, QuotaPeriod, QuotaResource, QuotaUse
from limit_graph.governance.quotas import QuotaService
from limit_graph.storage.base import Storage
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.memory import MemoryStorage
from limit_graph.storage.quotas import (
    CounterKey,
    QuotaClaim,
    QuotaCounter,
    QuotaRefusal,
    QuotaReservation,
    QuotaStore,
    ScopeLimits,
)
from tests.fixtures.clock import FakeUtcClock
from tests.fixtures.records import make_session

R = QuotaResource
NOW = datetime(2026, 3, 9, 15, 30, tzinfo=UTC)
ALICE = uuid.UUID("1234abcd-0000-4000-8000-000000000001")


class CountingQuotas:
    """A quota store that counts the calls reaching the real one beneath it."""

    def __init__(self, inner: QuotaStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    async def set_limits(
        self, scope: str, limits: QuotaLimits, *, entry: EntryDraft
    ) -> QuotaLimits:
        self.calls.append("set_limits")
        return await self.inner.set_limits(scope, limits, entry=entry)

    async def limits(self, scopes: Sequence[str]) -> list[ScopeLimits]:
        self.calls.append("limits")
        return await self.inner.limits(scopes)

    async def reserve(
        self, execution_id: uuid.UUID, claims: Sequence[QuotaClaim]
    ) -> QuotaRefusal | None:
        self.calls.append("reserve")
        return await self.inner.reserve(execution_id, claims)

    async def reconcile(
        self, execution_id: uuid.UUID, used: Mapping[QuotaResource, float]
    ) -> list[QuotaReservation]:
        self.calls.append("reconcile")
        return await self.inner.reconcile(execution_id, used)

    async def reservations(self, execution_id: uuid.UUID) -> list[QuotaReservation]:
        self.calls.append("reservations")
        return await self.inner.reservations(execution_id)

    async def usage(self, keys: Sequence[CounterKey]) -> list[QuotaCounter]:
        self.calls.append("usage")
        return await self.inner.usage(keys)


class Demand(Mapping[QuotaResource, float]):
    """A demand that records which resources were read (as the admission's measures
    stored bytes only when read)."""

    def __init__(self, **amounts: float) -> None:
        self.amounts = {R(k): v for k, v in amounts.items()}
        self.read: list[QuotaResource] = []

    def __getitem__(self, resource: QuotaResource) -> float:
        self.read.append(resource)
        return self.amounts[resource]

    def __iter__(self) -> Iterator[QuotaResource]:
        return iter(self.amounts)

    def __len__(self) -> int:
        return len(self.amounts)


def with_quotas(**quotas: float) -> Session:
    session = make_session()
    config = SessionConfig(quotas=dict(quotas))
    return session.model_copy(update={"config": config, "config_sha256": config.sha256()})


@pytest.fixture(params=["memory", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store: Storage = (
        MemoryStorage()
        if request.param == "memory"
        else DatabaseStorage(f"sqlite+aiosqlite:///{tmp_path / 'quotas.db'}")
    )
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def clock() -> FakeUtcClock:
    return FakeUtcClock(NOW)


@pytest.fixture
def counting(storage: Storage) -> CountingQuotas:
    return CountingQuotas(storage.quotas)


@pytest.fixture
def service(counting: CountingQuotas, clock: FakeUtcClock) -> QuotaService:
    return QuotaService(counting, clock=clock)


async def reserve(
    service: QuotaService, session: Session, principal: uuid.UUID | None = ALICE, **demand: float
) -> Any:
    return await service.reserve(
        uuid.uuid4(),
        tenant="acme",
        principal_id=principal,
        session=session,
        demand=Demand(**demand),
    )


# --- the hot path --------------------------------------------------------------------


async def test_with_no_limits_anywhere_nothing_is_reserved_and_storage_is_left_alone(
    service: QuotaService, counting: CountingQuotas, clock: FakeUtcClock
) -> None:
    session = with_quotas()
    assert await reserve(service, session, shots=100, executions=1) is None
    assert counting.calls == ["limits"]  # the first look fills the cache
    for _ in range(5):
        assert await reserve(service, session, shots=100, executions=1) is None
    assert counting.calls == ["limits"]
    clock.advance(1.01)
    assert await reserve(service, session, executions=1) is None
    assert counting.calls == ["limits", "limits"]


async def test_only_limited_resources_the_demand_names_are_claimed_or_even_read(
    service: QuotaService, counting: CountingQuotas
) -> None:
    session = with_quotas(shots=1000)
    demand = Demand(shots=200, executions=1, storage_bytes=10_000)
    verdict = await service.reserve(
        uuid.uuid4(), tenant="acme", principal_id=ALICE, session=session, demand=demand
    )
    assert demand.read == [R.SHOTS]
    assert verdict is not None and verdict.check == "quota" and verdict.passed
    assert verdict.policy_ids == [f"quota:session:{session.id}:shots"]
    assert verdict.detail == f"reserved 200 shots of session:{session.id}"
    # a demand that names none of the limited resources reserves nothing
    assert await reserve(service, session, executions=1) is None
    assert counting.calls.count("reserve") == 1


# --- refusals ------------------------------------------------------------------------


async def test_a_session_over_its_shots_is_capped_with_a_message_naming_its_use(
    service: QuotaService,
) -> None:
    session = with_quotas(shots=1000)
    ran = uuid.uuid4()
    await service.reserve(
        ran, tenant="acme", principal_id=None, session=session, demand={R.SHOTS: 900}
    )
    await service.reconcile(ran, {R.SHOTS: 900})
    assert await reserve(service, session, shots=100) is not None
    with pytest.raises(QuotaCapReached) as refused:
        await reserve(service, session, shots=200)
    denial = refused.value
    short = str(session.id)[:8]
    assert denial.detail == (
        f"session {short}… has used 900 of its 1,000 shots (100 reserved); this execution "
        "asks for 200; a session's quotas are totals for its life: start a session with more"
    )
    assert denial.status_code == 403 and denial.retry_after_s is None
    assert denial.policy_ids == [f"quota:session:{session.id}:shots"]
    assert denial.quota == {
        "scope": f"session:{session.id}",
        "resource": "shots",
        "limit": 1000,
        "used": 900,
        "reserved": 100,
        "requested": 200,
        "resets_at": None,
    }


async def test_a_period_quota_refuses_until_its_reset_and_then_counts_afresh(
    service: QuotaService, clock: FakeUtcClock
) -> None:
    await service.set_limits(
        "tenant:acme", QuotaLimits(executions=2, period=QuotaPeriod.DAY), actor="admin"
    )
    session = with_quotas()
    assert await reserve(service, session, executions=1) is not None
    assert await reserve(service, session, executions=1) is not None
    with pytest.raises(QuotaExceeded) as refused:
        await reserve(service, session, executions=1)
    denial = refused.value
    assert type(denial) is QuotaExceeded and denial.status_code == 429
    assert denial.retry_after_s == 8.5 * 3600
    assert denial.detail == (
        "tenant acme has used 0 of its 2 executions today (2 reserved); this execution asks "
        "for 1; the quota resets at 2026-03-10T00:00:00Z (in 8 h 30 min)"
    )
    assert denial.quota["resets_at"] == "2026-03-10T00:00:00Z"
    assert denial.policy_ids == ["quota:tenant:acme:executions"]

    clock.advance(8.5 * 3600 - 45)
    with pytest.raises(QuotaExceeded, match=r"\(in 45 s\)") as late:
        await reserve(service, session, executions=1)
    assert late.value.retry_after_s == 45
    clock.advance(45)
    assert await reserve(service, session, executions=1) is not None


async def test_a_request_larger_than_the_whole_limit_is_a_cap_and_reserves_nothing(
    service: QuotaService, counting: CountingQuotas
) -> None:
    await service.set_limits(
        "tenant:acme", QuotaLimits(shots=1000, period=QuotaPeriod.HOUR), actor="admin"
    )
    with pytest.raises(QuotaCapReached) as refused:
        await reserve(service, with_quotas(), shots=2000)
    assert refused.value.detail == (
        "this execution asks for 2,000 shots, more than tenant acme may use this hour "
        "(its quota is 1,000): it can never fit"
    )
    assert "reserve" not in counting.calls
    [use] = await service.usage(tenant="acme", principal_id=None, session=None)
    assert (use.used, use.reserved) == (0, 0)


async def test_concurrent_executions_are_a_gauge_given_back_when_one_ends(
    service: QuotaService,
) -> None:
    await service.set_limits(f"principal:{ALICE}", QuotaLimits(concurrent=1), actor="admin")
    session = with_quotas()
    running = uuid.uuid4()
    assert await service.reserve(
        running, tenant="acme", principal_id=ALICE, session=session, demand={R.CONCURRENT: 1}
    )
    with pytest.raises(QuotaExceeded) as refused:
        await reserve(service, session, concurrent=1)
    denial = refused.value
    assert type(denial) is QuotaExceeded and denial.retry_after_s is None
    assert denial.detail == (
        "principal 1234abcd… already has 1 of its 1 concurrent executions running; this "
        "execution asks for 1 more: retry when one has finished"
    )
    await service.reconcile(running, {R.CONCURRENT: 1})
    assert await reserve(service, session, concurrent=1) is not None
    [use] = await service.usage(tenant="acme", principal_id=ALICE, session=None)
    assert (use.used, use.reserved, use.resets_at) == (0, 1, None)


async def test_a_refused_quota_gives_back_the_ones_claimed_before_it(
    service: QuotaService,
) -> None:
    principal = f"principal:{ALICE}"  # claimed first: principal:… sorts before session:…
    await service.set_limits(
        principal, QuotaLimits(shots=10_000, period=QuotaPeriod.MONTH), actor="admin"
    )
    session = with_quotas(shots=100)
    assert await reserve(service, session, shots=60) is not None
    with pytest.raises(QuotaCapReached):
        await reserve(service, session, shots=50)
    uses = await service.usage(tenant="acme", principal_id=ALICE, session=session)
    assert [(u.scope, u.reserved) for u in uses] == [(principal, 60), (f"session:{session.id}", 60)]


# --- reconciling ---------------------------------------------------------------------


async def test_a_partial_failure_gives_back_exactly_what_was_not_used(
    service: QuotaService,
) -> None:
    await service.set_limits(
        "tenant:acme", QuotaLimits(shots=1000, period=QuotaPeriod.DAY), actor="admin"
    )
    execution = uuid.uuid4()
    session = with_quotas()
    await service.reserve(
        execution, tenant="acme", principal_id=None, session=session, demand={R.SHOTS: 100}
    )
    await service.reconcile(execution, {R.SHOTS: 37})
    await service.reconcile(execution, {R.SHOTS: 37})
    [use] = await service.usage(tenant="acme", principal_id=None, session=None)
    assert (use.limit, use.used, use.reserved) == (1000, 37, 0)
    assert await reserve(service, session, shots=963, principal=None) is not None

    never_ran = uuid.uuid4()
    await service.reserve(
        never_ran, tenant="acme", principal_id=None, session=with_quotas(), demand={R.SHOTS: 0}
    )
    await service.release(never_ran)
    [use] = await service.usage(tenant="acme", principal_id=None, session=None)
    assert (use.used, use.reserved) == (37, 963)


async def test_usage_lists_the_tenants_the_principals_and_the_sessions_quotas(
    service: QuotaService,
) -> None:
    await service.set_limits(
        "tenant:acme", QuotaLimits(shots=5000, period=QuotaPeriod.MONTH), actor="admin"
    )
    await service.set_limits(
        f"principal:{ALICE}",
        QuotaLimits(executions=50, concurrent=2, period=QuotaPeriod.HOUR),
        actor="admin",
    )
    session = with_quotas(qpu_seconds=12.5)
    assert await reserve(service, session, shots=10, executions=1, qpu_seconds=1.5) is not None
    uses = await service.usage(tenant="acme", principal_id=ALICE, session=session)
    assert uses == [
        QuotaUse(
            scope="tenant:acme",
            resource=R.SHOTS,
            limit=5000,
            used=0,
            reserved=10,
            period=QuotaPeriod.MONTH,
            resets_at=datetime(2026, 4, 1, tzinfo=UTC),
        ),
        QuotaUse(
            scope=f"principal:{ALICE}",
            resource=R.EXECUTIONS,
            limit=50,
            used=0,
            reserved=1,
            period=QuotaPeriod.HOUR,
            resets_at=datetime(2026, 3, 9, 16, tzinfo=UTC),
        ),
        QuotaUse(scope=f"principal:{ALICE}", resource=R.CONCURRENT, limit=2, used=0, reserved=0),
        QuotaUse(
            scope=f"session:{session.id}", resource=R.QPU_SECONDS, limit=12.5, used=0, reserved=1.5
        ),
    ]


# --- setting limits ------------------------------------------------------------------


async def test_setting_limits_drops_the_cache_here_and_other_processes_follow_in_a_second(
    service: QuotaService, counting: CountingQuotas, clock: FakeUtcClock
) -> None:
    other = QuotaService(counting, clock=clock)  # another API process on the same store
    session = with_quotas()
    assert await reserve(service, session, executions=1) is None
    assert await reserve(other, session, executions=1) is None
    stored = await service.set_limits(
        "tenant:acme", {"executions": 0, "period": "hour"}, actor="admin"
    )
    assert stored == QuotaLimits(executions=0, period=QuotaPeriod.HOUR)
    with pytest.raises(QuotaExceeded):
        await reserve(service, session, executions=1)
    assert await reserve(other, session, executions=1) is None  # its cache is still fresh
    clock.advance(1.01)
    with pytest.raises(QuotaExceeded):
        await reserve(other, session, executions=1)


async def test_the_verdict_lists_the_tenants_quota_before_the_principals_however_cached(
    service: QuotaService, clock: FakeUtcClock
) -> None:
    day = QuotaPeriod.DAY
    await service.set_limits("tenant:acme", QuotaLimits(shots=1000, period=day), actor="admin")
    await service.set_limits(f"principal:{ALICE}", QuotaLimits(shots=100, period=day), actor="a")
    order = ["quota:tenant:acme:shots", f"quota:principal:{ALICE}:shots"]
    session = with_quotas()
    await reserve(service, session, principal=None, shots=1)  # caches the tenant's
    clock.advance(0.5)
    assert (await reserve(service, session, shots=1)).policy_ids == order  # and the principal's
    clock.advance(0.6)  # the tenant's has expired, the principal's not
    assert (await reserve(service, session, shots=1)).policy_ids == order


async def test_setting_limits_writes_a_ledger_entry_and_empty_limits_remove_them(
    service: QuotaService, storage: Storage
) -> None:
    await service.set_limits("tenant:acme", {"shots": 10, "period": "day"}, actor="root")
    await service.set_limits("tenant:acme", QuotaLimits(), actor="root")
    assert await service.usage(tenant="acme", principal_id=None, session=None) == []
    entries = await storage.list_entries()
    assert [(e.actor, e.action, e.resource_type, e.resource_id) for e in entries] == [
        ("root", "quota.set", "quota", "tenant:acme"),
        ("root", "quota.removed", "quota", "tenant:acme"),
    ]
    assert entries[0].payload == {"scope": "tenant:acme", "limits": {"shots": 10, "period": "day"}}


@pytest.mark.parametrize(
    ("scope", "limits", "locs"),
    [
        ("tenant:acme", {"shots": -5, "period": "day"}, [["limits", "shots"]]),
        ("tenant:acme", {"qpu_seconds": -0.5, "period": "day"}, [["limits", "qpu_seconds"]]),
        ("tenant:acme", {"shots": 5, "bogus": 1, "period": "day"}, [["limits", "bogus"]]),
        ("tenant:acme", {"shots": 5, "period": "week"}, [["limits", "period"]]),
        ("tenant:acme", {"shots": 5.5, "period": "day"}, [["limits", "shots"]]),
        ("tenant:acme", {"shots": 5, "concurrent": 2}, [["limits", "period"]]),
        (f"principal:{ALICE}", {"executions": 5}, [["limits", "period"]]),
        (f"session:{ALICE}", {"shots": 5}, [["scope"]]),
        ("team:acme", {"shots": -1}, [["scope"], ["limits", "shots"]]),
    ],
    ids=[
        "negative",
        "negative-seconds",
        "unknown",
        "bad-period",
        "fractional-count",
        "no-period",
        "principal-no-period",
        "session",
        "scope-and-negative",
    ],
)
async def test_bad_limits_are_a_422_naming_each_problem_with_nothing_written(
    service: QuotaService,
    storage: Storage,
    scope: str,
    limits: dict[str, Any],
    locs: list[list[str]],
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await service.set_limits(scope, limits, actor="admin")
    assert refused.value.status_code == 422
    assert [e["loc"] for e in refused.value.errors] == locs
    assert refused.value.detail.startswith(f"the quotas of {scope!r} cannot be set: ")
    assert await storage.ledger_size() == 0
    assert await storage.quotas.limits([scope]) == []


async def test_only_concurrent_needs_no_period(service: QuotaService) -> None:
    assert await service.set_limits("tenant:acme", {"concurrent": 3}, actor="admin") == (
        QuotaLimits(concurrent=3)
    )


@pytest.mark.parametrize("amount", [-1, float("nan"), float("inf")])
async def test_a_bad_demand_is_refused_and_nothing_is_reserved(
    service: QuotaService, amount: float
) -> None:
    session = with_quotas(shots=100, executions=10)
    with pytest.raises(InvalidInput, match="the demand for shots must be"):
        await reserve(service, session, executions=1, shots=amount)
    uses = await service.usage(tenant="acme", principal_id=None, session=session)
    assert [(u.resource, u.reserved) for u in uses] == [(R.EXECUTIONS, 0), (R.SHOTS, 0)]
