"""Authoring in Python end to end: the Prefect-flow example (``examples/python``) run
as its deployment entry would run it, against a real platform (uvicorn, SQLite) and
the suite's real Prefect server; read back on both sides."""

from __future__ import annotations

import ast
import csv
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect import Flow, flow
from prefect.flows import load_flow_from_entrypoint
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_API_URL, temporary_settings

from limit_graph.client import LimitClient
from limit_graph.client.flows import AgentFailed, limit_session, run_agent
from limit_graph.core.models import ExecutionState, SessionState, WorkflowRunState
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer
from tests.fixtures.live import live_server
from tests.fixtures.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "python" / "calibration_flow.py"
KEY = "authoring-admin-key-0123456789abcdef"


@pytest.fixture
def sdk(
    tmp_path: Path, prefect_server: PrefectServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LimitClient]:
    """A live platform, the environment a flow finds it by, and Prefect's API set to the
    shared server while the test runs; the working directory is the repository's
    root, as for ``python examples/python/calibration_flow.py``."""
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=KEY,
        storage__url=f"sqlite:///{tmp_path / 'platform.db'}",
    )
    monkeypatch.chdir(REPO)
    with (
        live_server(settings) as platform,
        temporary_settings({PREFECT_API_URL: prefect_server.api_url}),
        LimitClient(platform.url, KEY) as client,
    ):
        monkeypatch.setenv("LIMIT_API_URL", platform.url)
        monkeypatch.setenv("LIMIT_API_KEY", KEY)
        yield client
        APILogHandler().flush()  # the runs' logs reach the server while it is set


def deployment_entry() -> dict[str, Any]:
    """The ``prefect.yaml`` entry the example's docstring shows."""
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text.split("``prefect.yaml`` entry")[1].split("::\n", 1)[1].split('"""')[0]
    [entry] = yaml.safe_load(block)["deployments"]
    assert isinstance(entry, dict)
    return entry


def task_runs(api_url: str, flow_run_id: uuid.UUID, count: int) -> list[dict[str, Any]]:
    """The flow run's task runs, once Prefect has recorded ``count`` of them in a final
    state (it records them from events, a moment after they happen)."""

    def read() -> list[dict[str, Any]] | None:
        response = httpx.post(
            f"{api_url}/task_runs/filter",
            json={"flow_runs": {"id": {"any_": [str(flow_run_id)]}}},
            timeout=30,
        )
        response.raise_for_status()
        runs: list[dict[str, Any]] = response.json()
        final = [r for r in runs if r["state"] and r["state"]["type"] in ("COMPLETED", "FAILED")]
        return runs if len(final) >= count else None

    # The events travel from this process's event client through the server's event
    # pipeline; on a loaded machine (the whole suite on two cores) that took over 60 s.
    return wait_until(read, timeout_s=180, what=f"{count} task runs of {flow_run_id}")


