"""The scheduled-workflow flow against a live platform (real HTTP, SQLite) and the suite's
Prefect server: each run makes a session, runs the workflow in it, completes it, and
ends Failed unless the run succeeded; the key comes from a Secret block only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import State
from pydantic import SecretStr

from limit_graph.client import LimitClient, PermissionDeniedError, paginate
from limit_graph.core.errors import ConfigError
from limit_graph.core.models import Session, WorkflowRun
from limit_graph.core.settings import load_settings
from limit_graph.core.workflows.loading import load_workflow
from limit_graph.deployments.server import PrefectServer
from limit_graph.flows.workflow import (
    ScheduledWorkflowFailed,
    scheduled_workflow,
    workflow_key_block,
)
from tests.fixtures.live import LiveServer, live_server
from tests.fixtures.prefect import unique_name
from tests.fixtures.workflows import DIAMOND_YAML as DIAMOND

ADMIN_KEY = "test-admin-key-scheduled-0123456789"
FAILING = {
    "name": "failing",
    "steps": [
        {"id": "boom", "agent": "fail", "inputs": {"message": "no luck"}},
        {"id": "after", "agent": "echo", "depends_on": ["boom"]},
    ],
}
SLOW = {"name": "slow", "steps": [{"id": "nap", "agent": "sleep", "inputs": {"seconds": 120}}]}
INVALID = {"name": "invalid", "steps": [{"id": "a", "agent": "no-such-agent"}]}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scheduled-workflow")


@pytest.fixture(scope="module")
def platform(home: Path) -> Iterator[LiveServer]:
    settings = load_settings(
        environ={},
        home=str(home),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{home / 'limit.db'}",
    )
    with live_server(settings) as server:
        yield server


@pytest.fixture
def rest(platform: LiveServer) -> Iterator[LimitClient]:
    with LimitClient(platform.url, ADMIN_KEY) as client:
        yield client


@pytest.fixture
def prefect(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    """The suite's server as this process's Prefect API, logs sent before it changes."""
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server
        APILogHandler().flush()


@pytest.fixture
def key_block(prefect: PrefectServer) -> Iterator[str]:  # noqa: ARG001 - its Prefect API
    """A Secret block of its own holding the admin key; deleted after the test."""
    name = workflow_key_block(unique_name("flow-test"))
    asyncio.run(Secret(value=SecretStr(ADMIN_KEY)).asave(name))
    yield name
    asyncio.run(Secret.adelete(name))


def _diamond() -> dict[str, Any]:
    return load_workflow(DIAMOND)


def _run(**parameters: Any) -> State[Any]:
    state: State[Any] = asyncio.run(scheduled_workflow(**parameters, return_state=True))
    return state


def _sessions(rest: LimitClient) -> list[Session]:
    return list(paginate(rest.list_sessions, limit=500))


def _only_run(rest: LimitClient, session_id: str) -> WorkflowRun:
    [run] = rest.list_workflow_runs(session_id).items
    return run


async def _flow_run_record(state: State[Any]) -> tuple[list[str], list[Any], dict[str, Any]]:
    """The flow run's log messages, markdown artifacts and parameters, as Prefect holds
    them (a failed run also has an untyped artifact of its own: its result)."""
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    APILogHandler().flush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        flow_run = await client.read_flow_run(flow_run_id)
    markdown = [artifact for artifact in artifacts if artifact.type == "markdown"]
    return [log.message for log in logs], markdown, flow_run.parameters


def test_a_run_makes_a_session_runs_the_workflow_in_it_and_completes_it(
    platform: LiveServer, rest: LimitClient, key_block: str
) -> None:
    state = _run(
        workflow=_diamond(),
        params={"n": 5},
        session_tags=["nightly"],
        api_url=platform.url,
        key_block=key_block,
    )

    assert state.is_completed(), state
    answer = state.result()
    session = rest.get_session(answer["session_id"])
    assert session.state == "completed"
    assert session.name == "diamond"
    assert session.config.tags == ["scheduled", "nightly"]
    run = rest.get_workflow_run(session.id, answer["run_id"])
    assert (run.state, run.params) == ("succeeded", {"n": 5})
    assert [step.state for step in run.steps] == ["succeeded"] * 4
    link = f"{platform.url}/sessions/{session.id}/workflows/{run.id}"
    assert answer == {
        "session_id": str(session.id),
        "run_id": str(run.id),
        "state": "succeeded",
        "link": link,
    }
    messages, artifacts, parameters = asyncio.run(_flow_run_record(state))
    assert any(str(run.id) in m and link in m for m in messages), messages
    assert any("4 of 4 steps done" in m for m in messages), messages
    [artifact] = artifacts
    assert artifact.type == "markdown" and artifact.key == "limit-workflow-diamond"
    assert f"[{run.id}]({link})" in str(artifact.data) and "succeeded" in str(artifact.data)
    assert ADMIN_KEY not in json.dumps(parameters)
    assert not [m for m in messages if ADMIN_KEY in m]


def test_a_workflow_file_is_read_from_the_working_directory(
    platform: LiveServer,
    rest: LimitClient,
    key_block: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "diamond.yaml").write_text(DIAMOND, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIMIT_API_URL", platform.url)

    state = _run(
        workflow_file="flows/diamond.yaml", session_name="from-a-file", key_block=key_block
    )

    assert state.is_completed(), state
    session = rest.get_session(state.result()["session_id"])
    assert (session.name, session.state) == ("from-a-file", "completed")
    assert _only_run(rest, str(session.id)).params == {"n": 3}

    missing = _run(workflow_file="flows/nope.yaml", key_block=key_block)
    assert missing.is_failed()
    with pytest.raises(ConfigError, match=r"cannot read workflow file .*flows/nope\.yaml"):
        missing.result()


def test_a_failing_workflow_fails_the_flow_run_and_still_completes_its_session(
    platform: LiveServer, rest: LimitClient, key_block: str
) -> None:
    state = _run(workflow=FAILING, api_url=platform.url, key_block=key_block)

    assert state.is_failed(), state
    with pytest.raises(ScheduledWorkflowFailed, match="failed: step boom: .*no luck") as failed:
        state.result()
    [session] = [s for s in _sessions(rest) if s.name == "failing"]
    assert session.state == "completed"
    run = _only_run(rest, str(session.id))
    assert str(run.id) in str(failed.value)
    assert (run.state, [s.state for s in run.steps]) == ("failed", ["failed", "skipped"])
    _, [artifact], _ = asyncio.run(_flow_run_record(state))
    assert "failed" in str(artifact.data) and "no luck" in str(artifact.data)


def test_an_invalid_workflow_fails_before_a_session_is_made(
    platform: LiveServer, rest: LimitClient, key_block: str
) -> None:
    before = {s.id for s in _sessions(rest)}

    invalid = _run(workflow=INVALID, api_url=platform.url, key_block=key_block)
    bad_params = _run(
        workflow=_diamond(), params={"n": "many"}, api_url=platform.url, key_block=key_block
    )

    assert invalid.is_failed() and bad_params.is_failed()
    with pytest.raises(ScheduledWorkflowFailed, match="a /steps/0/agent: no agent named"):
        invalid.result()
    with pytest.raises(ScheduledWorkflowFailed, match="/params/n"):
        bad_params.result()
    assert {s.id for s in _sessions(rest)} == before


def test_the_key_must_come_from_its_secret_block_and_may_not_be_the_runner_key(
    platform: LiveServer,
    rest: LimitClient,
    prefect: PrefectServer,  # noqa: ARG001 - its Prefect API
    home: Path,
) -> None:
    before = {s.id for s in _sessions(rest)}
    missing = _run(workflow=_diamond(), api_url=platform.url, key_block=unique_name("no-key"))
    assert missing.is_failed()
    with pytest.raises(ConfigError, match=r"no Secret block 'no-key-\w+' holds the API key"):
        missing.result()

    runner_key = (home / "runner.key").read_text().strip()
    name = unique_name("runner-key")
    asyncio.run(Secret(value=SecretStr(runner_key)).asave(name))
    try:
        refused = _run(workflow=_diamond(), api_url=platform.url, key_block=name)
    finally:
        asyncio.run(Secret.adelete(name))
    assert refused.is_failed()
    with pytest.raises(PermissionDeniedError, match="runner may not workflow.validate"):
        refused.result()
    assert {s.id for s in _sessions(rest)} == before


def test_a_run_that_outlasts_its_wait_timeout_is_cancelled(
    platform: LiveServer, rest: LimitClient, key_block: str
) -> None:
    state = _run(workflow=SLOW, wait_timeout_s=0.5, api_url=platform.url, key_block=key_block)

    assert state.is_failed(), state
    with pytest.raises(TimeoutError, match="did not end within 0.5 s"):
        state.result()
    assert state.name == "TimedOut"
    [session] = [s for s in _sessions(rest) if s.name == "slow"]
    assert session.state == "completed"
    run = rest.wait_workflow_run(_only_run(rest, str(session.id)), timeout=60)
    assert (run.state, run.steps[0].state) == ("cancelled", "cancelled")


def test_the_spec_is_given_once(key_block: str) -> None:
    for parameters in ({}, {"workflow": FAILING, "workflow_file": "failing.yaml"}):
        state = _run(**parameters, key_block=key_block)
        assert state.is_failed()
        with pytest.raises(ConfigError, match="one of them"):
            state.result()
