"""Reservations a dead process left behind are given back, or settled, once stale.

Two ways a process can die with a reservation outstanding are made here by hand: after
reserving for work that runs before it is recorded (a reservation with no execution),
and after recording a cancelled execution but before reconciling it.  The sweeper, on a
clock past the stale age, gives back the first and settles the second, leaving the
reservation of unfinished work alone; ``GET /quotas`` shows the slots free again.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from limit_graph.core.models import ExecutionState, utcnow
from limit_graph.orchestration.quota_gate import Demand
from limit_graph.orchestration.quota_sweep import ReservationSweeper, SweepReport
from tests.fixtures.api import Api


def _concurrent(listing: dict[str, object]) -> dict[str, object]:
    items = listing["items"]
    assert isinstance(items, list)
    [found] = [i for i in items if i["resource"] == "concurrent"]
    return dict(found)


async def test_stale_reservations_are_given_back_or_settled_and_fresh_ones_kept(
    api: Api,
) -> None:
    platform = api.platform
    sid = await api.new_session(quotas={"concurrent": 3, "executions": 10})
    session = await platform.storage.get_session(uuid.UUID(sid))
    assert session is not None
    quotas = platform.executions.quotas.quotas
    recorder = platform.executions.recorder

    async def reserve() -> uuid.UUID:
        execution_id = uuid.uuid4()
        plan = await quotas.plan(
            tenant=session.tenant,
            principal_id=platform.admin.id,
            session=session,
            demand=Demand({}, None),
        )
        assert plan is not None
        assert await platform.storage.quotas.reserve(execution_id, plan.claims) is None
        return execution_id

    orphan = await reserve()  # its process died before it recorded the work
    cancelled = await reserve()  # its process died after the cancel, before reconciling
    running = await api.client.post(
        f"/sessions/{sid}/execute",
        json={"agent": "sleep", "inputs": {"seconds": 30}, "wait_s": 0},
    )
    assert running.status_code == 202, running.text
    sleeping = await platform.storage.get_execution(uuid.UUID(running.json()["id"]))
    assert sleeping is not None and sleeping.state is ExecutionState.RUNNING
    stopped = {"id": cancelled, "state": ExecutionState.CANCELLED, "finished_at": utcnow()}
    async with platform.storage.transaction() as tx:  # the cancel, recorded in a transaction
        await tx.save_execution(
            sleeping.model_copy(update=stopped), actor="admin", action="execution.cancelled"
        )
    listed = await api.client.get("/quotas", params={"session_id": sid})
    assert _concurrent(listed.json())["reserved"] == 3  # the two stale ones and the sleeper

    sweeper = ReservationSweeper(
        platform.storage,
        recorder,
        quotas,
        stale_s=600,
        every_s=60,
        clock=lambda: utcnow() + timedelta(minutes=11),
    )
    assert await sweeper.sweep() == SweepReport(released=1, settled=1)
    assert await platform.storage.quotas.reservations(orphan) == []
    assert await platform.storage.quotas.reservations(cancelled) == []
    listed = await api.client.get("/quotas", params={"session_id": sid})
    assert _concurrent(listed.json())["reserved"] == 1  # the sleeper's, still running
    executions = [i for i in listed.json()["items"] if i["resource"] == "executions"]
    assert executions[0]["used"] == 1  # the cancelled one counts; the orphan never ran

    assert await sweeper.sweep() == SweepReport(released=0, settled=0)
    now = ReservationSweeper(platform.storage, recorder, quotas, stale_s=600, every_s=60)
    sleeper = await reserve()
    assert await now.sweep() == SweepReport(released=0, settled=0)  # not stale yet
    assert await platform.storage.quotas.reservations(sleeper) != []
    assert await platform.storage.quotas.reservations(sleeping.id) != []
