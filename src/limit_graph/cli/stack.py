"""The processes ``limit up`` supervises: a Prefect server and one worker per pool.

Children start in sessions of their own, so a Ctrl-C in the terminal reaches only
``limit up``, which then stops them in order (workers first: they stop their flow
runs; then the server) and leaves none behind.  SIGINT and SIGTERM both become
:class:`Shutdown`, raised where the main thread is (uvicorn re-raises a signal it
captured once it has shut down), so every exit goes through :meth:`Stack.stop`.

>>> # with Stack(home) as stack:
>>> #     api_url = stack.start_prefect_server(port=4200, database_url=None)
>>> #     stack.start_workers(api_url, ("local",), {"LIMIT_API_URL": "..."})
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from rich.console import Console

from limit_graph.core.errors import ConfigError
from limit_graph.deployments.server import PrefectServer, prefect_env

__all__ = ["Child", "Shutdown", "Stack", "stop_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_TIMEOUT_S = 20.0
SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class Shutdown(BaseException):
    """SIGINT or SIGTERM arrived: stop everything and exit quietly.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception``
    on the way swallows it.
    """


def _raise_shutdown(signum: int, _: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def _note_repeat(signum: int, _: FrameType | None) -> None:
    print(f"({signal.Signals(signum).name} again: still stopping)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``handler`` inside the block; restore them after."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Child:
    """One supervised child process, its output appended to a log file."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def terminate(self) -> None:
        """Ask the child's process group to stop (SIGTERM); :meth:`wait` collects it."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic), then kill the group if it is still there."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class Stack:
    """A Prefect server and workers started for ``limit up``; stopped on exit, always."""

    def __init__(self, home: Path, console: Console | None = None) -> None:
        self.home = home.resolve()  # flow runs start in other directories
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.server: PrefectServer | None = None
        self.workers: list[Child] = []
        self._handlers: dict[int, SignalHandler] = {}

    def __enter__(self) -> Stack:
        self._handlers = {sig: signal.signal(sig, _raise_shutdown) for sig in STOP_SIGNALS}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            for sig, handler in self._handlers.items():
                signal.signal(sig, handler)

    def start_prefect_server(
        self, *, port: int, database_url: str | None, host: str = "127.0.0.1"
    ) -> str:
        """Start ``prefect server start`` and wait for it; its API URL."""
        if not _port_is_free(host, port):
            raise ConfigError(
                f"port {port} is taken, so no Prefect server can start there: set "
                "[prefect] port to a free one, or [prefect] api_url (PREFECT_API_URL) "
                "to use the server already listening"
            )
        home = self.home / "prefect"
        self.server = PrefectServer(home=home, host=host, port=port, database_url=database_url)
        started = time.monotonic()
        self.console.print(f"Starting the Prefect server on {host}:{port} (log: {home}/server.log)")
        with self.console.status("Waiting for the Prefect server (about 15 s)"):
            self.server.start()
        self.console.print(f"Prefect server ready in {time.monotonic() - started:.0f} s")
        return self.server.api_url

    def start_workers(
        self, api_url: str, pools: Iterable[str], extra_env: Mapping[str, str]
    ) -> list[Child]:
        """One ``prefect worker start --type process`` per pool, polling every second."""
        home = self.home / "prefect"
        env = prefect_env(home, api_url)
        env.update({"PREFECT_WORKER_QUERY_SECONDS": "1", **extra_env})
        host = socket.gethostname()
        for pool in pools:
            args = [sys.executable, "-m", "prefect", "worker", "start"]
            args += ["--pool", pool, "--type", "process", "--name", f"limit-{pool}-{host}"]
            worker = Child(f"worker {pool}", args, env, home / f"worker-{pool}.log")
            self.workers.append(worker.start())
        return self.workers

    def stop(self) -> None:
        """Stop workers (together), then the server; a repeated signal does not interrupt."""
        with stop_signals(_note_repeat):
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for worker in self.workers:
                worker.terminate()
            for worker in self.workers:
                worker.wait(deadline)
            self.workers.clear()
            if self.server is not None:
                self.server.stop(STOP_TIMEOUT_S)
                self.server = None
