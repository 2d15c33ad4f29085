"""A Prefect server in a child process: for ``limit up``, the benchmarks and the tests.

``prefect server start`` with its own ``PREFECT_HOME`` (SQLite there unless a
database URL is given), analytics off, on a chosen port; :meth:`start` returns
once ``/api/health`` answers.  The server's settings name its own address, so the UI
it serves calls this server's API and no other (``/ui-settings``), and it runs through
:mod:`limit_graph.deployments.server_entry`, whose SQLite writes wait for the lock.

>>> # with PrefectServer(home=Path(".limit/prefect"), port=4200) as server:
>>> #     print(server.api_url)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from limit_graph.core.errors import ConfigError

__all__ = ["PrefectServer", "free_port", "prefect_env"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prefect_env(
    home: Path, api_url: str | None = None, database_url: str | None = None
) -> dict[str, str]:
    """The environment for a Prefect process of this platform: analytics off, own home."""
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    # The task-run recorder writes one event per transaction by default (~80 task runs/s
    # here); batches of 500 flushed every second took it to ~360/s.
    env.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE", "500")
    env.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "500")
    env.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL", "1")
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    if database_url is not None:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    return env


class PrefectServer:
    """``prefect server start`` as a child process (services on, so events become runs)."""

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        database_url: str | None = None,
        log_path: Path | None = None,
        ui: bool = True,
    ) -> None:
        self.home = home
        self.host = host
        self.port = port or free_port()
        self.database_url = database_url
        self.log_path = log_path or home / "server.log"
        self.ui = ui
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def start(self, timeout_s: float = 90.0) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = prefect_env(self.home, database_url=self.database_url)
        env.pop("PREFECT_API_URL", None)
        # ``--port`` moves the listener only: the UI learns the API's address from these
        # settings (4200 when unset), so without them it talks to whatever answers there.
        env.update(
            {
                "PREFECT_SERVER_API_HOST": self.host,
                "PREFECT_SERVER_API_PORT": str(self.port),
                "PREFECT_SERVER_UI_API_URL": self.api_url,
                "PREFECT_UI_URL": self.url,
            }
        )
        args = [
            sys.executable,
            "-m",
            "limit_graph.deployments.server_entry",
            "server",
            "start",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--analytics-off",
            "--ui" if self.ui else "--no-ui",
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.wait_healthy(timeout_s)
        return self

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ConfigError(
                    f"the Prefect server exited with code {self.process.returncode}; "
                    f"see {self.log_path}"
                )
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise ConfigError(f"the Prefect server did not answer within {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
