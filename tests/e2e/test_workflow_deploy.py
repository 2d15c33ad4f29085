"""`limit workflow deploy` as a user runs it: `limit up --no-prefect` in a child process,
the CLI in a pipe, the suite's Prefect server.  A deployment is validated before it is
made, updated when deployed again, paused by Prefect's own switches, and run by a real
process worker into a new session.

Deployment names are unique per test (the Prefect server is shared); every block a test
saves is deleted after it (``scratch_blocks``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from limit_graph.core.errors import InvalidInput
from limit_graph.core.workflows.loading import load_workflow
from limit_graph.deployments.register import prefect_api
from limit_graph.deployments.server import PrefectServer, prefect_env
from limit_graph.deployments.workflows import WorkflowDeployment, WorkflowSchedule, deploy_workflow
from limit_graph.flows.workflow import workflow_key_block
from tests.fixtures.cli import Server, start
from tests.fixtures.prefect import unique_name
from tests.fixtures.processes import stop
from tests.fixtures.waiting import wait_until

WORKFLOW = """\
name: {name}
description: Two echo steps, one after the other.
params:
  n: {{type: integer, default: 3}}
steps:
  - id: a
    agent: echo
    inputs: {{x: "${{params.n}}"}}
  - id: b
    agent: echo
    inputs: {{y: "${{steps.a.outputs.x}}"}}
"""
FAILING = """\
name: {name}
steps:
  - id: boom
    agent: fail
    inputs: {{message: no luck}}
"""
BROKEN = """\
name: broken
steps:
  - id: a
    agent: nope
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(tmp_path_factory.mktemp("workflow-deploy"))
    yield running
    running.stop()


def _workflow_deployments(client: httpx.Client) -> set[str]:
    """The ids of the scheduled-workflow deployments on the server."""
    response = client.post(
        "/deployments/filter", json={"flows": {"name": {"any_": ["limit-scheduled-workflow"]}}}
    )
    response.raise_for_status()
    return {deployment["id"] for deployment in response.json()}


@pytest.fixture
def prefect(scratch_blocks: PrefectServer) -> Iterator[httpx.Client]:
    """The suite's Prefect API; the deployments the test makes are deleted after it (with
    their scheduled runs), so that no worker of a later test runs them."""
    with httpx.Client(base_url=scratch_blocks.api_url, timeout=30) as client:
        before = _workflow_deployments(client)
        yield client
        for deployment_id in _workflow_deployments(client) - before:
            assert client.delete(f"/deployments/{deployment_id}").status_code in (204, 404)


@pytest.fixture(scope="module")
def admin_key(server: Server) -> str:
    return (server.cwd / ".limit" / "admin.key").read_text().strip()


@pytest.fixture(scope="module")
def rest(server: Server, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"X-API-Key": admin_key}, timeout=30) as http:
        yield http


def _file(server: Server, template: str, prefix: str) -> tuple[str, str]:
    """A workflow file named after a fresh workflow name; the name and the file."""
    name = unique_name(prefix)
    (server.cwd / f"{name}.yaml").write_text(template.format(name=name), encoding="utf-8")
    return name, f"{name}.yaml"


def deploy(
    server: Server, prefect: httpx.Client, *args: str, code: int = 0
) -> subprocess.CompletedProcess[str]:
    """`limit workflow deploy ARGS` against the suite's Prefect (PREFECT_API_URL)."""
    env = {**server.env, "PREFECT_API_URL": str(prefect.base_url).rstrip("/")}
    result = server.limit("workflow", "deploy", *args, env=env)
    assert result.returncode == code, result.stdout + result.stderr
    return result


