"""``limit up`` as a user runs it: a Prefect server, a worker per pool and the REST API,
registered with each other, and all of it gone after one Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from limit_graph.cli.serve import prefect_ui_warning
from tests.fixtures.browser import headless_chromium
from tests.fixtures.cli import LIMIT
from tests.fixtures.live import free_port
from tests.fixtures.processes import stop
from tests.fixtures.waiting import wait_until

POOLS = {"local", "remote", "quantum"}


@dataclass
class Stack:
    url: str
    prefect: str
    home: Path
    process: subprocess.Popen[str]

    def prefect_post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.prefect}/api{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()


def _wait_for(check: Any, timeout_s: float, what: str) -> Any:
    return wait_until(check, timeout_s, 0.5, what=what, ignore=(httpx.HTTPError,))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cwd = tmp_path_factory.mktemp("stack")
    prefect_port, api_port = free_port(), free_port()
    (cwd / "limit.toml").write_text(f"[prefect]\nport = {prefect_port}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMIT_", "PREFECT_"))}
    env["LIMIT_HOME"] = str(cwd / "state")
    process = subprocess.Popen(
        [LIMIT, "up", "--config", "limit.toml", "--bind", f"127.0.0.1:{api_port}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Stack(
        f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prefect_port}", cwd / "state", process
    )

    def healthy() -> bool:
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"limit up exited: {out}")
        return httpx.get(running.url + "/health", timeout=2).status_code == 200

    try:
        _wait_for(healthy, 90, "limit up to serve /health")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=60)


def test_health_reports_prefect_ok(stack: Stack) -> None:
    health = httpx.get(stack.url + "/health").json()
    assert health["status"] == "ok"
    assert health["checks"]["prefect"] == {"status": "ok"}


def test_prefect_lists_the_pools_deployments_blocks_and_online_workers(stack: Stack) -> None:
    pools = {p["name"]: p["type"] for p in stack.prefect_post("/work_pools/filter")}
    assert {pools[name] for name in POOLS} == {"process"}

    flows = {f["id"]: f["name"] for f in stack.prefect_post("/flows/filter")}
    deployments = {
        f"{flows[d['flow_id']]}/{d['name']}": d for d in stack.prefect_post("/deployments/filter")
    }
    assert set(deployments) == {
        "limit-runner/local",
        "limit-runner/remote",
        "limit-runner/quantum",
        "limit-maintenance/archive-idle-sessions",
        "limit-maintenance/verify-ledger",
        "limit-maintenance/expire-caches",
        "limit-scheduled-workflow/example-bell-sweep",
        "limit-scheduled-workflow/example-qaoa-maxcut",
        "limit-scheduled-workflow/example-classical-pipeline",
    }
    assert deployments["limit-maintenance/verify-ledger"]["schedules"]
    example = deployments["limit-scheduled-workflow/example-bell-sweep"]
    assert [s["active"] for s in example["schedules"]] == [False]

    blocks = stack.prefect_post("/block_documents/filter", {"include_secrets": False})
    assert {"limit-runner", "local", "remote", "aer"} <= {b["name"] for b in blocks}

    def online() -> set[str]:
        found = set()
        for pool in POOLS:
            workers = stack.prefect_post(f"/work_pools/{pool}/workers/filter")
            if any(w["status"] == "ONLINE" for w in workers):
                found.add(pool)
        return found if found == POOLS else set()

    assert _wait_for(online, 30, "a worker online in every pool") == POOLS


def test_a_worker_runs_a_maintenance_deployment_against_the_api(stack: Stack) -> None:
    flows = {f["id"]: f["name"] for f in stack.prefect_post("/flows/filter")}
    deployment = next(
        d
        for d in stack.prefect_post("/deployments/filter")
        if (flows[d["flow_id"]], d["name"]) == ("limit-maintenance", "verify-ledger")
    )
    run = stack.prefect_post(f"/deployments/{deployment['id']}/create_flow_run")

    def finished() -> str | None:
        state = httpx.get(f"{stack.prefect}/api/flow_runs/{run['id']}").json()["state"]
        return state["type"] if state["type"] in ("COMPLETED", "FAILED", "CRASHED") else None

    assert _wait_for(finished, 60, "the verify-ledger run to finish") == "COMPLETED"


def test_remote_and_quantum_work_runs_on_runners_started_through_prefect(stack: Stack) -> None:
    key = (stack.home / "admin.key").read_text(encoding="utf-8").strip()
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": key}, timeout=90) as client:
        session_id = client.post("/sessions", json={}).json()["id"]
        for backend, instance in (("remote", "remote"), ("quantum", "aer")):
            body = {"agent": "echo", "inputs": {"on": backend}, "backend": backend, "wait_s": 60}
            done = client.post(f"/sessions/{session_id}/execute", json=body).json()
            assert (done["state"], done["instance"], done["result"]) == (
                "succeeded",
                instance,
                {"on": backend},
            ), done
    flows = {f["id"]: f["name"] for f in stack.prefect_post("/flows/filter")}
    runner_runs = [
        run
        for run in stack.prefect_post("/flow_runs/filter")
        if flows.get(run["flow_id"]) == "limit-runner"
    ]
    pools = {tag for run in runner_runs for tag in run["tags"] if tag.startswith("pool:")}
    assert {"pool:remote", "pool:quantum"} <= pools
    assert {run["name"].rsplit("-", 1)[0] for run in runner_runs} >= {
        "runner-remote",
        "runner-quantum",
    }
    assert all(run["state"]["type"] in ("RUNNING", "COMPLETED") for run in runner_runs)


BELL = """OPENQASM 3.0;
include "stdgates.inc";
bit[2] c;
qubit[2] q;
h q[0];
cx q[0], q[1];
c = measure q;
"""


def test_a_bell_circuit_from_the_cli_and_qaoa_over_rest_on_the_quantum_backend(
    stack: Stack,
) -> None:
    key = (stack.home / "admin.key").read_text(encoding="utf-8").strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMIT_", "PREFECT_"))}
    env.update({"LIMIT_API_URL": stack.url, "LIMIT_API_KEY": key})
    session_id = httpx.post(f"{stack.url}/sessions", json={}, headers={"X-API-Key": key}).json()[
        "id"
    ]
    inputs = {
        "target": "aer",
        "pubs": [{"circuit": {"format": "qasm3", "source": BELL}, "shots": 2000}],
        "seed": 7,
    }
    result = subprocess.run(
        [LIMIT, "exec", session_id, "quantum.sample", "--backend", "quantum",
         "--inputs", json.dumps(inputs), "--wait-s", "120"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    bell = json.loads(result.stdout)
    counts = bell["result"]["pubs"][0]["counts"]
    assert set(counts) == {"00", "11"} and sum(counts.values()) == 2000
    metadata = bell["result"]["metadata"]
    assert metadata["versions"]["qiskit"] and metadata["pubs"][0]["circuit_sha256"]

    graph = {"nodes": 4, "edges": [[0, 1, 1.0], [1, 2, 1.0], [2, 3, 1.0], [3, 0, 1.0]]}
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": key}, timeout=180) as client:
        qaoa = client.post(
            f"/sessions/{session_id}/execute",
            json={
                "agent": "qaoa.maxcut",
                "backend": "quantum",
                "inputs": {"graph": graph, "p": 1, "target": "aer", "shots": 500, "seed": 3},
                "wait_s": 120,
            },
        ).json()
        assert qaoa["state"] == "succeeded", qaoa
        assert qaoa["result"]["optimum"] == 4.0
        assert qaoa["result"]["partition"] in ("0101", "1010")
        status = client.get(f"/sessions/{session_id}/status").json()
    assert status["backends"]["quantum"]["succeeded"] == 2


def test_limit_worker_joins_a_pool_from_elsewhere_and_refuses_a_dead_api(stack: Stack) -> None:
    dead = subprocess.run(
        [LIMIT, "worker", "--pool", "remote", "--api-url", f"http://127.0.0.1:{free_port()}",
         "--prefect-api-url", f"{stack.prefect}/api"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dead.returncode == 1 and "LIMIT-Graph" in dead.stderr, dead.stderr
    assert "Traceback" not in dead.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMIT_", "PREFECT_"))}
    worker = subprocess.Popen(
        [LIMIT, "worker", "--pool", "remote", "--api-url", stack.url,
         "--prefect-api-url", f"{stack.prefect}/api"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def two_online() -> bool:
            workers = stack.prefect_post("/work_pools/remote/workers/filter")
            return sum(w["status"] == "ONLINE" for w in workers) >= 2

        assert _wait_for(two_online, 45, "a second worker online in the remote pool")
    finally:
        stop(worker)


def test_the_prefect_ui_on_its_own_port_lists_the_sessions_flow_run(stack: Stack) -> None:
    """The UI asks ``/ui-settings`` where the API is: this server, not port 4200."""
    ui_settings = httpx.get(f"{stack.prefect}/ui-settings", timeout=10).json()
    assert ui_settings["api_url"] == f"{stack.prefect}/api"
    assert prefect_ui_warning(f"{stack.prefect}/api") is None

    key = (stack.home / "admin.key").read_text(encoding="utf-8").strip()
    session = httpx.post(f"{stack.url}/sessions", json={}, headers={"X-API-Key": key}).json()
    name = f"session-{session['id'][:8]}"

    def mirrored() -> bool:
        body = {"flow_runs": {"name": {"any_": [name]}}}
        return bool(stack.prefect_post("/flow_runs/filter", body))

    _wait_for(mirrored, 60, f"the flow run {name} in Prefect")
    chromium = headless_chromium()
    # The page's own requests run on the real clock: on a busy machine its list may still
    # be empty when Chromium's virtual-time budget is spent (seen in a full suite run on
    # two cores), so it is loaded up to 5 times, each with twice the default budget.
    for _ in range(5):
        runs_page = chromium.dom(f"{stack.prefect}/runs", budget_ms=30_000)
        assert "Can't connect to Server API" not in runs_page
        if name in runs_page:
            break
    assert name in runs_page, runs_page[-3000:]


def test_sigint_stops_the_api_the_workers_and_the_server(stack: Stack) -> None:
    children = psutil.Process(stack.process.pid).children(recursive=True)
    commands = [" ".join(c.cmdline()) for c in children]
    assert any("limit_graph.deployments.server_entry server start" in c for c in commands)
    assert sum("prefect worker start" in c for c in commands) == len(POOLS)

    stack.process.send_signal(signal.SIGINT)
    out, _ = stack.process.communicate(timeout=60)

    assert stack.process.returncode == 0, out
    assert "Traceback" not in out and out.rstrip().endswith("Stopped.")
    assert f"Prefect UI: {stack.prefect}" in out
    assert f"REST API: {stack.url}" in out
    left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [" ".join(c.cmdline()) for c in left]
