"""The `limit` CLI finds the server and the key `limit up` uses, from any folder.

Each server here is a real `limit up --no-prefect`; each CLI call a real subprocess.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.cli import Server, clean_env, launch, run_limit
from tests.fixtures.live import free_port
from tests.fixtures.tls import self_signed


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose bind address and home come only from a LIMIT_CONFIG file."""
    root = tmp_path_factory.mktemp("configured")
    (root / "up").mkdir()
    port = free_port()
    config = root / "limit.toml"
    config.write_text(f'home = "{root / "state"}"\n[server]\nbind_address = "127.0.0.1:{port}"\n')
    server = launch(root / "up", clean_env(LIMIT_CONFIG=str(config)), f"http://127.0.0.1:{port}")
    yield server
    server.stop()


def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_limit_config_names_the_server_and_the_home(configured: Server, tmp_path: Path) -> None:
    cwd = elsewhere(tmp_path)
    created = configured.limit("session", "create", "--tag", "found", cwd=cwd)
    assert created.returncode == 0, created.stderr
    sid = json.loads(created.stdout)["id"]
    listed = configured.limit("session", "list", "--tag", "found", "--json", cwd=cwd)
    assert [s["id"] for s in json.loads(listed.stdout)["items"]] == [sid]
    assert list(cwd.iterdir()) == []


def test_bind_address_and_limit_home_alone_are_enough(tmp_path: Path) -> None:
    up, cwd = tmp_path / "up", elsewhere(tmp_path)
    up.mkdir()
    port = free_port()
    env = clean_env(BIND_ADDRESS=f"127.0.0.1:{port}", LIMIT_HOME=str(tmp_path / "state"))
    server = launch(up, env, f"http://127.0.0.1:{port}")
    try:
        listed = server.limit("session", "list", "--json", cwd=cwd)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["items"] == []
    finally:
        server.stop()


def test_a_relative_home_is_taken_from_the_current_folder_like_limit_up(tmp_path: Path) -> None:
    up, cwd = tmp_path / "up", elsewhere(tmp_path)
    up.mkdir()
    port = free_port()
    env = clean_env(BIND_ADDRESS=f"127.0.0.1:{port}", LIMIT_HOME="state")
    server = launch(up, env, f"http://127.0.0.1:{port}")
    try:
        beside = server.limit("session", "list", "--json")
        assert beside.returncode == 0, beside.stderr
        away = server.limit("session", "list", "--json", cwd=cwd)
        assert away.returncode == 1 and away.stdout == ""
        expected = cwd.resolve() / "state" / "admin.key"
        assert f"the file {expected} (home from LIMIT_HOME)" in away.stderr
        assert "401" not in away.stderr
        absolute = {**env, "LIMIT_HOME": str(up / "state")}
        assert server.limit("session", "list", cwd=cwd, env=absolute).returncode == 0
    finally:
        server.stop()


def test_no_key_is_said_before_any_request(tmp_path: Path) -> None:
    """Nothing listens at the address: a request would have been `cannot reach`."""
    env = clean_env(LIMIT_API_URL=f"http://127.0.0.1:{free_port()}")
    result = run_limit("session", "list", cwd=tmp_path, env=env)
    assert result.returncode == 1 and result.stdout == ""
    for place in ("--api-key", "LIMIT_API_KEY", "LIMIT_ADMIN_API_KEY", "default .limit"):
        assert place in result.stderr
    assert str(tmp_path.resolve() / ".limit" / "admin.key") in result.stderr
    assert "cannot reach" not in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []

    runner = run_limit("runner", "--pool", "remote", cwd=tmp_path, env=env)
    assert runner.returncode == 1
    assert "LIMIT_RUNNER_API_KEY" in runner.stderr
    assert str(tmp_path.resolve() / ".limit" / "runner.key") in runner.stderr
    assert "cannot reach" not in runner.stderr


def test_no_key_against_a_live_server_is_not_its_401(configured: Server, tmp_path: Path) -> None:
    env = {**configured.env, "LIMIT_HOME": str(tmp_path / "empty")}
    result = configured.limit("agents", cwd=elsewhere(tmp_path), env=env)
    assert result.returncode == 1 and "no API key found" in result.stderr
    assert str(tmp_path / "empty" / "admin.key") in result.stderr
    assert "401" not in result.stderr and "Unauthorized" not in result.stderr


def test_server_side_settings_do_not_stop_the_client(configured: Server, tmp_path: Path) -> None:
    """Prod mode's secret rules and the storage URL are the server's business: with them
    `limit up` would refuse to start, but the client only needs the address and key."""
    env = {**configured.env, "LIMIT_MODE": "prod", "LIMIT_RUNNER_API_KEY": "short"}
    env["DATABASE_URL"] = "mysql://nobody@127.0.0.1/none"
    agents = configured.limit("agents", "--json", cwd=elsewhere(tmp_path), env=env)
    assert agents.returncode == 0, agents.stderr
    assert "echo" in {a["id"] for a in json.loads(agents.stdout)["items"]}


def test_a_broken_configuration_is_named(configured: Server, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[server]\nbind = 1\n")
    result = configured.limit("agents", env={**configured.env, "LIMIT_CONFIG": str(broken)})
    assert result.returncode == 1 and "cannot read the configuration" in result.stderr
    assert str(broken) in result.stderr and "server.bind: unknown key" in result.stderr
    assert "LIMIT_API_URL and LIMIT_API_KEY" in result.stderr


def test_tls_in_the_configuration_means_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    up, cwd = tmp_path / "up", elsewhere(tmp_path)
    up.mkdir()
    port = free_port()
    config = tmp_path / "limit.toml"
    config.write_text(
        f'home = "{tmp_path / "state"}"\n[server]\nbind_address = "127.0.0.1:{port}"\n'
        f'ssl_certfile = "{cert}"\nssl_keyfile = "{key}"\n'
    )
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}"
    server = launch(up, clean_env(LIMIT_CONFIG=str(config)), url, verify=context)
    try:
        listed = server.limit("session", "list", "--json", cwd=cwd)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["items"] == []
    finally:
        server.stop()


def test_archive_without_output_goes_to_the_homes_archives(
    configured: Server, tmp_path: Path
) -> None:
    cwd = elsewhere(tmp_path)
    archives = configured.cwd.parent / "state" / "archives"
    before = sorted(archives.iterdir()) if archives.exists() else []
    bad = configured.limit("session", "archive", "../../escape", cwd=cwd)
    assert bad.returncode == 1 and "is not a session id" in bad.stderr
    assert (sorted(archives.iterdir()) if archives.exists() else []) == before

    sid = json.loads(configured.limit("session", "create", cwd=cwd).stdout)["id"]
    archived = configured.limit("session", "archive", sid, cwd=cwd)
    assert archived.returncode == 0, archived.stderr
    bundle_file = archives / f"{sid}.json"
    summary = json.loads(archived.stdout)
    assert summary["bundle_file"] == str(bundle_file)
    assert f"bundle saved to {bundle_file}" in archived.stderr
    assert json.loads(bundle_file.read_text())["bundle_sha256"] == summary["bundle_sha256"]
    assert sorted(archives.iterdir()) == sorted([*before, bundle_file])
    assert list(cwd.iterdir()) == []
