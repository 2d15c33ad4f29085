"""``AsyncLimitClient`` against a real server: the same calls, awaited."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from limit_graph.client import (
    AsyncLimitClient,
    InvalidInputError,
    LimitConnectionError,
    NotFoundError,
    WaitTimeout,
    apaginate,
)
from limit_graph.core.models import ExecutionState, StepState, WorkflowRunState
from tests.client.conftest import KEY
from tests.fixtures.live import LiveServer, free_port

MAPPED = {
    "name": "mapped",
    "params": {"xs": {"type": "array", "default": [1, 2, 3]}},
    "steps": [
        {
            "id": "each",
            "agent": "echo",
            "map": {"over": "${params.xs}", "as": "x"},
            "inputs": {"x": "${x}"},
        },
        {"id": "all", "agent": "echo", "inputs": {"items": "${steps.each.outputs}"}},
    ],
}


@pytest.fixture
async def aclient(server: LiveServer) -> AsyncIterator[AsyncLimitClient]:
    async with AsyncLimitClient(server.url, KEY) as sdk:
        yield sdk


async def test_sessions_executions_and_events(aclient: AsyncLimitClient) -> None:
    tag = f"a-{uuid.uuid4().hex[:8]}"
    sessions = [await aclient.create_session(f"a{n}", {"tags": [tag]}) for n in range(3)]
    listed = [s.id async for s in apaginate(aclient.list_sessions, tag=tag, limit=2)]
    assert listed == [s.id for s in sessions]
    sid = sessions[0].id

    done = await aclient.execute(sid, "echo", {"a": 1})
    assert done.state is ExecutionState.SUCCEEDED and done.result == {"a": 1}
    waited = await aclient.execute(sid, "sleep", {"seconds": 0.2}, wait_s=0, wait=True)
    assert waited.state is ExecutionState.SUCCEEDED
    assert [e.id for e in (await aclient.list_results(sid)).items] == [done.id, waited.id]
    assert (await aclient.session_status(sid)).counts["succeeded"] == 2

    actions = []
    async for event in aclient.events(sid):
        actions.append(event["action"])
        if len(actions) == 5:
            break
    assert actions == [
        "session.created",
        "execution.started",
        "execution.succeeded",
        "execution.started",
        "execution.succeeded",
    ]
    assert {a.id for a in await aclient.list_agents()} >= {"echo", "sleep"}
    assert (await aclient.get_agent("echo")).id == "echo"


async def test_a_mapped_workflow_runs_and_errors_are_typed(aclient: AsyncLimitClient) -> None:
    session = await aclient.create_session("async-wf")
    check = await aclient.validate_workflow(MAPPED, {"xs": [4, 5]})
    assert check.valid and [n.map for n in check.nodes] == [True, False]
    run = await aclient.run_workflow(session.id, MAPPED, {"xs": [4, 5]}, wait=True, timeout=60)
    assert run.state is WorkflowRunState.SUCCEEDED
    each = run.step("each")
    assert each.items == 2 and len(each.execution_ids) == 2 and each.state is StepState.SUCCEEDED
    final = await aclient.get_execution(session.id, run.step("all").execution_ids[0])
    assert final.result == {"items": [{"x": 4}, {"x": 5}]}
    assert [r.id for r in (await aclient.list_workflow_runs(session.id)).items] == [run.id]
    assert (await aclient.wait_workflow_run(run, timeout=0)) == run

    with pytest.raises(InvalidInputError) as refused:
        await aclient.run_workflow(session.id, {"name": "x", "steps": [{"id": "a"}]})
    assert refused.value.errors and refused.value.errors[0]["step"] == "a"
    with pytest.raises(NotFoundError):
        await aclient.get_workflow_run(session.id, uuid.uuid4())
    slow = await aclient.execute(session.id, "sleep", {"seconds": 120}, wait_s=0)
    with pytest.raises(WaitTimeout):
        await aclient.wait_execution(slow, timeout=0)
    await aclient.cancel_execution(session.id, slow.id)


async def test_no_server_is_a_connection_error() -> None:
    async with AsyncLimitClient(f"http://127.0.0.1:{free_port()}", KEY) as lost:
        with pytest.raises(LimitConnectionError):
            await lost.list_agents()
