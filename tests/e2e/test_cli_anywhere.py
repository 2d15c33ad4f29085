"""The CLI finds the running `limit up` from any folder, with nothing told to it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from limit_graph.cli.record import read_record, record_path
from tests.fixtures.cli import clean_env, launch, run_limit
from tests.fixtures.live import free_port


def test_the_cli_finds_the_running_server_and_its_key_from_any_folder(tmp_path: Path) -> None:
    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    checkout.mkdir()
    elsewhere.mkdir()
    state = {"XDG_STATE_HOME": str(tmp_path / "state")}
    port = free_port()
    # The server is told its port; the CLI, run from another folder, is told nothing.
    server_env = clean_env(BIND_ADDRESS=f"127.0.0.1:{port}", **state)
    server = launch(checkout, server_env, f"http://127.0.0.1:{port}")
    try:
        record = read_record(state)
        assert record is not None
        assert (record.url, record.home) == (f"http://127.0.0.1:{port}", checkout / ".limit")
        created = run_limit(
            "session", "create", "--tag", "anywhere", cwd=elsewhere, env=clean_env(**state)
        )
        assert created.returncode == 0, created.stderr
        listed = run_limit("session", "list", "--json", cwd=elsewhere, env=clean_env(**state))
        assert listed.returncode == 0, listed.stderr
        ids = [s["id"] for s in json.loads(listed.stdout)["items"]]
        assert json.loads(created.stdout)["id"] in ids
        # A variable that names a configuration wins over the record: told another
        # home, the CLI looks there and says so, before any request.
        told = run_limit(
            "session", "list", cwd=elsewhere, env=clean_env(LIMIT_HOME=str(elsewhere), **state)
        )
        assert told.returncode == 1
        assert str(elsewhere / "admin.key") in told.stderr
    finally:
        server.stop()
    assert not record_path(state).exists()


def test_a_record_left_by_a_dead_server_is_ignored(tmp_path: Path) -> None:
    state = {"XDG_STATE_HOME": str(tmp_path / "state")}
    path = record_path(state)
    path.parent.mkdir(parents=True)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    path.write_text(json.dumps({"url": "http://127.0.0.1:9", "home": str(tmp_path), "pid": dead}))
    assert read_record(state) is None
    assert read_record(state, live_only=False) is not None
    listed = run_limit("session", "list", cwd=tmp_path, env=clean_env(**state))
    assert listed.returncode == 1
    assert "the running limit up" not in listed.stderr


def test_the_same_configuration_from_another_folder_uses_the_running_servers_home(
    tmp_path: Path,
) -> None:
    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    checkout.mkdir()
    elsewhere.mkdir()
    port, other_port = free_port(), free_port()
    config, other = tmp_path / "limit.toml", tmp_path / "other.toml"
    config.write_text(f'[server]\nbind_address = "127.0.0.1:{port}"\n')
    other.write_text(f'[server]\nbind_address = "127.0.0.1:{other_port}"\n')
    state = {"XDG_STATE_HOME": str(tmp_path / "state")}
    env = clean_env(LIMIT_CONFIG=str(config), **state)
    server = launch(checkout, env, f"http://127.0.0.1:{port}")
    try:
        listed = run_limit("session", "list", "--json", cwd=elsewhere, env=env)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["items"] == []
        # Another configuration names another server: the record says nothing of it.
        astray = run_limit(
            "session", "list", cwd=elsewhere, env=clean_env(LIMIT_CONFIG=str(other), **state)
        )
        assert astray.returncode == 1
        assert str(elsewhere / ".limit" / "admin.key") in astray.stderr
    finally:
        server.stop()
