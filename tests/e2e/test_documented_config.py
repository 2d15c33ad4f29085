"""`limit up` with the configuration file the platform has always documented: in dev
mode it starts and says, at start, what is wrong with the key in it; in prod mode it
refuses to start, with the same advice.  Never "unknown key"."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.fixtures.cli import LIMIT, clean_env, launch
from tests.fixtures.configs import DOCUMENTED_CONFIG
from tests.fixtures.live import free_port


def environment(tmp_path: Path, **more: str) -> dict[str, str]:
    # Only the database and the bind address differ from the file: no Postgres at
    # localhost/limitgraph here, and tests listen on loopback only.
    return clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'limit.db'}", **more)


def test_dev_mode_starts_and_warns_about_the_placeholder_key(tmp_path: Path) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(DOCUMENTED_CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = launch(
        tmp_path, environment(tmp_path), url, "--config", str(config), "--bind", f"127.0.0.1:{port}"
    )
    try:
        assert '"quantum"' in httpx.get(f"{url}/health", timeout=5).text
    finally:
        out = server.stop()
    assert "unknown key" not in out
    [warning] = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert "backends.quantum.api_key is a placeholder ('...')" in warning
    assert "IBM jobs of instance 'quantum' will fail to sign in" in warning
    assert "backends.quantum.api_key_file" in warning
    assert "LIMIT_BACKEND_QUANTUM_API_KEY" in warning


def test_prod_mode_refuses_the_key_in_the_file_with_the_same_advice(tmp_path: Path) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(DOCUMENTED_CONFIG)
    result = subprocess.run(
        [LIMIT, "up", "--no-prefect", "--config", str(config)],
        cwd=tmp_path,
        env=environment(tmp_path, LIMIT_MODE="prod", LIMIT_ADMIN_API_KEY="a" * 32),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown key" not in result.stderr and "Traceback" not in result.stderr
    assert "backends.quantum.api_key: prod mode refuses an API key written in the" in (
        result.stderr
    )
    assert "backends.quantum.api_key_file" in result.stderr
    assert "LIMIT_BACKEND_QUANTUM_API_KEY" in result.stderr
    assert not (tmp_path / ".limit").exists() and not (tmp_path / "limit.db").exists()
