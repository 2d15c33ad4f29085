"""``kill -9`` one of two API processes in the middle of a burst of executes.

``limit up --no-prefect`` serves the REST API from two processes (``[server] workers =
2``) over one store: a Postgres database of the test's own, and a SQLite file.  One
``limit runner`` process serves the remote pool over HTTP.  Remote ``sleep`` work is
queued first, so that the runner still has a backlog when the kill comes; then a burst
of executes (local ``echo`` answered inline, a few local ``sleep`` ones still running
inline when the kill comes, remote ``echo`` queued for the runner) goes out over many
client connections, and once a third of it has been answered one API process gets
SIGKILL.

Afterwards: every execute that was answered 2xx has its execution in the store, final
and succeeded, and its final ledger entry; ``limit audit verify`` passes on the store;
the remote work queued before the kill was finished through the processes left; and
``limit up`` replaced the killed process with a new one that answers ``/health``.  A
request cut off by the kill (a transport error on a connection to the killed process:
in flight there, or sent before the client saw the connection close) is allowed; they
are counted and printed (``pytest -s``).  The local executions the killed process was
running are ended ``failed`` (``ProcessLost``) by the platform's sweep once their
timeout and a grace have passed (``orchestration/orphans.py``), none left ``running``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.api_processes import answering_pids, api_pids, gone, start_workers
from tests.fixtures.cli import LIMIT, Server, clean_env
from tests.fixtures.postgres import scratch_database
from tests.fixtures.processes import stop
from tests.fixtures.waiting import wait_until

BURST = 240
PER_PROCESS = 8  # client connections to each API process
KILL_AFTER = BURST // 3
QUEUED_FIRST = 40  # remote sleeps: a backlog of 5 s for the runner (4 at a time)
FINAL = {"succeeded", "failed", "timed_out", "cancelled"}


@dataclass
class Answer:
    """One execute of the burst: what was asked, and what came back."""

    kind: str
    session_id: str
    status: int | None = None
    execution: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    before_kill: bool = False
    process: int | None = None
    """The API process its connection went to (unknown once that connection broke)."""


pytestmark = pytest.mark.early  # two platforms of two processes each: start it first


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store both API processes share: a fresh Postgres database, dropped at the end
    even though a killed process held connections to it, or a SQLite file."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'limit.db'}"
        return
    with scratch_database("limit_fault") as url:
        yield url


@pytest.fixture
def server(tmp_path: Path, storage_url: str) -> Iterator[Server]:
    config = (
        "[server]\nworkers = 2\n"
        f'[storage]\ntype = "database"\nurl = "{storage_url}"\n'
        # leases a killed claim granted come back in 2 s, not 10
        "[dispatch]\nlease_s = 2.0\nretry_backoff_s = 0.0\n"
    )
    running = start_workers(tmp_path, config=config)
    yield running
    stop(running.process, sig=signal.SIGINT)


def start_runner(server: Server) -> subprocess.Popen[str]:
    runner_key = (server.cwd / ".limit" / "runner.key").read_text().strip()
    return subprocess.Popen(
        [LIMIT, "runner", "--pool", "remote", "--api-url", server.url, "--api-key", runner_key]
        + ["--concurrency", "4"],
        cwd=server.cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def body_of(kind: str, n: int) -> dict[str, Any]:
    if kind == "remote-sleep":
        return {"agent": "sleep", "inputs": {"seconds": 0.5}, "backend": "remote", "wait_s": 0}
    if kind == "local-sleep":  # its timeout: how soon one the kill cut off is ended
        return {"agent": "sleep", "inputs": {"seconds": 0.5}, "timeout_s": 3}
    if kind == "remote-echo":
        return {"agent": "echo", "inputs": {"n": n}, "backend": "remote", "wait_s": 0}
    return {"agent": "echo", "inputs": {"n": n}}


def kind_of(n: int) -> str:
    if n % 12 == 0:
        return "local-sleep"
    return "remote-echo" if n % 3 == 0 else "local-echo"


async def execute(client: httpx.AsyncClient, answer: Answer, n: int) -> None:
    try:
        response = await client.post(
            f"/sessions/{answer.session_id}/execute", json=body_of(answer.kind, n)
        )
    except httpx.TransportError as exc:
        answer.error = f"{type(exc).__name__}: {exc}"
        return
    answer.status = response.status_code
    if response.is_success:
        answer.execution = response.json()
    else:
        answer.error = response.text[:300]


async def pinned_clients(
    server: Server, headers: dict[str, str], pids: list[int]
) -> list[tuple[int, httpx.AsyncClient]]:
    """``PER_PROCESS`` clients of one keep-alive connection each on every one of ``pids``:
    the kernel hands a new connection to either process, so each tells by ``/health``."""
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pinned: list[tuple[int, httpx.AsyncClient]] = []
    for _ in range(400):
        client = httpx.AsyncClient(base_url=server.url, headers=headers, limits=one, timeout=30)
        pid = (await client.get("/health")).json()["process"]["pid"]
        if sum(held == pid for held, _ in pinned) < PER_PROCESS:
            pinned.append((pid, client))
        else:
            await client.aclose()
        if len(pinned) == PER_PROCESS * len(pids):
            return pinned
    raise AssertionError(f"no {PER_PROCESS} connections to each of {pids}: {pinned}")


async def burst(
    server: Server, headers: dict[str, str], sessions: list[str], victim: int, survivor: int
) -> tuple[list[Answer], int, datetime]:
    """The burst, over ``PER_PROCESS`` connections to each API process; ``victim`` gets
    SIGKILL once ``KILL_AFTER`` requests were answered.  The answers, how many of the
    victim's connections had a request in flight then, and when that was.  A connection
    the kill cuts makes its client connect again: to the process left, or to the one
    replacing the victim."""
    answers = [Answer(kind_of(n), sessions[n % len(sessions)]) for n in range(BURST)]
    pinned = await pinned_clients(server, headers, [victim, survivor])
    todo = iter(range(BURST))
    busy: set[int] = set()  # the workers, on the victim, with a request in flight
    state = {"finished": 0, "busy_at_kill": -1}
    killed_at = datetime.max.replace(tzinfo=UTC)

    async def worker(number: int, pid: int | None, client: httpx.AsyncClient) -> None:
        nonlocal killed_at
        for n in todo:
            if pid == victim:
                busy.add(number)
            answers[n].process = pid
            await execute(client, answers[n], n)
            busy.discard(number)
            if answers[n].status is None:
                pid = None  # the client connects again, to a process still there
            answers[n].before_kill = state["busy_at_kill"] < 0
            state["finished"] += 1
            if state["finished"] == KILL_AFTER:
                state["busy_at_kill"] = len(busy)
                killed_at = datetime.now(UTC)
                os.kill(victim, signal.SIGKILL)

    try:
        await asyncio.gather(*(worker(k, pid, c) for k, (pid, c) in enumerate(pinned)))
    finally:
        for _, client in pinned:
            await client.aclose()
    return answers, state["busy_at_kill"], killed_at


def final(client: httpx.Client, paths: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Each execution at ``paths`` once it is final (waiting for the unfinished ones)."""
    done: dict[str, dict[str, Any]] = {}

    def all_final() -> bool:
        for path in paths:
            if path not in done:
                record = client.get(path).json()
                if record["state"] in FINAL:
                    done[path] = record
        return len(done) == len(paths)

    try:
        wait_until(all_final, timeout_s, every_s=0.1, what="every execution to end")
    except AssertionError:
        pending = [p for p in paths if p not in done]
        raise AssertionError(f"{len(pending)} executions never ended: {pending[:5]}") from None
    return done


