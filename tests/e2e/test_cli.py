"""The `limit` command and the REST API as a user drives them: a real server, real HTTP."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.cli import LIMIT, Server, clean_env, run_limit, start
from tests.fixtures.live import free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start(tmp_path)
    yield running
    if running.process.poll() is None:
        running.stop()


def test_first_start_prints_the_key_once_and_serves_rest(server: Server) -> None:
    key_file = server.cwd / ".limit" / "admin.key"
    key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    headers = {"X-API-Key": key}
    session = httpx.post(server.url + "/sessions", json={"config": {}}, headers=headers).json()
    sid = session["id"]
    done = httpx.post(
        f"{server.url}/sessions/{sid}/execute",
        json={"agent": "echo", "inputs": {"hello": "world"}},
        headers=headers,
    ).json()
    assert done["state"] == "succeeded" and done["result"] == {"hello": "world"}
    results = httpx.get(f"{server.url}/sessions/{sid}/results", headers=headers).json()
    assert [e["id"] for e in results["items"]] == [done["id"]]
    status = httpx.get(f"{server.url}/sessions/{sid}/status", headers=headers).json()
    assert status["counts"]["succeeded"] == 1
    assert httpx.get(server.url + "/sessions").status_code == 401

    printed = server.stop()
    assert f"REST API: {server.url}" in printed
    assert "SQLite at .limit/limit.db" in printed
    assert printed.count(key) == 1

    again = start(server.cwd)
    try:
        assert httpx.get(f"{again.url}/sessions/{sid}", headers=headers).json()["id"] == sid
    finally:
        second = again.stop()
    assert key not in second and "Admin API key: in .limit/admin.key" in second


def test_cli_session_exec_archive_restore(server: Server, tmp_path: Path) -> None:
    created = server.limit("session", "create", "--tag", "e2e", "--name", "cli-demo")
    assert created.returncode == 0, created.stderr
    sid = json.loads(created.stdout)["id"]

    ok = server.limit("exec", sid, "echo", "--inputs", '{"a": 1}')
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["result"] == {"a": 1}
    failed = server.limit("exec", sid, "fail", "--inputs", '{"message": "nope"}')
    assert failed.returncode == 2 and json.loads(failed.stdout)["state"] == "failed"
    bad_json = server.limit("exec", sid, "echo", "--inputs", "{oops")
    assert bad_json.returncode == 1 and "--inputs is not valid JSON" in bad_json.stderr
    bad_inputs = server.limit("exec", sid, "sleep", "--inputs", '{"seconds": "x"}')
    assert bad_inputs.returncode == 1 and "inputs.seconds" in bad_inputs.stderr

    listed = server.limit("session", "list", "--tag", "e2e", "--json")
    assert [s["id"] for s in json.loads(listed.stdout)["items"]] == [sid]
    shown = json.loads(server.limit("session", "show", sid).stdout)
    assert shown["counts"]["succeeded"] == 1 and shown["counts"]["failed"] == 1

    bundle_file = tmp_path / "bundle.json"
    archived = server.limit("session", "archive", sid, "--output", str(bundle_file))
    assert archived.returncode == 0, archived.stderr
    summary = json.loads(archived.stdout)
    bundle = json.loads(bundle_file.read_text())
    assert summary["bundle_sha256"] == bundle["bundle_sha256"]

    forged = json.loads(bundle_file.read_text())
    forged["executions"][0]["result"] = {"a": 2}
    forged_file = tmp_path / "forged.json"
    forged_file.write_text(json.dumps(forged))
    refused = server.limit("session", "restore", str(forged_file))
    assert refused.returncode == 1 and "does not verify" in refused.stderr
    assert "Traceback" not in refused.stderr

    restored = server.limit("session", "restore", str(bundle_file))
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["restored_from"] == bundle["bundle_sha256"]

    missing = server.limit("session", "show", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1 and "Not found (404)" in missing.stderr
    agents = server.limit("agents")
    assert agents.returncode == 0 and "sleep" in agents.stdout


def test_cli_session_with_quotas_and_policies(server: Server, tmp_path: Path) -> None:
    checks = tmp_path / "checks.yaml"
    checks.write_text("- check: allowed-targets\n  targets: [aer]\n")
    created = server.limit(
        "session", "create", "--tag", "governed", "--quota", "executions=1",
        "--policy", '{"check": "circuit-limits", "max_qubits": 7}', "--policy", f"@{checks}",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    session = json.loads(created.stdout)
    assert session["config"]["quotas"] == {"executions": 1}
    assert [p["check"] for p in session["config"]["policies"]] == [
        "circuit-limits",
        "allowed-targets",
    ]
    sid = session["id"]
    assert server.limit("exec", sid, "echo", "--inputs", "{}").returncode == 0
    over = server.limit("exec", sid, "echo", "--inputs", "{}")
    assert over.returncode == 1 and "1 of its 1 executions" in over.stderr, over.stderr

    for bad, said in [
        (["--quota", "shots=many"], "--quota shots: 'many' is not a number"),
        (["--quota", "shots"], "is not RESOURCE=LIMIT"),
        (["--quota", "shots=1", "--quota", "shots=2"], "--quota shots is given twice"),
        (["--quota", "shots=-1"], "shots"),
        (["--policy", "[1, 2]"], 'a declaration is an object with a "check"'),
        (["--policy", f"@{tmp_path / 'missing.yaml'}"], "cannot read --policy @"),
        (["--policy", '{"check": "no-such-check"}'], "no-such-check"),
    ]:
        refused = server.limit("session", "create", "--tag", "governed", *bad)
        assert refused.returncode == 1 and said in refused.stderr, (bad, refused.stderr)
        assert "Traceback" not in refused.stderr
    listed = server.limit("session", "list", "--tag", "governed", "--json")
    assert [s["id"] for s in json.loads(listed.stdout)["items"]] == [sid]


def test_cli_reports_an_unreachable_server(tmp_path: Path) -> None:
    env = clean_env(LIMIT_API_URL=f"http://127.0.0.1:{free_port()}", LIMIT_API_KEY="any")
    result = run_limit("session", "list", cwd=tmp_path, env=env)
    assert result.returncode == 1 and "cannot reach LIMIT-Graph" in result.stderr
    assert f"{env['LIMIT_API_URL']} (address from LIMIT_API_URL)" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_with_a_typo_in_the_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "limit.toml"
    config.write_text('[server]\nbind_adress = "127.0.0.1:8080"\n')
    result = subprocess.run(
        [LIMIT, "up", "--no-prefect", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "server.bind_adress: unknown key" in result.stderr
    assert str(config) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / ".limit").exists()
