"""An API process killed mid-run, and started again, finishes the workflow run: the
steps done before the kill are not run again and every step has one execution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.cli import launch, start
from tests.fixtures.waiting import wait_until

SPEC = {
    "name": "survivor",
    "steps": [
        {"id": "first", "agent": "echo", "inputs": {"n": 1}},
        {"id": "slow", "agent": "sleep", "inputs": {"seconds": 3}, "depends_on": ["first"]},
        {"id": "last", "agent": "echo", "inputs": {"slept": "${steps.slow.outputs.slept_s}"}},
    ],
}


def test_a_killed_api_process_carries_the_run_on_when_it_starts_again(tmp_path: Path) -> None:
    server = start(tmp_path)
    key = (tmp_path / ".limit" / "admin.key").read_text().strip()
    http = httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30)
    try:
        sid = http.post("/sessions", json={"name": "restart"}).json()["id"]
        response = http.post(f"/sessions/{sid}/execute", json={"workflow": SPEC})
        assert response.status_code == 202, response.text
        run_url = f"/sessions/{sid}/workflows/{response.json()['id']}"

        def slow_running() -> dict[str, Any] | None:
            run: dict[str, Any] = http.get(run_url).json()
            slow = run["steps"][1]
            return run if slow["state"] == "running" and slow["execution_ids"] else None

        wait_until(slow_running, 30, every_s=0.05, what="the slow step to start")
        server.process.kill()
        server.process.wait(timeout=30)

        again = launch(server.cwd, server.env, server.url, *server.process.args[3:])
        try:
            run = wait_until(
                lambda: (r := http.get(run_url).json())["state"] in ("succeeded", "failed") and r,
                60,
                what="the run to end after the restart",
            )
            assert run["state"] == "succeeded", run
            assert [len(s["execution_ids"]) for s in run["steps"]] == [1, 1, 1]
            first, slow, last = (
                http.get(f"/sessions/{sid}/executions/{s['execution_ids'][0]}").json()
                for s in run["steps"]
            )
            assert first["attempts"] == 1 and last["attempts"] == 1
            assert slow["attempts"] == 2  # cut short by the kill, then carried on
            assert last["result"] == {"slept": 3.0}
            entries = http.get(f"/sessions/{sid}/provenance", params={"limit": 500}).json()
            started = [
                e["resource_id"] for e in entries["items"] if e["action"] == "execution.started"
            ]
            assert started.count(first["id"]) <= 1 and started.count(last["id"]) <= 1
        finally:
            again.stop()
    finally:
        if server.process.poll() is None:
            server.stop()
        http.close()
