"""`limit up` with the configuration file the platform has always documented: in dev
mode it starts and says, at start, what is wrong with the key in it; in prod mode it
refuses to start, with the same advice.  Never "unknown key"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fixtures.live import free_port

LIMIT = str(Path(sys.executable).parent / "limit")

DOCUMENTED = """\
[server]
bind_address = "0.0.0.0:8080"

[storage]
type = "database"
url = "postgresql://user:pass@localhost/limitgraph"

[backends]
default = "local"

[backends.quantum]
type = "quantum"
provider = "ibm"
api_key = "..."
"""


def environment(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMIT_", "DATABASE_URL"))}
    # Only the database and the bind address differ from the file: no Postgres at
    # localhost/limitgraph here, and tests listen on loopback only.
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'limit.db'}"
    return {**env, **more}


def test_dev_mode_starts_and_warns_about_the_placeholder_key(tmp_path: Path) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(DOCUMENTED)
    port = free_port()
    process = subprocess.Popen(
        [LIMIT, "up", "--no-prefect", "--config", str(config), "--bind", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        healthy = False
        while not healthy and time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                healthy = health.status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        assert healthy, "limit up did not become healthy"
        assert '"quantum"' in health.text
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert "unknown key" not in out + err
    [warning] = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert "backends.quantum.api_key is a placeholder ('...')" in warning
    assert "IBM jobs of instance 'quantum' will fail to sign in" in warning
    assert "backends.quantum.api_key_file" in warning
    assert "LIMIT_BACKEND_QUANTUM_API_KEY" in warning


def test_prod_mode_refuses_the_key_in_the_file_with_the_same_advice(tmp_path: Path) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(DOCUMENTED)
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
