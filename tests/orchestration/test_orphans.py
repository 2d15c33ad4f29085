"""Inline executions left ``running`` by an API process that stopped: ended once their
timeout and a grace have passed, ``failed`` with a ``ProcessLost`` error, once.

The records are written as a killed process leaves them (``running``, no end), through
the platform's real store; the platform's own sweeper runs under its ``orphans`` lease
(``tests/faults/test_api_process_kill.py`` kills a real process)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from limit_graph.core.models import BackendKind, Execution, ExecutionState, utcnow
from limit_graph.orchestration.orphans import PROCESS_LOST, OrphanSweeper
from limit_graph.orchestration.platform import Platform
from tests.fixtures.dispatch import stack
from tests.fixtures.waiting import eventually


async def _left_running(platform: Platform, session_id: str, started: datetime) -> Execution:
    """A ``running`` inline execution, as a process killed while it ran leaves it."""
    session = await platform.storage.get_session(uuid.UUID(session_id))
    assert session is not None
    running = Execution(
        id=uuid.uuid4(),
        session_id=session.id,
        agent="sleep",
        agent_version="1.0.0",
        backend=BackendKind.LOCAL,
        instance="local",
        state=ExecutionState.RUNNING,
        inputs={"seconds": 1},
        attempts=1,
        submitted_at=started,
        started_at=started,
        timeout_s=60.0,
        actor="admin",
    )
    return await platform.storage.write_execution(
        running, actor="admin", action="execution.started"
    )


async def test_an_abandoned_inline_execution_is_ended_once_after_its_timeout(
    tmp_path: Path,
) -> None:
    async with stack(tmp_path, dispatch__lease_s=1.0) as s:
        session_id = await s.session()
        now = utcnow()
        old = await _left_running(s.platform, session_id, now - timedelta(seconds=62))
        young = await _left_running(s.platform, session_id, now - timedelta(seconds=30))
        sweeper = OrphanSweeper(
            s.platform.storage,
            s.platform.executions.recorder,
            grace_s=1.0,
            every_s=1.0,
            clock=lambda: now,
        )
        ended = await sweeper.sweep()
        assert [e.id for e in ended] == [old.id]  # the other may still be running
        assert await sweeper.sweep() == []  # ended once
        stored = await s.platform.storage.get_execution(old.id)
        assert stored is not None and stored.state is ExecutionState.FAILED
        assert stored.error is not None and stored.error.type == PROCESS_LOST
        assert "timeout of 60 s" in stored.error.message
        assert (await s.actions(str(old.id))).count("execution.failed") == 1
        still = await s.platform.storage.get_execution(young.id)
        assert still is not None and still.state is ExecutionState.RUNNING


async def test_the_platform_sweeps_abandoned_inline_executions_by_itself(
    tmp_path: Path,
) -> None:
    async with stack(tmp_path, dispatch__lease_s=0.5) as s:
        session_id = await s.session()
        old = await _left_running(s.platform, session_id, utcnow() - timedelta(seconds=61))
        assert s.platform.leaderships["orphans"].is_leader

        async def read() -> Execution | None:
            return await s.platform.storage.get_execution(old.id)

        ended = await eventually(read, lambda e: e is not None and e.state.is_final, 20)
        assert ended is not None and ended.state is ExecutionState.FAILED
        response = await s.client.get(f"/sessions/{session_id}/executions/{old.id}")
        assert response.json()["error"]["type"] == PROCESS_LOST
