"""A folder of agent files as a user adds one: named in ``[agents] paths``, loaded by the
platform, listed, run inline and on real runners, and refused at start when broken."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from limit_graph.core.errors import ConfigError
from limit_graph.core.models import ExecutionState, SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.flows.runner import runner
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.executions import ExecuteCommand
from limit_graph.orchestration.platform import Platform
from tests.fixtures.agent_folders import MODELS, write_folder, write_greet_folder
from tests.fixtures.cli import LIMIT, Server, clean_env, launch, run_limit
from tests.fixtures.live import free_port, live_server
from tests.fixtures.waiting import wait_until

ADMIN = Principal(name="admin", tenant="default", roles=frozenset({"admin"}))
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"
RUNNER_KEY = "e2e-runner-key-0123456789abcdef"


async def test_platform_start_loads_a_folder_and_runs_its_agents(tmp_path: Path) -> None:
    folder = write_greet_folder(tmp_path / "agents")
    settings = load_settings(
        environ={}, home=str(tmp_path / "home"), storage__type="memory", agents__paths=[folder]
    )
    platform = await Platform.start(settings)
    try:
        greets = platform.registry.versions("greet")
        assert [(a.version, Path(a.origin).name) for a in greets] == [
            ("1.0.0", "greet_v1.py:6"),
            ("2.0.0", "greet_v2.py:11"),
        ]
        session = await platform.sessions.create(ADMIN, SessionConfig(), name="folder")
        for reference, version in (("greet", "2.0.0"), ("greet@1.0.0", "1.0.0")):
            command = ExecuteCommand(agent=reference, inputs={"name": "Ada"}, wait_s=30)
            done = await platform.executions.execute(ADMIN, session.id, command)
            assert (done.state, done.agent_version) == (ExecutionState.SUCCEEDED, version)
            assert done.result is not None and done.result["version"] == version[0]
    finally:
        await platform.close()


async def test_platform_start_refuses_a_broken_folder(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "agents", {"models.py": MODELS, "bad.py": "1 +\n"})
    settings = load_settings(
        environ={}, home=str(tmp_path / "home"), storage__type="memory", agents__paths=[folder]
    )
    with pytest.raises(ConfigError, match=r"agent file .*bad\.py, line 1: SyntaxError"):
        await Platform.start(settings)


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """``limit up --no-prefect`` with a config file in ``conf/`` naming ``agents`` (so
    ``conf/agents``), started from another folder."""
    conf = tmp_path / "conf"
    write_greet_folder(conf / "agents")
    config = conf / "limit.toml"
    config.write_text('[agents]\npaths = ["agents"]\n', encoding="utf-8")
    cwd = tmp_path / "work"
    cwd.mkdir()
    port = free_port()
    env = clean_env(
        LIMIT_API_URL=f"http://127.0.0.1:{port}",
        LIMIT_API_KEY=ADMIN_KEY,
        LIMIT_ADMIN_API_KEY=ADMIN_KEY,
        LIMIT_RUNNER_API_KEY=RUNNER_KEY,
        LIMIT_HOME=str(tmp_path / "home"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'limit.db'}",
    )
    server = launch(
        cwd, env, env["LIMIT_API_URL"], "--config", str(config), "--bind", f"127.0.0.1:{port}"
    )
    try:
        yield server, config
    finally:
        server.stop()


def test_limit_up_lists_every_version_and_a_limit_runner_runs_one(
    configured: tuple[Server, Path], tmp_path: Path
) -> None:
    server, config = configured
    listed = server.limit("agents")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [row[:3] for row in rows if row[0] == "greet"] == [
        ["greet", "1.0.0", "local,remote"],
        ["greet", "2.0.0 (newest)", "local,remote"],
    ]
    shown = server.limit("agents", "show", "greet@1.0.0")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[:2] == [
        "greet 1.0.0 (backends: local, remote; versions: 1.0.0, 2.0.0)",
        "Greets someone by name.",
    ]
    missing = server.limit("agents", "show", "greet@7.0")
    assert missing.returncode != 0
    assert "agent 'greet' has no version '7.0' (it has 1.0.0, 2.0.0)" in missing.stderr

    with httpx.Client(base_url=server.url, headers={"X-API-Key": ADMIN_KEY}) as client:
        session = client.post("/sessions", json={}).json()["id"]
        body = {"agent": "greet", "inputs": {"name": "Ada"}, "backend": "remote", "wait_s": 0}
        queued = client.post(f"/sessions/{session}/execute", json=body).json()
        assert queued["state"] == "queued"
        elsewhere = tmp_path / "runner"
        elsewhere.mkdir()
        # The runner reads the same file: its relative [agents] paths, from its own folder.
        process = subprocess.Popen(
            [LIMIT, "runner", "--pool", "remote", "--api-url", server.url, "--api-key", RUNNER_KEY],
            cwd=elsewhere,
            env={**clean_env(), "LIMIT_CONFIG": str(config)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            path = f"/sessions/{session}/executions/{queued['id']}"
            done = wait_until(
                lambda: (
                    (e := client.get(path).json())["state"] != "queued"
                    and e["state"] != "running"
                    and e
                ),
                60,
                what="the runner to run greet",
            )
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert (done["state"], done["instance"], done["agent_version"]) == (
        "succeeded",
        "remote",
        "2.0.0",
    ), done
    assert done["result"] == {"text": "Hello, Ada. Hello again, Ada!", "version": "2"}
    assert json.loads(out.strip().splitlines()[-1])["by_state"] == {"succeeded": 1}, err


def test_limit_up_refuses_a_broken_agent_file_naming_file_and_line(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "agents",
        {"models.py": MODELS, "bad.py": "from .models import Name\n\nNAME = Name()\n"},
    )
    result = run_limit(
        "up",
        "--no-prefect",
        "--bind",
        f"127.0.0.1:{free_port()}",
        cwd=tmp_path,
        env=clean_env(
            LIMIT_AGENT_PATHS=str(folder),
            LIMIT_HOME=str(tmp_path / "home"),
            DATABASE_URL=f"sqlite:///{tmp_path / 'limit.db'}",
        ),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"agent file {folder / 'bad.py'}, line 3: ValidationError: 1 validation error" in (
        result.stderr
    )
    assert "REST API:" not in result.stdout  # it stopped before serving anything


async def test_the_runner_flow_loads_the_configured_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_greet_folder(tmp_path / "agents")
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        dispatch__runner_api_key=RUNNER_KEY,
        storage__url=f"sqlite:///{tmp_path / 'runner.db'}",
        agents__paths=[folder],
    )
    with live_server(settings) as server:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"X-API-Key": ADMIN_KEY}
        ) as client:
            session = (await client.post("/sessions", json={})).json()["id"]
            body = {
                "agent": "greet@1.0.0",
                "inputs": {"name": "Bo"},
                "backend": "remote",
                "wait_s": 0,
            }
            queued = (await client.post(f"/sessions/{session}/execute", json=body)).json()
            # What `limit up` hands its Prefect workers, whose flow runs are this flow.
            monkeypatch.delenv("LIMIT_CONFIG", raising=False)
            monkeypatch.setenv("LIMIT_AGENT_PATHS", str(folder))
            monkeypatch.setenv("LIMIT_RUNNER_API_KEY", RUNNER_KEY)
            summary: dict[str, Any] = await runner.fn(
                pool="remote", api_url=server.url, idle_exit_s=0.5
            )
            done = (await client.get(f"/sessions/{session}/executions/{queued['id']}")).json()
    assert summary["by_state"] == {"succeeded": 1}
    assert (done["state"], done["agent_version"]) == ("succeeded", "1.0.0")
    assert done["result"] == {"text": "Hello, Bo.", "version": "1"}
    assert uuid.UUID(done["id"]) == uuid.UUID(queued["id"])
