"""``[server] workers = N``: ``limit up`` serving the REST API from N processes on one port.

The ``limit up`` process binds the listening socket once and starts N API processes,
each of which builds its own app (``create_app``) and serves that socket with
:class:`~limit_graph.api.serving.PlatformServer`; the kernel hands each connection to one
of them.  The Prefect server and workers stay in the parent (``cli/stack.py``); an API
process only serves.  Together they are one platform: they share the store, so only a
database (SQLite or Postgres) will do (:func:`check_shared_storage`).

The processes are started by :mod:`multiprocessing` with the ``spawn`` method, as
uvicorn's own supervisor does, rather than by :mod:`subprocess`: like a subprocess, a
spawned process is a fresh interpreter (no threads, event loop or Prefect client copied
from the parent, as ``fork`` would); unlike one, it is handed Python objects.  It gets
the very :class:`Settings` the parent resolved (the file, the overrides, the backend
instances merged in from Prefect blocks, the secrets), pickled through its start-up
pipe, never in its command line or environment; the listening socket as a duplicated
descriptor; and one end of a pipe, on which it says when it serves and whose end of
file tells it that the parent is gone.

The first process starts alone: it migrates the store (SQLite has no advisory lock to
order several migrators) and shows a configuration that fails only when the app starts
once, not N times.  The others then start together.  A process that exits after it
served is logged and replaced; replacements that keep exiting before they serve are
retried with a growing delay and, after :data:`MAX_START_FAILURES` in a row, end
``limit up`` with an error.  ``cli/serve.py`` uses it inside its
:class:`~limit_graph.cli.stack.Stack`: ``with ApiProcesses(settings) as processes``,
``processes.start()`` (back once every process serves), then ``processes.supervise()``
until SIGINT or SIGTERM raises :class:`~limit_graph.cli.stack.Shutdown`.

``/metrics`` answers for all of them, whichever answers: each process is started with
``PROMETHEUS_MULTIPROC_DIR`` naming a folder of this ``limit up`` (set in the parent only
while a process starts, so that no other program it runs inherits it), writes its counters
and histograms there in prometheus-client's multiprocess mode, and sums everyone's when
scraped (``orchestration/telemetry.py``).  A process that ends is marked dead there (its
live gauges go; its counts stay, so sums never go back), and the folder is removed when
``limit up`` stops.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from types import FrameType, TracebackType
from typing import NoReturn

import uvicorn
from fastapi import FastAPI
from prometheus_client.multiprocess import mark_process_dead

from limit_graph.api import create_app
from limit_graph.api.serving import PlatformServer
from limit_graph.cli.client import CliError
from limit_graph.cli.stack import stop_signals
from limit_graph.core.errors import ConfigError
from limit_graph.core.logs import configure_logging
from limit_graph.core.settings import ConfigWarning, Settings
from limit_graph.orchestration.telemetry import MULTIPROCESS_DIR_VARIABLE

__all__ = [
    "ApiProcesses",
    "bind_listener",
    "check_shared_storage",
    "configure_process_logging",
    "serve_api_process",
    "uvicorn_config",
]

logger = logging.getLogger(__name__)

PREFECT_CONSOLE_LOGGERS = ("uvicorn", "fastapi")
GRACEFUL_SHUTDOWN_S = 3
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 15.0
MAX_START_FAILURES = 5
STARTUP_FAILURE = 3  # uvicorn's exit code for an app whose start failed
READY = "ready"
LISTEN_BACKLOG = 2048
SPAWN = multiprocessing.get_context("spawn")


def check_shared_storage(settings: Settings) -> None:
    """Refuse several API processes on storage that lives in one process.

    >>> from limit_graph.core.settings import load_settings
    >>> settings = load_settings(environ={}, server__workers=2, storage__type="memory")
    >>> check_shared_storage(settings)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    limit_graph.core.errors.ConfigError: [server] workers = 2 needs storage the API ...
    >>> alone = load_settings(environ={}, server__workers=2, dispatch__queue="process")
    >>> check_shared_storage(alone)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    limit_graph.core.errors.ConfigError: [server] workers = 2 needs the dispatch queue ...
    >>> load_settings(environ={}, server__workers=2).shared_queue  # auto: shared
    True
    """
    workers, kind = settings.server.workers, settings.storage.type
    if workers > 1 and kind != "database":
        raise ConfigError(
            f"[server] workers = {workers} needs storage the API processes share, but "
            f'[storage] type = "{kind}" is kept by one process: set [storage] type = '
            '"database" (SQLite or Postgres) or [server] workers = 1'
        )
    if workers > 1 and not settings.shared_queue:
        raise ConfigError(
            f"[server] workers = {workers} needs the dispatch queue the API processes "
            'share, but [dispatch] queue = "process" keeps it in each one: set it to '
            '"shared" or "auto", or [server] workers = 1'
        )


def configure_process_logging(settings: Settings) -> None:
    """This process's logging as ``limit up`` has it; after Prefect's, which its import
    installs (the Prefect variables must be in the environment by then)."""
    import prefect.main as _prefect_main  # noqa: F401 - it configures logging; ours after

    configure_logging(settings.log_level, json_format=settings.telemetry.json_logs)
    for name in PREFECT_CONSOLE_LOGGERS:  # Prefect gives these a console handler of its own
        console = logging.getLogger(name)
        console.handlers.clear()
        console.propagate = True


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How every API process of ``limit up`` serves ``app``: TLS when configured, our
    logging, no access log, a short grace period (long polls end at once: ``drain``)."""
    return uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        ssl_certfile=settings.server.ssl_certfile,
        ssl_keyfile=settings.server.ssl_keyfile,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def bind_listener(settings: Settings) -> socket.socket:
    """The listening socket of ``[server] bind_address``, bound once for every process."""
    host, port = settings.server.host, settings.server.port
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ([server] bind_address): {exc.strerror or exc}"
        ) from None
    return sock