def ledger_actions(client: httpx.Client, session_ids: list[str]) -> dict[str, set[str]]:
    """The actions of the ledger entries of each resource, read from ``/audit``."""
    actions: dict[str, set[str]] = {}
    for sid in session_ids:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"session_id": sid, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/audit", params=params)
            assert page.status_code == 200, page.text
            for entry in page.json()["items"]:
                actions.setdefault(entry["resource_id"], set()).add(entry["action"])
            cursor = page.json()["next_cursor"]
            if not cursor:
                break
    return actions


def show(*lines: str) -> None:
    """What the test saw, for ``pytest -s`` (the cut-off requests, the final states)."""
    print("\n" + "\n".join(lines))  # noqa: T201 (shown with -s)


def path_of(answer: Answer) -> str:
    return f"/sessions/{answer.session_id}/executions/{answer.execution['id']}"


def test_a_killed_api_process_loses_no_answered_execute(server: Server) -> None:
    headers = {"X-API-Key": (server.cwd / ".limit" / "admin.key").read_text().strip()}
    runner = start_runner(server)
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            sessions = []
            for n in range(6):
                made = client.post("/sessions", json={"name": f"burst-{n}"})
                assert made.status_code == 201, made.text
                sessions.append(made.json()["id"])
            queued_first = [Answer("remote-sleep", sessions[n % 6]) for n in range(QUEUED_FIRST)]
            for n, answer in enumerate(queued_first):
                response = client.post(
                    f"/sessions/{answer.session_id}/execute", json=body_of(answer.kind, n)
                )
                assert response.status_code == 202, response.text
                answer.status, answer.execution = 202, response.json()
                answer.before_kill = True

            victim, survivor = api_pids(server)
            answers, in_flight, killed_at = asyncio.run(
                burst(server, headers, sessions, victim, survivor)
            )
            wait_until(lambda: gone(victim), 30, what="the killed API process to end")

            answered = [a for a in answers if a.status is not None and 200 <= a.status < 300]
            cut_off = [a for a in answers if a.status is None]
            refused = [a for a in answers if a.status is not None and a.error is not None]
            show(
                f"burst of {BURST} over {PER_PROCESS} connections to each process, SIGKILL to "
                f"pid {victim} after {KILL_AFTER} answers, {in_flight} requests in flight "
                f"there: {len(answered)} "
                f"answered 2xx {dict(Counter(a.kind for a in answered))}, {len(cut_off)} cut "
                f"off by the kill {dict(Counter(a.kind for a in cut_off))}, {len(refused)} "
                "refused",
                *(f"  {a.kind} in {a.session_id}: {a.status} {a.error}" for a in cut_off + refused),
            )
            assert refused == [], "only a transport error may stand for an answer"
            # each connection to the victim breaks once (the request in flight on it, or
            # one sent before the client saw it close); no other request is lost
            assert 1 <= len(cut_off) <= PER_PROCESS
            assert {a.process for a in cut_off} == {victim}
            after_kill = [a for a in answered if not a.before_kill]
            assert after_kill, "nothing was answered after the kill"

            kept = [*queued_first, *answered]
            records = final(client, [path_of(a) for a in kept], timeout_s=30)
            states = Counter(record["state"] for record in records.values())
            show(f"final states of the {len(kept)} answered executions: {dict(states)}")
            assert states == {"succeeded": len(kept)}
            queued_before = [
                records[path_of(a)] for a in kept if a.kind.startswith("remote") and a.before_kill
            ]
            carried_on = [
                r for r in queued_before if datetime.fromisoformat(r["finished_at"]) > killed_at
            ]
            show(
                f"remote work queued before the kill: {len(queued_before)}, finished after it: "
                f"{len(carried_on)}, run more than once: "
                f"{sum(r['attempts'] > 1 for r in queued_before)}"
            )
            assert carried_on, "no remote work queued before the kill was finished after it"
            actions = ledger_actions(client, sessions)
            unrecorded = [
                path_of(a)
                for a in kept
                if "execution.succeeded" not in actions.get(a.execution["id"], set())
            ]
            assert unrecorded == [], f"no final ledger entry for {unrecorded[:5]}"

            def local_running() -> int:
                counts = [
                    client.get(f"/sessions/{sid}/status").json()["backends"].get("local", {})
                    for sid in sessions
                ]
                return sum(c.get("running", 0) for c in counts)

            # The inline executions the killed process was running: ended by the sweep
            # once their timeout (3 s) and a grace (a lease) have passed, not left running.
            wait_until(lambda: local_running() == 0, 60, what="the abandoned runs to be ended")
            lost = [
                item
                for sid in sessions
                for item in client.get(
                    f"/sessions/{sid}/results", params={"state": "failed", "limit": 500}
                ).json()["items"]
            ]
            assert {item["error"]["type"] for item in lost} <= {"ProcessLost"}, lost[:3]
            assert all(item["backend"] == "local" for item in lost)
            show(f"inline executions the killed process was running, ended failed: {len(lost)}")
            verified = server.limit("audit", "verify", "--config", "limit.toml")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert verified.stdout.startswith("the ledger verifies: "), verified.stdout
            show(verified.stdout.strip())

            def replaced() -> set[int]:
                pids = set(api_pids(server))
                return pids if len(pids) == 2 and victim not in pids else set()

            pids = wait_until(replaced, 60, what="limit up to replace the killed process")
            assert survivor in pids
            wait_until(lambda: answering_pids(server) == pids, 60, what="the replacement to answer")
    finally:
        [code] = stop(runner)
        if code != 0:
            show(f"the runner ended with {code}:", runner.stdout.read() if runner.stdout else "")
