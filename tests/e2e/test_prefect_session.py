"""A session as a user sees it in Prefect: created over REST, executed on all three
backends (local inline, remote and quantum runners), completed; then read back through
Prefect's own API.  Real Prefect server, real HTTP, real runner processes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer
from tests.fixtures.live import LiveServer, live_server
from tests.fixtures.processes import stop
from tests.fixtures.waiting import wait_until

LIMIT = str(Path(sys.executable).parent / "limit")
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
RUNNER_KEY = "e2e-runner-key-0123456789abcdef"


@pytest.fixture
def platform(tmp_path: Path, prefect_server: PrefectServer) -> Iterator[LiveServer]:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        dispatch__runner_api_key=RUNNER_KEY,
        storage__url=f"sqlite:///{tmp_path / 'platform.db'}",
        prefect__api_url=prefect_server.api_url,
    )
    with live_server(settings) as running:
        yield running


async def read_back(api_url: str, flow_run_id: str) -> tuple[Any, list[Any]]:
    async with PrefectClient(api_url) as client:
        flow_run = await client.read_flow_run(flow_run_id)
        task_runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return flow_run, task_runs


def test_a_session_and_its_executions_on_every_backend_show_in_prefect(
    platform: LiveServer, prefect_server: PrefectServer
) -> None:
    runners = [
        subprocess.Popen(
            [LIMIT, "runner", "--pool", pool, "--api-url", platform.url, "--api-key", RUNNER_KEY],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pool in ("remote", "quantum")
    ]
    try:
        with httpx.Client(
            base_url=platform.url, headers={"X-API-Key": ADMIN_KEY}, timeout=60
        ) as client:
            wait_until(
                lambda: all(
                    client.get("/health").json()["checks"]["backends"][name]["pool_runners"]
                    for name in ("remote", "aer")
                )
            )
            session = client.post("/sessions", json={"name": "demo"}).json()
            sid = session["id"]
            execute = f"/sessions/{sid}/execute"
            asked = [
                ({"agent": "echo", "inputs": {"n": 1}}, "succeeded", "local"),
                ({"agent": "echo", "inputs": {"n": 2}, "backend": "remote"}, "succeeded", "remote"),
                ({"agent": "fail", "backend": "remote"}, "failed", "remote"),
                ({"agent": "echo", "inputs": {"n": 3}, "backend": "quantum"}, "succeeded", "aer"),
                (
                    {"agent": "sleep", "inputs": {"seconds": 5}, "backend": "quantum",
                     "timeout_s": 0.2},
                    "timed_out",
                    "aer",
                ),
            ]  # fmt: skip
            executions = []
            for body, state, instance in asked:
                done = client.post(execute, json=body).json()
                assert (done["state"], done["instance"]) == (state, instance), done
                executions.append(done)
            assert client.post(f"/sessions/{sid}/complete").status_code == 200
            health = client.get("/health").json()
            assert health["checks"]["prefect"]["status"] == "ok"

            def mirrored() -> str | None:
                metrics = client.get("/metrics").text
                backlog = next(
                    line for line in metrics.splitlines()
                    if line.startswith("limit_mirror_backlog_entries ")
                )  # fmt: skip
                flow_run_id = client.get(f"/sessions/{sid}").json()["prefect_flow_run_id"]
                return flow_run_id if float(backlog.split()[1]) == 0 and flow_run_id else None

            flow_run_id = wait_until(mirrored)
    finally:
        stop(*runners)

    def task_runs_recorded() -> tuple[Any, list[Any]] | None:
        flow_run, task_runs = asyncio.run(read_back(prefect_server.api_url, flow_run_id))
        return (flow_run, task_runs) if len(task_runs) == len(executions) else None

    flow_run, task_runs = wait_until(task_runs_recorded, timeout_s=30, every_s=0.5)
    assert flow_run.name == f"session-{sid.replace('-', '')[:8]}"
    assert set(flow_run.tags) >= {f"session:{sid}", "tenant:default"}
    assert flow_run.state.type.value == "COMPLETED"
    by_execution = {
        next(t.removeprefix("execution:") for t in run.tags if t.startswith("execution:")): run
        for run in task_runs
    }
    expected_state = {"succeeded": "COMPLETED", "failed": "FAILED", "timed_out": "FAILED"}
    for execution in executions:
        run = by_execution[execution["id"]]
        assert f"agent:{execution['agent']}" in run.tags
        assert f"backend:{execution['backend']}" in run.tags
        assert f"instance:{execution['instance']}" in run.tags
        assert run.state.type.value == expected_state[execution["state"]], run.state
    timed_out = by_execution[executions[-1]["id"]]
    assert timed_out.state.name == "TimedOut"