def expected_summaries(thresholds: list[float]) -> dict[str, dict[str, tuple[int, float]]]:
    """threshold → device → (good qubits, mean T1), computed from the CSV directly."""
    with (REPO / "examples" / "data" / "calibrations.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    found: dict[str, dict[str, tuple[int, float]]] = {}
    for limit in thresholds:
        t1: dict[str, list[float]] = {}
        for row in rows:
            if row["operational"] == "true" and float(row["readout_error"]) < limit:
                t1.setdefault(row["device"], []).append(float(row["t1_us"]))
        found[str(limit)] = {d: (len(v), statistics.fmean(v)) for d, v in sorted(t1.items())}
    return found


def test_the_flow_example_runs_its_agents_in_a_session_and_shows_in_prefect(
    sdk: LimitClient, prefect_server: PrefectServer
) -> None:
    entry = deployment_entry()
    assert entry["entrypoint"] == "examples/python/calibration_flow.py:calibration_report"
    # loaded from its file, as a worker loads a deployment's flow
    calibration_report: Flow[..., Any] = load_flow_from_entrypoint(entry["entrypoint"])
    params = calibration_report.validate_parameters(entry["parameters"])

    state = calibration_report(**params, return_state=True)

    assert state.is_completed(), state
    report = state.result()
    thresholds = entry["parameters"]["thresholds"]
    expected = expected_summaries(thresholds)
    assert list(report) == list(expected) == ["0.03", "0.05"]
    for limit, table in report.items():
        got = {row["device"]: (row["rows"], row["t1_us_mean"]) for row in table}
        assert list(got) == list(expected[limit])
        for device, (count, mean) in expected[limit].items():
            assert got[device][0] == count and got[device][1] == pytest.approx(mean, abs=1e-4)
    assert expected["0.03"] != expected["0.05"]  # the thresholds do make a difference

    # the platform: one session, made for the flow run and completed by it
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    [session] = sdk.list_sessions(tag=f"prefect-flow-run:{flow_run_id}").items
    assert session.state is SessionState.COMPLETED and session.name == "calibration-report"
    assert "example" in session.config.tags
    executions = sdk.list_results(session.id).items
    assert sorted(e.agent for e in executions) == [
        "data.load_csv",
        "data.summarize",
        "data.summarize",
        "data.transform",
        "data.transform",
    ]
    assert {e.state for e in executions} == {ExecutionState.SUCCEEDED}
    [run] = sdk.list_workflow_runs(session.id).items
    assert run.name == "device-summaries" and run.state is WorkflowRunState.SUCCEEDED

    # Prefect: the flow's task runs, one per call, tagged with the session
    runs = task_runs(prefect_server.api_url, flow_run_id, count=4)
    assert sorted(r["name"] for r in runs) == [
        "data.load_csv",
        "data.transform",
        "data.transform",
        "workflow-device-summaries",
    ]
    assert all(r["state"]["type"] == "COMPLETED" for r in runs)
    assert all(f"limit-session:{session.id}" in r["tags"] for r in runs)


def test_a_failing_agent_fails_its_task_run_and_the_session_is_still_completed(
    sdk: LimitClient, prefect_server: PrefectServer
) -> None:
    @flow(name="authoring-fails")
    def fails_on_purpose() -> bool:
        with limit_session(name="fails-on-purpose") as session:
            run_agent(session, "echo", {"fine": True})
            run_agent(session, "fail", {"message": "no luck"})
            run_agent(session, "echo", {"never": "reached"})
        return True

    state = fails_on_purpose(return_state=True)

    assert state.is_failed(), state
    with pytest.raises(AgentFailed, match="agent 'fail' failed: no luck") as failed:
        state.result()
    assert failed.value.execution.state is ExecutionState.FAILED
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    [session] = sdk.list_sessions(tag=f"prefect-flow-run:{flow_run_id}").items
    assert session.state is SessionState.COMPLETED
    assert [e.agent for e in sdk.list_results(session.id).items] == ["echo", "fail"]
    runs = task_runs(prefect_server.api_url, flow_run_id, count=2)
    states = {r["name"]: r["state"]["type"] for r in runs}
    assert states == {"echo": "COMPLETED", "fail": "FAILED"}


def test_the_readme_lists_each_python_example_and_the_flows_deployment_entry() -> None:
    readme = (REPO / "examples" / "README.md").read_text(encoding="utf-8")
    for script in sorted((REPO / "examples" / "python").glob("*.py")):
        assert f"python examples/python/{script.name}" in readme, script.name
    shown = readme.split("a `prefect.yaml` entry", 1)[1].split("```yaml\n", 1)[1]
    assert yaml.safe_load(shown.split("```", 1)[0]) == {"deployments": [deployment_entry()]}


def test_the_pipeline_script_runs_as_the_readme_says(sdk: LimitClient) -> None:
    script = REPO / "examples" / "python" / "classical_pipeline.py"
    env = {**os.environ, "LIMIT_API_URL": sdk.base_url, "LIMIT_API_KEY": KEY}
    done = subprocess.run(
        [sys.executable, str(script.relative_to(REPO))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [ast.literal_eval(line) for line in done.stdout.splitlines()]
    assert [row["device"] for row in rows] == list(expected_summaries([0.05])["0.05"])
    [session] = [s for s in sdk.list_sessions().items if s.name == "classical-pipeline"]
    assert session.state is SessionState.COMPLETED
