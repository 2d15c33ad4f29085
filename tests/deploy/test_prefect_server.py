"""The Prefect server ``limit up`` starts: its SQLite stays writable under busy workers,
and a server whose UI calls another API is pointed out.

Prefect begins its SQLite transactions DEFERRED, and a worker heartbeat reads before it
writes, so overlapping heartbeats failed with ``database is locked`` tracebacks in the
server's log.  The server child begins them IMMEDIATE (``deployments/server_entry.py``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from prefect.server.database.configurations import AioSqliteConfiguration
from sqlalchemy import text

from limit_graph.cli.serve import prefect_ui_warning
from limit_graph.deployments.server import PrefectServer, free_port, prefect_env
from limit_graph.deployments.server_entry import ImmediateSqliteConfiguration
from tests.fixtures.processes import stop

POOLS = ("alpha", "beta", "gamma")
WORKERS = 6
HEARTBEATS = 8


def _write_lock_is_free(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "database is locked" in str(exc)
        return False
    finally:
        other.close()
    return True


@pytest.mark.parametrize(
    ("configuration", "locks_up_front"),
    [(AioSqliteConfiguration, False), (ImmediateSqliteConfiguration, True)],
)
async def test_a_transaction_takes_the_write_lock_before_it_reads(
    tmp_path: Path, configuration: type[AioSqliteConfiguration], locks_up_front: bool
) -> None:
    path = tmp_path / "prefect.db"
    sqlite3.connect(path).executescript(
        "CREATE TABLE pool (name TEXT); INSERT INTO pool VALUES ('a');"
    )
    config = configuration(connection_url=f"sqlite+aiosqlite:///{path}")
    engine = await config.engine()
    try:
        session = await config.session(engine)
        async with session, config.begin_transaction(session):
            assert (await session.execute(text("SELECT name FROM pool"))).scalar_one() == "a"
            # Stock Prefect: another writer may commit now, and this transaction's first
            # write then fails at once.  Ours: the other writer waits.
            assert _write_lock_is_free(path) is not locks_up_front
        assert _write_lock_is_free(path)
    finally:
        await engine.dispose()


def _heartbeats(server: PrefectServer, seen: dict[str, set[str]]) -> None:
    for pool in POOLS:
        response = httpx.post(f"{server.api_url}/work_pools/{pool}/workers/filter", json={})
        if response.status_code == 404:  # the first worker on it has not created it yet
            continue
        response.raise_for_status()
        for worker in response.json():
            if worker["last_heartbeat_time"]:
                seen[worker["name"]].add(worker["last_heartbeat_time"])


def test_workers_heartbeating_every_second_never_find_the_database_locked(
    tmp_path: Path,
) -> None:
    """Six workers creating three pools and beating each second: no lock errors logged."""
    home = tmp_path / "prefect"
    with PrefectServer(home=home, ui=False) as server:
        env = prefect_env(home, server.api_url)
        env["PREFECT_WORKER_HEARTBEAT_SECONDS"] = "1"
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "worker",
                    "start",
                    "--type",
                    "process",
                    "--pool",
                    POOLS[i % len(POOLS)],
                    "--name",
                    f"worker-{i}",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for i in range(WORKERS)
        ]
        try:
            seen: dict[str, set[str]] = defaultdict(set)
            deadline = time.monotonic() + 240
            while min((len(seen[f"worker-{i}"]) for i in range(WORKERS)), default=0) < HEARTBEATS:
                assert time.monotonic() < deadline, {name: len(s) for name, s in seen.items()}
                assert all(w.poll() is None for w in workers), "a worker exited"
                _heartbeats(server, seen)
                time.sleep(0.5)
        finally:
            stop(*workers)
        journal = sqlite3.connect(home / "prefect.db").execute("PRAGMA journal_mode").fetchone()
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "database is locked" not in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    assert journal == ("wal",)


def test_a_prefect_server_started_by_hand_on_another_port_is_flagged(tmp_path: Path) -> None:
    """``prefect server start --port P`` moves the API, but its UI still calls port 4200."""
    home, port = tmp_path / "by-hand", free_port()
    env = prefect_env(home)
    for name in ("PREFECT_API_URL", "PREFECT_SERVER_API_PORT", "PREFECT_SERVER_UI_API_URL"):
        env.pop(name, None)
    with (home.parent / "by-hand.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port), "--no-services", "--ui"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "no server"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.25)
        warning = prefect_ui_warning(api_url)
    finally:
        stop(server)
    assert warning is not None
    assert f"calls the API at http://127.0.0.1:4200/api, not {api_url}" in warning
    assert f"PREFECT_SERVER_UI_API_URL={api_url}" in warning
    assert prefect_ui_warning(api_url) is None  # nothing answers: nothing to say