class _ApiProcessServer(PlatformServer):
    """The server of one API process: says on ``parent`` when it serves, and stops when
    the parent's end of that pipe closes (the parent exited, even by SIGKILL)."""

    def __init__(self, config: uvicorn.Config, parent: Connection) -> None:
        super().__init__(config, freeze=True)  # this process serves and does nothing else
        self.parent = parent

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self.parent.send(READY)
            threading.Thread(target=self._watch_parent, name="parent-watch", daemon=True).start()

    def _watch_parent(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                self.parent.recv()
        self.should_exit = True


def _exit_quietly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve_api_process(settings: Settings, listener: socket.socket, parent: Connection) -> None:
    """One API process (run by ``spawn``): serve ``listener`` until SIGTERM or SIGINT."""
    os.setsid()  # a Ctrl-C in the terminal reaches only limit up, which stops us in turn
    for sig in (signal.SIGINT, signal.SIGTERM):  # before serving, and re-raised after it
        signal.signal(sig, _exit_quietly)
    warnings.simplefilter("ignore", ConfigWarning)  # the parent showed them once
    configure_process_logging(settings)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    server = _ApiProcessServer(uvicorn_config(app, settings), parent)
    server.run(sockets=[listener])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


@dataclass
class _Slot:
    """One of the N places an API process fills; a process that exits is replaced."""

    number: int
    process: SpawnProcess | None = None
    pipe: Connection | None = None
    ready: bool = False
    started_at: float = 0.0
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


@dataclass(frozen=True)
class _Ended:
    """A process that ended: its slot, pid, why, and whether it had served."""

    slot: _Slot
    pid: int | None
    reason: str
    served: bool

    def describe(self) -> str:
        when = "" if self.served else " before it served"
        return f"API process {self.slot.number} (pid {self.pid}) {self.reason}{when}"


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


@contextlib.contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """``name=value`` in this process's environment (which a spawned process starts
    with) for the block only; nothing when ``value`` is ``None``."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _note_repeat(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    print(f"({name} again: still stopping the API processes)", file=sys.stderr, flush=True)


class ApiProcesses:
    """``settings.server.workers`` API processes on one listening socket: started,
    watched, replaced when one exits, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(
        self,
        settings: Settings,
        *,
        start_timeout_s: float = START_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.slots = [_Slot(number) for number in range(1, settings.server.workers + 1)]
        self.listener: socket.socket | None = None
        self.metrics_dir: str | None = None
        self.start_failures = 0

    def __enter__(self) -> ApiProcesses:
        self.listener = bind_listener(self.settings)
        self.metrics_dir = tempfile.mkdtemp(prefix="limit-metrics-")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        """The process ids of the API processes running now."""
        return [pid for slot in self.slots if (pid := slot.pid) is not None]

    def start(self) -> None:
        """Start every process, the first alone; back once all serve, else
        :class:`CliError` (one exited, or did not serve within ``start_timeout_s``)."""
        first, *others = self.slots
        for group in ([first], others):
            for slot in group:
                self._spawn(slot)
            while not all(slot.ready for slot in group):
                self._wait(time.monotonic() + 1.0)
                for end in self._collect_ended():
                    raise CliError(f"{end.describe()} (the reason is logged above)")

    def supervise(self) -> NoReturn:
        """Replace each process that ends, until a signal ends ``limit up`` (Shutdown)
        or replacements keep failing to start (:class:`CliError`)."""
        while True:
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._spawn(slot)
            restarts = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
            self._wait(min([now + 1.0, *restarts]))
            for end in self._collect_ended():
                self._schedule_replacement(end)

    def stop(self) -> None:
        """SIGTERM to every process (each drains, as ``limit up`` alone does); those still
        there after ``stop_timeout_s`` are killed.  A repeated signal does not interrupt."""
        with stop_signals(_note_repeat):
            for slot in self.slots:
                slot.restart_at = None
                if slot.process is not None:
                    slot.process.terminate()
            deadline = time.monotonic() + self.stop_timeout_s
            for slot in self.slots:
                if slot.process is None:
                    continue
                slot.process.join(max(0.0, deadline - time.monotonic()))
                if slot.process.exitcode is None:
                    logger.warning(
                        "API process %d (pid %s) did not stop in %.0f s: killed",
                        slot.number,
                        slot.pid,
                        self.stop_timeout_s,
                    )
                    slot.process.kill()
                    slot.process.join()
                self._forget(slot)
            if self.listener is not None:
                self.listener.close()
                self.listener = None
            if self.metrics_dir is not None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
                self.metrics_dir = None

    def _spawn(self, slot: _Slot) -> None:
        assert self.listener is not None, "ApiProcesses is used as a context manager"
        ours, theirs = SPAWN.Pipe()
        process = SPAWN.Process(
            target=serve_api_process,
            args=(self.settings, self.listener, theirs),
            name=f"limit-api-{slot.number}",
        )
        slot.restart_at = None
        try:
            with _environment(MULTIPROCESS_DIR_VARIABLE, self.metrics_dir):
                process.start()
        finally:
            theirs.close()  # the child has its own copy; ours must not hold the pipe open
        slot.process, slot.pipe, slot.ready = process, ours, False
        slot.started_at = time.monotonic()

    def _wait(self, until: float) -> None:
        """Until ``until``, or until a process says it serves or exits; take its word."""
        starting = [slot for slot in self.slots if slot.pipe is not None and not slot.ready]
        events: list[Connection | int] = [slot.pipe for slot in starting if slot.pipe]
        events += [slot.process.sentinel for slot in self.slots if slot.process is not None]
        timeout = max(0.0, until - time.monotonic())
        if not events:
            time.sleep(timeout)
            return
        multiprocessing.connection.wait(events, timeout)
        for slot in starting:
            assert slot.pipe is not None
            with contextlib.suppress(EOFError, OSError):  # it exited: its sentinel says
                if slot.pipe.poll() and slot.pipe.recv() == READY:
                    slot.ready = True
                    self.start_failures = 0
                    logger.info("API process %d (pid %s) serves", slot.number, slot.pid)

    def _collect_ended(self) -> list[_Ended]:
        """The processes that exited, and those not serving ``start_timeout_s`` after
        their start (killed now); their slots emptied."""
        ended: list[_Ended] = []
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            late = not slot.ready and time.monotonic() - slot.started_at > self.start_timeout_s
            if process.exitcode is None and not late:
                continue
            reason = _exit_reason(process.exitcode)
            if process.exitcode is None:
                process.kill()
                process.join()
                reason = f"was not serving {self.start_timeout_s:.0f} s after its start"
            ended.append(_Ended(slot, process.pid, reason, slot.ready))
            self._forget(slot)
        return ended

    def _schedule_replacement(self, end: _Ended) -> None:
        """Log why a process ended; start another after a delay that grows with each
        process in a row that ended before it served, up to :data:`MAX_START_FAILURES`."""
        if not end.served:
            self.start_failures += 1
            if self.start_failures >= MAX_START_FAILURES:
                raise CliError(
                    f"API processes keep ending before they serve ({self.start_failures} in "
                    f"a row; the last: {end.describe()}): the reason is logged above"
                )
        delay = min(MAX_RESTART_DELAY_S, RESTART_DELAY_S * 2**self.start_failures)
        logger.warning("%s; starting another in %.1f s", end.describe(), delay)
        end.slot.restart_at = time.monotonic() + delay

    def _forget(self, slot: _Slot) -> None:
        if slot.pipe is not None:
            slot.pipe.close()
        if slot.process is not None:
            if self.metrics_dir is not None and slot.process.pid is not None:
                mark_process_dead(slot.process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            slot.process.close()
        slot.process, slot.pipe, slot.ready = None, None, False