def _deployment(prefect: httpx.Client, name: str) -> dict[str, Any] | None:
    response = prefect.get(f"/deployments/name/limit-scheduled-workflow/{name}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def _secret(prefect: httpx.Client, block: str) -> str | None:
    response = prefect.get(
        f"/block_types/slug/secret/block_documents/name/{block}", params={"include_secrets": True}
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    value: str = response.json()["data"]["value"]
    return value


def _scheduled_runs(prefect: httpx.Client, deployment_id: str) -> list[dict[str, Any]]:
    response = prefect.post(
        "/flow_runs/filter",
        json={
            "deployments": {"id": {"any_": [deployment_id]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        },
    )
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()
    return runs


def _final(ids: list[str], prefect: httpx.Client) -> list[dict[str, Any]] | None:
    """The flow runs, once every one of them has ended; else ``None``."""
    runs = [prefect.get(f"/flow_runs/{flow_run_id}").json() for flow_run_id in ids]
    final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
    return runs if all(run["state_type"] in final for run in runs) else None


def test_deploy_makes_a_scheduled_deployment_and_deploying_again_updates_it(
    server: Server, prefect: httpx.Client, admin_key: str
) -> None:
    name, file = _file(server, WORKFLOW, "nightly")
    first = deploy(server, prefect, file, "--cron", "0 3 * * *", "--param", "n=5", "--json")

    made = json.loads(first.stdout)
    deployment = _deployment(prefect, name)
    assert deployment is not None
    assert made["deployment"] == f"limit-scheduled-workflow/{name}" and made["created"] is True
    assert made["id"] == deployment["id"]
    assert made["ui_url"].endswith(f"/deployments/deployment/{deployment['id']}")
    next_run = datetime.fromisoformat(made["next_run"]).astimezone(UTC)
    assert (next_run.hour, next_run.minute) == (3, 0) and next_run > datetime.now(UTC)
    assert deployment["work_pool_name"] == "local"
    assert deployment["entrypoint"] == "limit_graph.flows.workflow.scheduled_workflow"
    assert deployment["paused"] is False
    [schedule] = deployment["schedules"]
    assert schedule["schedule"]["cron"] == "0 3 * * *"
    assert (schedule["schedule"]["timezone"], schedule["active"]) == ("UTC", True)
    key_block = workflow_key_block(name)
    assert deployment["parameters"] == {
        "workflow": load_workflow((server.cwd / file).read_text()),
        "params": {"n": 5},
        "key_block": key_block,
        "api_url": server.url,
    }
    assert admin_key not in json.dumps(deployment)
    assert _secret(prefect, key_block) == admin_key

    again = deploy(
        server,
        prefect,
        file,
        "--cron",
        "30 4 * * 1",
        "--timezone",
        "Europe/Paris",
        "--param",
        "n=7",
        "--session-tag",
        "weekly",
        "--paused",
    )

    lines = again.stdout.splitlines()
    assert lines[0] == f"updated  limit-scheduled-workflow/{name}"
    assert lines[1:4] == [
        f"id          {deployment['id']}",
        "schedule    30 4 * * 1 (Europe/Paris), paused (turn it on in the Prefect UI)",
        "next run    none while paused",
    ]
    assert lines[4].startswith("prefect ui  http") and lines[4].endswith(deployment["id"])
    assert f"Secret block {key_block}" in again.stderr
    updated = _deployment(prefect, name)
    assert updated is not None and updated["id"] == deployment["id"]
    [schedule] = updated["schedules"]
    assert schedule["schedule"]["cron"] == "30 4 * * 1"
    assert (schedule["schedule"]["timezone"], schedule["active"]) == ("Europe/Paris", False)
    assert updated["parameters"]["params"] == {"n": 7}
    assert updated["parameters"]["session_tags"] == ["weekly"]


def test_an_invalid_workflow_schedule_or_prefect_deploys_nothing(
    server: Server, prefect: httpx.Client
) -> None:
    (server.cwd / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    broken = deploy(server, prefect, "broken.yaml", "--cron", "0 3 * * *", code=1)
    assert broken.stdout.splitlines() == [
        "a  /steps/0/agent  no agent named 'nope' (line 4, column 5)"
    ]
    assert "invalid: 1 problem" in broken.stderr

    name, file = _file(server, WORKFLOW, "refused")
    bad_cron = deploy(server, prefect, file, "--cron", "every night", code=1)
    assert "every night (UTC) is not a schedule: Invalid cron string" in bad_cron.stderr
    nowhere = "http://127.0.0.1:9/api"
    down = deploy(
        server, prefect, file, "--cron", "0 3 * * *", "--prefect-api-url", nowhere, code=1
    )
    assert f"cannot reach the Prefect API at {nowhere}" in down.stderr

    for refused in ("broken", name):
        assert _deployment(prefect, refused) is None
        assert _secret(prefect, workflow_key_block(refused)) is None


def test_pausing_it_in_prefect_stops_its_runs(server: Server, prefect: httpx.Client) -> None:
    """Both of Prefect's switches: the schedule's (off: asking the server to schedule
    runs makes none) and the deployment's (paused: the scheduler service skips it while
    it schedules a deployment made after the pause)."""
    name, file = _file(server, WORKFLOW, "minutely")
    made = json.loads(deploy(server, prefect, file, "--cron", "* * * * *", "--json").stdout)
    deployment_id = made["id"]
    [schedule] = prefect.get(f"/deployments/{deployment_id}/schedules").json()

    off = prefect.patch(
        f"/deployments/{deployment_id}/schedules/{schedule['id']}", json={"active": False}
    )
    assert off.status_code == 204, off.text
    assert prefect.post(f"/deployments/{deployment_id}/schedule", json={}).status_code == 200
    assert _scheduled_runs(prefect, deployment_id) == []
    on = prefect.patch(
        f"/deployments/{deployment_id}/schedules/{schedule['id']}", json={"active": True}
    )
    assert on.status_code == 204, on.text
    assert prefect.post(f"/deployments/{deployment_id}/schedule", json={}).status_code == 200
    assert len(_scheduled_runs(prefect, deployment_id)) >= 1

    paused = prefect.post(f"/deployments/{deployment_id}/pause_deployment")
    assert paused.status_code == 200, paused.text
    assert prefect.get(f"/deployments/{deployment_id}").json()["paused"] is True
    assert _scheduled_runs(prefect, deployment_id) == []
    _, control_file = _file(server, WORKFLOW, "control")
    control = json.loads(
        deploy(server, prefect, control_file, "--cron", "* * * * *", "--json").stdout
    )
    wait_until(
        lambda: _scheduled_runs(prefect, control["id"]),
        60,
        what="the scheduler to schedule the deployment made after the pause",
    )
    # A scheduler pass that read the deployments just before the pause may still insert
    # its runs after it (Prefect does not look again); a pass that began after the pause,
    # as the one that scheduled the control did, makes none for the paused deployment.
    after = min(run["created"] for run in _scheduled_runs(prefect, control["id"]))
    late = [r for r in _scheduled_runs(prefect, deployment_id) if r["created"] >= after]
    assert late == []
    assert _deployment(prefect, name) is not None


def test_a_worker_runs_the_deployment_in_a_new_session(
    server: Server,
    prefect: httpx.Client,
    rest: httpx.Client,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """A flow run of the deployment, as its schedule would make it, on a work queue of
    this test's own so that the worker runs nothing else; a failing workflow's run
    ends Failed."""
    name, file = _file(server, WORKFLOW, "worked")
    failing, failing_file = _file(server, FAILING, "worked-failing")
    deploy(server, prefect, file, "--cron", "0 3 * * *", "--paused", "--session-tag", "by-worker")
    deploy(server, prefect, failing_file, "--cron", "0 3 * * *", "--paused")
    api_url = str(prefect.base_url).rstrip("/")
    queue = unique_name("scheduled")
    created = prefect.post("/work_pools/local/queues", json={"name": queue})
    assert created.status_code == 201, created.text
    request.addfinalizer(lambda: prefect.delete(f"/work_pools/local/queues/{queue}"))
    env = prefect_env(tmp_path / "prefect-home", api_url)
    env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "local"]
        + ["--work-queue", queue],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            started = [
                run_deployment(f"limit-scheduled-workflow/{n}", work_queue_name=queue, timeout=0)
                for n in (name, failing)
            ]
        ran, failed = wait_until(
            lambda: _final([str(flow_run.id) for flow_run in started], prefect),
            120,
            what="the worker to run both flow runs",
        )
    finally:
        stop(worker, group=True)

    assert (ran["state_type"], failed["state_type"]) == ("COMPLETED", "FAILED")
    sessions = rest.get("/sessions", params={"tag": f"deployment:{name}"}).json()["items"]
    [session] = sessions
    assert session["name"] == name and session["state"] == "completed"
    assert session["config"]["tags"] == ["scheduled", f"deployment:{name}", "by-worker"]
    [run] = rest.get(f"/sessions/{session['id']}/workflows").json()["items"]
    assert (run["state"], run["params"]) == ("succeeded", {"n": 3})
    [other] = rest.get("/sessions", params={"tag": f"deployment:{failing}"}).json()["items"]
    [failed_run] = rest.get(f"/sessions/{other['id']}/workflows").json()["items"]
    assert (other["state"], failed_run["state"]) == ("completed", "failed")


@pytest.mark.parametrize(
    ("name", "schedule", "field", "message"),
    [
        ("a/b", WorkflowSchedule("0 3 * * *"), "name", "is not a deployment name: 1 to 100"),
        ("ok", WorkflowSchedule("0 3 * * *", "Mars/Base"), "timezone", 'Invalid timezone: "Mars'),
        ("ok", WorkflowSchedule("61 * * * *"), "cron", "Invalid cron string"),
    ],
)
async def test_a_bad_name_or_schedule_is_refused_before_anything_is_written(
    prefect: httpx.Client, name: str, schedule: WorkflowSchedule, field: str, message: str
) -> None:
    deployment = WorkflowDeployment(unique_name(name), load_workflow(BROKEN), schedule)
    async with prefect_api(str(prefect.base_url)) as client:
        with pytest.raises(InvalidInput, match=re.escape(message)) as refused:
            await deploy_workflow(client, deployment, api_key="not-stored")
    assert [error["field"] for error in refused.value.errors] == [field]
    assert _deployment(prefect, deployment.name) is None
    assert _secret(prefect, deployment.key_block) is None
