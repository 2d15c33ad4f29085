"""Several API processes, one platform: three platforms on one database (SQLite file or
Postgres schema) stand for three API processes, each with its own app, queue side and
runners talking HTTP to it.

Work submitted through one is claimed by a runner connected to another, its caller
(waiting on the first) gets the final record, it is cancelled through a third, and the
event stream of any shows it; every execution is recorded once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dispatch import Stack, running, stack
from tests.fixtures.waiting import eventually


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@asynccontextmanager
async def processes(
    tmp_path: Path, url: str, n: int, *, fresh: bool = True, **overrides: Any
) -> AsyncIterator[list[Stack]]:
    """``n`` platforms on the database at ``url`` sharing its queue; ``fresh``: the
    first makes carol."""
    overrides.setdefault("dispatch__queue", "shared")
    async with AsyncExitStack() as exits:
        stacks = []
        for i in range(n):
            stacks.append(
                await exits.enter_async_context(
                    stack(tmp_path, url=url, member=fresh and i == 0, **overrides)
                )
            )
        yield stacks


def _state(s: Stack, session_id: str, execution_id: str) -> Callable[[], Any]:
    async def read() -> str:
        response = await s.client.get(f"/sessions/{session_id}/executions/{execution_id}")
        return str(response.json()["state"])

    return read


async def test_work_submitted_to_one_process_runs_on_a_runner_of_another(
    tmp_path: Path, shared_url: str
) -> None:
    async with processes(tmp_path, shared_url, 2) as (a, b):
        loop = b.runner()
        async with running(loop):
            session_id = await a.session()
            answers = await asyncio.gather(
                *(
                    a.execute(session_id, agent="echo", inputs={"i": i}, backend="remote")
                    for i in range(20)
                )
            )
            assert [r.status_code for r in answers] == [200] * 20, answers[0].text
            assert [r.json()["result"] for r in answers] == [{"i": i} for i in range(20)]
            assert loop.summary.by_state == {"succeeded": 20}
        for answer in answers:
            assert await a.actions(answer.json()["id"]) == [
                "execution.queued",
                "execution.started",
                "execution.succeeded",
            ]
        assert await b.platform.storage.dispatch.counts() == {}


async def test_work_is_cancelled_through_a_third_process_and_streamed_on_any(
    tmp_path: Path, shared_url: str
) -> None:
    # The cancel rides on the runner's next heartbeat, one every lease_s / 3.
    async with processes(tmp_path, shared_url, 3, dispatch__lease_s=3.0) as (a, b, c):
        loop = b.runner()
        async with running(loop):
            session_id = await a.session()
            response = await a.execute(
                session_id, agent="sleep", inputs={"seconds": 30}, backend="remote", wait_s=0
            )
            assert response.status_code == 202, response.text
            execution_id = response.json()["id"]
            await eventually(
                _state(c, session_id, execution_id), lambda s: s == "running", 15, 0.05
            )
            cancelled = await c.client.post(
                f"/sessions/{session_id}/executions/{execution_id}/cancel"
            )
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["state"] == "cancelled"
            assert loop.summary.by_state == {"cancelled": 1}

        seen: list[str] = []

        async def watch() -> None:
            async for entry in b.platform.events.stream(uuid.UUID(session_id), -1):
                seen.append(entry.action)
                if entry.action == "execution.cancelled":
                    return

        await asyncio.wait_for(watch(), 10)
        assert seen[-3:] == ["execution.queued", "execution.started", "execution.cancelled"]


async def test_a_queued_execution_is_cancelled_through_another_process(
    tmp_path: Path, shared_url: str
) -> None:
    async with processes(tmp_path, shared_url, 2) as (a, b):
        session_id = await a.session()
        response = await a.execute(session_id, agent="echo", backend="remote", wait_s=0)
        execution_id = response.json()["id"]
        cancelled = await b.client.post(f"/sessions/{session_id}/executions/{execution_id}/cancel")
        assert cancelled.json()["state"] == "cancelled"
        async with running(b.runner(idle_exit_s=1.0)):
            await asyncio.sleep(0.5)
        assert await a.actions(execution_id) == ["execution.queued", "execution.cancelled"]


async def test_a_lease_lost_with_its_process_runs_again_through_another(
    tmp_path: Path, shared_url: str
) -> None:
    async with processes(tmp_path, shared_url, 1, dispatch__lease_s=1.0) as (a,):
        session_id = await a.session()
        response = await a.execute(
            session_id, agent="echo", inputs={"n": 1}, backend="remote", wait_s=0
        )
        execution_id = response.json()["id"]
        claim = await a.client.post(
            "/runners/claim", json={"runner_id": "doomed", "pool": "remote", "wait_s": 0}
        )
        assert [lease["attempt"] for lease in claim.json()["leases"]] == [1]
    # The process that granted the lease is gone, and so is its runner; another process
    # takes the expired lease and the work runs again there.
    async with processes(
        tmp_path, shared_url, 1, fresh=False, dispatch__lease_s=1.0, dispatch__retry_backoff_s=0.0
    ) as (b,):
        async with running(b.runner()):
            final = await eventually(
                _state(b, session_id, execution_id), lambda s: s == "succeeded", 20, 0.1
            )
        assert final == "succeeded"
        assert await b.actions(execution_id) == [
            "execution.queued",
            "execution.started",
            "execution.retry",
            "execution.started",
            "execution.succeeded",
        ]
