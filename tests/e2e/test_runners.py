"""Runner processes against a real server: killed mid-execution, drained by SIGTERM.

The runners are ``limit runner`` processes; the server is the real app under uvicorn.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from limit_graph.core.settings import load_settings
from tests.fixtures.live import LiveServer, live_server
from tests.fixtures.waiting import wait_until

LIMIT = str(Path(sys.executable).parent / "limit")
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
RUNNER_KEY = "e2e-runner-key-0123456789abcdef"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        dispatch__runner_api_key=RUNNER_KEY,
        dispatch__lease_s=1.0,
        dispatch__retry_backoff_s=0.0,
        storage__url=f"sqlite:///{tmp_path / 'runners.db'}",
    )
    with live_server(settings) as running:
        yield running


def start_runner(server: LiveServer, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            LIMIT,
            "runner",
            "--pool",
            "remote",
            "--api-url",
            server.url,
            "--api-key",
            RUNNER_KEY,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(client: httpx.Client, path: str, states: set[str], timeout_s: float = 30) -> Any:
    def reached() -> Any:
        execution = client.get(path).json()
        return execution if execution["state"] in states else None

    return wait_until(reached, timeout_s, 0.05, what=f"{path} to reach {states}")


def submit_sleep(client: httpx.Client, seconds: float) -> tuple[str, str]:
    session_id = client.post("/sessions", json={}).json()["id"]
    body = {"agent": "sleep", "inputs": {"seconds": seconds}, "backend": "remote", "wait_s": 0}
    execution = client.post(f"/sessions/{session_id}/execute", json=body).json()
    return session_id, f"/sessions/{session_id}/executions/{execution['id']}"


def test_a_runner_killed_mid_execution_loses_it_to_another_recorded_once(
    server: LiveServer,
) -> None:
    with httpx.Client(base_url=server.url, headers={"X-API-Key": ADMIN_KEY}) as client:
        first = start_runner(server)
        second: subprocess.Popen[str] | None = None
        try:
            session_id, path = submit_sleep(client, 2.0)
            wait_for(client, path, {"running"})
            first.kill()  # SIGKILL: no drain, no report
            first.wait(10)
            second = start_runner(server)
            done = wait_for(client, path, {"succeeded", "failed"})
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(30)
        assert done["state"] == "succeeded"
        assert done["attempts"] == 2
        platform = server.app_state.platform  # type: ignore[attr-defined]
        entries = [e for e in _entries(platform) if e.resource_id == done["id"]]
        actions = [e.action for e in entries]
        assert actions.count("execution.succeeded") == 1
        assert actions.count("execution.retry") == 1
        retry = next(e for e in entries if e.action == "execution.retry")
        assert retry.payload["error"]["type"] == "RunnerLost"
        assert session_id in path


def _entries(platform: Any) -> list[Any]:
    import asyncio

    return asyncio.run(_read_entries(platform))


async def _read_entries(platform: Any) -> list[Any]:
    # A second connection to the same SQLite file: the server's own loop is in another thread.
    from limit_graph.storage.database import DatabaseStorage

    store = DatabaseStorage(platform.settings.database_url)
    await store.start()
    try:
        return list(await store.list_entries(limit=100_000))
    finally:
        await store.close()


def test_sigterm_drains_the_runner_finishing_what_it_holds(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, headers={"X-API-Key": ADMIN_KEY}) as client:
        runner = start_runner(server)
        try:
            _, path = submit_sleep(client, 1.5)
            wait_for(client, path, {"running"})
            runner.send_signal(signal.SIGTERM)
            out, _ = runner.communicate(timeout=30)
        finally:
            if runner.poll() is None:
                runner.kill()
        assert runner.returncode == 0
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["exit_reason"] == "signal SIGTERM"
        assert summary["by_state"] == {"succeeded": 1}
        done = client.get(path).json()
        assert done["state"] == "succeeded" and done["attempts"] == 1


def test_a_runner_with_a_wrong_key_stops_with_a_clear_error(server: LiveServer) -> None:
    result = subprocess.run(
        [LIMIT, "runner", "--pool", "remote", "--api-url", server.url, "--api-key", "wrong"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "401" in result.stderr and "unknown API key" in result.stderr
    assert "Traceback" not in result.stderr
