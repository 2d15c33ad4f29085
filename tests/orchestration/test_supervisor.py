"""The runner supervisor against a real dispatcher: it starts runners where work waits.

The starter here launches real ``RunnerLoop``s in this process (the Prefect path,
``prefect_runner_starter``, is exercised with a real worker in tests/e2e).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from limit_graph.core.models import BackendKind
from limit_graph.flows.runner import RunnerLoop
from limit_graph.orchestration.supervisor import RunnerSupervisor
from tests.fixtures.dispatch import stack


async def test_a_pool_with_work_gets_one_runner_which_exits_when_idle(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        dispatcher = s.platform.executions.dispatcher
        loops: list[RunnerLoop] = []
        tasks: list[asyncio.Task[object]] = []

        async def start(pool: BackendKind, idle_exit_s: float) -> str:
            loop = s.runner(pool.value, idle_exit_s=idle_exit_s)
            loops.append(loop)
            tasks.append(asyncio.create_task(loop.run()))
            return loop.runner_id

        supervisor = RunnerSupervisor(dispatcher, start, idle_exit_s=0.5)
        assert await supervisor.tick() == []  # no work, no runner
        session_id = await s.session()
        queued = (await s.execute(session_id, agent="echo", backend="remote", wait_s=0)).json()
        assert await supervisor.tick() == [BackendKind.REMOTE]
        assert await supervisor.tick() == []  # one is starting: no second
        done = await dispatcher.wait_final(uuid.UUID(queued["id"]), 10)
        assert done is not None and done.state.value == "succeeded"
        summaries = await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert [summary.reason for summary in summaries] == ["idle for 0.5 s"]  # type: ignore[attr-defined]
        assert len(loops) == 1


async def test_a_deep_backlog_gets_more_runners_up_to_the_pool_maximum(tmp_path: Path) -> None:
    overrides = {"backends": {"r1": {"type": "remote", "max_runners": 2}}}
    async with stack(tmp_path, **overrides) as s:
        dispatcher = s.platform.executions.dispatcher
        started: list[BackendKind] = []

        async def start(pool: BackendKind, idle_exit_s: float) -> str:  # noqa: ARG001
            started.append(pool)
            return f"run-{len(started)}"

        supervisor = RunnerSupervisor(dispatcher, start, backlog_per_runner=3)
        session_id = await s.session()
        for _ in range(10):
            await s.execute(session_id, agent="echo", backend="remote", wait_s=0)
        assert supervisor.wanted(BackendKind.REMOTE) == 2
        await supervisor.tick()
        await supervisor.tick()
        await supervisor.tick()
        assert started == [BackendKind.REMOTE, BackendKind.REMOTE]


async def test_a_failing_start_is_retried_on_the_next_tick(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        attempts: list[BackendKind] = []

        async def start(pool: BackendKind, idle_exit_s: float) -> str:  # noqa: ARG001
            attempts.append(pool)
            if len(attempts) == 1:
                raise ConnectionError("Prefect is down")
            return "run"

        supervisor = RunnerSupervisor(s.platform.executions.dispatcher, start)
        session_id = await s.session()
        await s.execute(session_id, agent="echo", backend="quantum", wait_s=0)
        assert await supervisor.tick() == []
        assert await supervisor.tick() == [BackendKind.QUANTUM]
