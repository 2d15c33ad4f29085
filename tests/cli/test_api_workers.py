"""``[server] workers = 2``: ``limit up`` serves the REST API from two processes on one
port, one platform over one SQLite store; a killed process is replaced, a signal to
``limit up`` stops them all, and storage one process keeps is refused."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from limit_graph.cli.record import read_record
from tests.fixtures.api_processes import (
    TWO_WORKERS,
    answering_pids,
    api_pids,
    gone,
    start_workers,
)
from tests.fixtures.cli import LIMIT, Server, clean_env, run_limit
from tests.fixtures.live import free_port
from tests.fixtures.processes import stop
from tests.fixtures.tls import self_signed
from tests.fixtures.waiting import wait_until


def pinned_clients(server: Server, headers: dict[str, str]) -> dict[int, httpx.Client]:
    """One keep-alive client per API process: each connection stays with one process."""
    clients: dict[int, httpx.Client] = {}

    def both() -> bool:
        client = httpx.Client(base_url=server.url, headers=headers, timeout=30)
        pid = client.get("/health").json()["process"]["pid"]
        if pid in clients:
            client.close()
        else:
            clients[pid] = client
        return len(clients) == 2

    wait_until(both, 60, every_s=0, what="a connection to each process")
    return clients


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_workers(tmp_path_factory.mktemp("workers"))
    yield running
    stop(running.process, sig=signal.SIGINT)


@pytest.fixture
def headers(server: Server) -> dict[str, str]:
    return {"X-API-Key": (server.cwd / ".limit" / "admin.key").read_text().strip()}


def test_two_processes_answer_on_the_one_port(server: Server) -> None:
    pids = api_pids(server)
    assert len(pids) == 2 and server.process.pid not in pids
    assert answering_pids(server) == set(pids)
    record = read_record()  # written once, by limit up itself
    assert record is not None and record.pid == server.process.pid and record.url == server.url


def test_what_one_process_writes_the_other_reads(server: Server, headers: dict[str, str]) -> None:
    clients = pinned_clients(server, headers)
    (first, a), (second, b) = clients.items()
    made_by_a = [a.post("/sessions", json={"name": f"a{n}"}).json()["id"] for n in range(5)]
    made_by_b = [b.post("/sessions", json={"name": f"b{n}"}).json()["id"] for n in range(5)]
    done = a.post(
        f"/sessions/{made_by_a[0]}/execute", json={"agent": "echo", "inputs": {"x": 1}}
    ).json()
    assert done["state"] == "succeeded"
    for reader, ids in ((b, made_by_a), (a, made_by_b)):
        for sid in ids:
            response = reader.get(f"/sessions/{sid}")
            assert response.status_code == 200 and response.json()["id"] == sid
    results = b.get(f"/sessions/{made_by_a[0]}/results").json()["items"]
    assert [r["id"] for r in results] == [done["id"]]
    # each client still spoke to the process it started with
    assert [c.get("/health").json()["process"]["pid"] for c in (a, b)] == [first, second]
    listed = {
        s["id"]
        for s in httpx.get(f"{server.url}/sessions?limit=100", headers=headers).json()["items"]
    }
    assert set(made_by_a + made_by_b) <= listed
    for client in clients.values():
        client.close()


def test_a_killed_process_is_replaced_while_the_port_keeps_answering(server: Server) -> None:
    killed, survivor = api_pids(server)
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: gone(killed), 30, what="the killed process to end")
    for _ in range(10):  # the other process answers meanwhile
        health = httpx.get(f"{server.url}/health", timeout=30).json()
        assert health["process"]["pid"] != killed

    def replaced() -> set[int]:
        pids = set(api_pids(server))
        return pids if len(pids) == 2 and killed not in pids else set()

    pids = wait_until(replaced, 120, what="a replacement API process")
    assert survivor in pids
    wait_until(lambda: answering_pids(server) == pids, 120, what="the replacement to serve")
    assert not psutil.pid_exists(killed) or gone(killed)


def test_sigterm_stops_every_process_of_an_https_server(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    tls = ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    running = start_workers(tmp_path, *tls, verify=context)  # both processes answered HTTPS
    descendants = psutil.Process(running.process.pid).children(recursive=True)
    running.process.send_signal(signal.SIGTERM)
    try:
        out, _ = running.process.communicate(timeout=60)
    finally:
        stop(running.process)
    assert running.process.returncode == 0
    assert "Stopped." in out and "Traceback" not in out
    for child in descendants:  # the API processes, multiprocessing's resource tracker
        wait_until(lambda child=child: gone(child.pid), 10, what=f"pid {child.pid} to end")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running.url}/health", timeout=5, verify=context)


def test_api_processes_stop_when_limit_up_is_killed_outright(tmp_path: Path) -> None:
    running = start_workers(tmp_path)
    pids = api_pids(running)
    running.process.kill()  # no chance to stop them: they see their pipe to it close
    running.process.wait(30)
    for pid in pids:
        wait_until(lambda pid=pid: gone(pid), 60, what=f"API process {pid} to end")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running.url}/health", timeout=5)


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_storage_of_one_process_is_refused(tmp_path: Path, kind: str) -> None:
    (tmp_path / "limit.toml").write_text(f'{TWO_WORKERS}[storage]\ntype = "{kind}"\n')
    result = run_limit(
        "up", "--no-prefect", "--config", "limit.toml", cwd=tmp_path, env=clean_env()
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "[server] workers = 2 needs storage the API processes share" in result.stderr
    assert f'[storage] type = "{kind}" is kept by one process' in result.stderr
    assert not (tmp_path / ".limit").exists()  # refused before anything was written


def test_a_process_that_cannot_start_stops_limit_up(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")
    config = f'{TWO_WORKERS}[storage]\nurl = "sqlite:///{tmp_path}/not-a-folder/limit.db"\n'
    (tmp_path / "limit.toml").write_text(config)
    port = free_port()
    result = subprocess.run(
        [LIMIT, "up", "--no-prefect", "--config", "limit.toml", "--bind", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1
    assert "error: API process 1 (pid " in result.stderr
    assert "exited with code 3 before it served (the reason is logged above)" in result.stderr
    assert "REST API:" not in result.stdout  # no banner: nothing served
