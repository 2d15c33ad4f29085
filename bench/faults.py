"""Recovery from faults, measured against the real platform (``limit up --no-prefect``).

- flaky quantum target: two quantum instances; ``flaky``'s runner samples on
  ``tests/fixtures/flaky_quantum.py``'s ``FlakyTarget`` (real Aer, half its jobs refused,
  three in a row, with the retryable error of a provider's HTTP 503), ``healthy``'s is a
  ``limit runner`` process.  Bell-state samples over 16 sessions, drained once with the
  flaky runner refusing nothing (the anchor) and once refusing: time to drain (first
  submission to last finish), share retried, share failed over, and what ``/health``
  showed of ``flaky`` meanwhile.  The router counts failures in a row and any success
  resets the count, so a runner running four jobs at once, whose refusals interleave with
  successes, rarely if ever has ``flaky`` taken out.
- runner killed: two ``limit runner`` processes on the remote pool, a burst of ``sleep``
  executions filling both; one runner is killed with SIGKILL while it holds its leases.
  Seconds from the kill until the last of its executions finished on the other runner,
  against ``lease_s`` (the earliest its leases can expire).
- Postgres refusing connections: ``limit up`` on a fresh Postgres database under a load of
  ``echo`` executes; mid-load the database stops accepting connections and its open ones
  are terminated (as a restart does), then it accepts them again.  The share of answers
  in the outage that are 503 with ``Retry-After``, the 500s (of the whole run), and the
  seconds from connections being allowed to the first execute answered 200.

Every row also counts lost executions (accepted, never recorded succeeded) and duplicates
(an execution with more than one final ledger entry, or a record nobody submitted); both
must be 0, and a row where they are not says FAIL.  ``python -m bench.faults [--quick]``
prints the table and exits 1 on a FAIL; :func:`measure_all` gives its rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests.fixtures.flaky_quantum import FlakyTarget, flaky_registry

from bench.dispatch import ADMIN_KEY, LIMIT, RUNNER_KEY, bench_database
from limit_graph.deployments.server import free_port
from limit_graph.flows.runner import RunnerLoop

__all__ = ["measure_all", "measure_outage", "measure_quantum", "measure_runner_kill", "rows"]

FINAL_ACTIONS = frozenset(
    {"execution.succeeded", "execution.failed", "execution.timed_out", "execution.cancelled"}
)
BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; '
    "h q[0]; cx q[0], q[1]; c = measure q;"
)
SESSIONS = 16
DRAIN_TIMEOUT_S = 120.0


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"X-API-Key": ADMIN_KEY},
        timeout=60,
        limits=httpx.Limits(max_connections=16),
    )


async def _pages(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(path, params=params)).raise_for_status().json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


@dataclass
class Audit:
    """What the store says of a set of submitted executions: ``lost``, submitted and not
    recorded succeeded; ``refinished``, final ledger entries past an execution's first;
    ``unsubmitted``, records that no answer named."""

    records: dict[str, dict[str, Any]]
    lost: int
    refinished: int
    unsubmitted: int

    @property
    def duplicates(self) -> int:
        return self.refinished + self.unsubmitted


async def _audit(client: httpx.AsyncClient, sessions: list[str], submitted: set[str]) -> Audit:
    records: dict[str, dict[str, Any]] = {}
    finals: dict[str, int] = {}
    for session_id in sessions:
        for item in await _pages(client, f"/sessions/{session_id}/results"):
            records[item["id"]] = item
        for entry in await _pages(client, f"/sessions/{session_id}/provenance"):
            if entry["action"] in FINAL_ACTIONS:
                finals[entry["resource_id"]] = finals.get(entry["resource_id"], 0) + 1
    lost = sum(records.get(i, {}).get("state") != "succeeded" for i in submitted)
    refinished = sum(n - 1 for n in finals.values() if n > 1)
    return Audit(records, lost, refinished, len(set(records) - submitted))


async def _drained(client: httpx.AsyncClient, sessions: list[str], timeout_s: float) -> None:
    """Until no session has queued or running work (or ``timeout_s`` passes)."""
    deadline = time.monotonic() + timeout_s
    waiting = set(sessions)
    while waiting and time.monotonic() < deadline:
        for session_id in list(waiting):
            counts = (await client.get(f"/sessions/{session_id}/status")).json()["counts"]
            if not counts.get("queued") and not counts.get("running"):
                waiting.discard(session_id)
        await asyncio.sleep(0.2)


@contextmanager
def _platform(workdir: Path, config: Path) -> Iterator[str]:
    """``limit up --no-prefect`` with the settings file ``config``; its URL.  Like
    ``bench.dispatch.platform_server``, but its log goes to ``workdir/limit-up.log``: a
    store that refuses connections makes the server log every failed request, which
    would fill an unread pipe and block the server on its own logging."""
    port = free_port()
    env = {
        **os.environ,
        "LIMIT_HOME": str(workdir / "home"),
        "LIMIT_ADMIN_API_KEY": ADMIN_KEY,
        "LIMIT_RUNNER_API_KEY": RUNNER_KEY,
        "LIMIT_CONFIG": str(config),
        "LOG_LEVEL": "WARNING",
    }
    for name in ("DATABASE_URL", "PREFECT_API_URL"):
        env.pop(name, None)
    url = f"http://127.0.0.1:{port}"
    log = workdir / "limit-up.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [LIMIT, "up", "--no-prefect", "--bind", f"127.0.0.1:{port}"],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"limit up exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("limit up did not start")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# --- a flaky quantum target ---------------------------------------------------------


@contextmanager
def _runner_process(url: str, pool: str, concurrency: int, *extra: str) -> Iterator[Any]:
    process = subprocess.Popen(
        [LIMIT, "runner", "--pool", pool, "--api-url", url, "--api-key", RUNNER_KEY,
         "--concurrency", str(concurrency), *extra],
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=60)


async def _wait_runners(client: httpx.AsyncClient, instance: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        backends = (await client.get("/health")).json()["checks"]["backends"]
        if backends[instance]["pool_runners"] >= count:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{count} runners of {instance} did not connect")


def _sample(seed: int) -> dict[str, Any]:
    return {
        "agent": "quantum.sample",
        "backend": "quantum",
        "wait_s": 0,
        "inputs": {
            "target": "aer",
            "seed": seed,
            "pubs": [{"circuit": {"format": "qasm3", "source": BELL}, "shots": 100}],
        },
    }


async def _watch_health(client: httpx.AsyncClient, instance: str, seen: list[str]) -> None:
    """Append the router's state of ``instance`` (``GET /health``) every 50 ms."""
    while True:
        backends = (await client.get("/health")).json()["checks"]["backends"]
        seen.append(backends[instance]["status"])
        await asyncio.sleep(0.05)


async def _quantum_batch(url: str, n: int, refuse: bool) -> dict[str, Any]:
    """``n`` samples over new sessions with the flaky runner refusing half its jobs or
    none; the other instance's runner is already serving."""
    target = FlakyTarget(run=3 if refuse else 0)
    logging.getLogger("limit_graph.agents").setLevel(logging.ERROR)  # each refusal is logged
    loop = RunnerLoop(
        url, RUNNER_KEY, "quantum", "flaky",
        concurrency=4, idle_exit_s=None, registry=flaky_registry(target),
    )  # fmt: skip
    serving = asyncio.create_task(loop.run())
    try:
        async with _client(url) as client:
            await _wait_runners(client, "flaky", 2)
            sessions = [
                (await client.post("/sessions", json={})).json()["id"] for _ in range(SESSIONS)
            ]
            started = datetime.now(UTC)

            async def submit(index: int) -> dict[str, Any]:
                path = f"/sessions/{sessions[index % SESSIONS]}/execute"
                answer: dict[str, Any] = (await client.post(path, json=_sample(index))).json()
                return answer

            seen: list[str] = []
            watching = asyncio.create_task(_watch_health(client, "flaky", seen))
            placed = await asyncio.gather(*(submit(i) for i in range(n)))
            await _drained(client, sessions, DRAIN_TIMEOUT_S)
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
            audit = await _audit(client, sessions, {e["id"] for e in placed})
    finally:
        loop.stop()
        await asyncio.wait_for(serving, 30)
    done = [audit.records[e["id"]] for e in placed if e["id"] in audit.records]
    finishes = [_stamp(r["finished_at"]) for r in done if r["finished_at"]]
    return {
        "n": n,
        "on_flaky": sum(e["instance"] == "flaky" for e in placed),
        "retried": sum(r["attempts"] > 1 for r in done),
        "failed_over": sum(
            r["attempts"] > 1 and r["instance"] != e["instance"]
            for e in placed
            if (r := audit.records.get(e["id"])) is not None
        ),
        "refused": target.failed,
        "drain_s": (max(finishes) - started).total_seconds() if finishes else float("nan"),
        "lost": audit.lost,
        "duplicates": audit.duplicates,
        "taken_out": any(state != "healthy" for state in seen),
        "flaky_status": seen[-1] if seen else "unknown",
    }


def measure_quantum(workdir: Path, n: int) -> dict[str, Any]:
    """The same ``n`` samples drained with the flaky instance healthy, then flaky."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "quantum.toml"
    config.write_text(
        '[backends.flaky]\ntype = "quantum"\nprovider = "aer"\n'
        '[backends.healthy]\ntype = "quantum"\nprovider = "aer"\n'
        "[dispatch]\nretry_backoff_s = 0.5\nmax_attempts = 3\n"
    )
    with (
        _platform(workdir, config) as url,
        _runner_process(url, "quantum", 4, "--instance", "healthy"),
    ):

        async def run() -> tuple[dict[str, Any], dict[str, Any]]:
            async with _client(url) as client:
                await _wait_runners(client, "healthy", 1)
            await _quantum_batch(url, SESSIONS, refuse=False)  # warm-up: Aer imported
            return (
                await _quantum_batch(url, n, refuse=False),
                await _quantum_batch(url, n, refuse=True),
            )

        anchor, flaky = asyncio.run(run())
    return {"anchor": anchor, "flaky": flaky}


# --- a runner killed mid-burst ------------------------------------------------------


def measure_runner_kill(workdir: Path, lease_s: float, concurrency: int) -> dict[str, Any]:
    """Two runners each holding ``concurrency`` one-second ``sleep`` executions; one is
    killed outright."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "kill.toml"
    config.write_text(f"[dispatch]\nlease_s = {lease_s}\nretry_backoff_s = 0.5\n")
    burst = 2 * concurrency
    with (
        _platform(workdir, config) as url,
        _runner_process(url, "remote", concurrency) as victim,
        _runner_process(url, "remote", concurrency),
    ):

        async def run() -> dict[str, Any]:
            async with _client(url) as client:
                await _wait_runners(client, "remote", 2)
                session_id = (await client.post("/sessions", json={})).json()["id"]
                body = {"agent": "sleep", "inputs": {"seconds": 1.0}, "backend": "remote"}
                placed = await asyncio.gather(
                    *(
                        client.post(f"/sessions/{session_id}/execute", json={**body, "wait_s": 0})
                        for _ in range(burst)
                    )
                )
                ids = {answer.json()["id"] for answer in placed}
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    counts = (await client.get(f"/sessions/{session_id}/status")).json()["counts"]
                    if counts.get("running", 0) >= burst:
                        break
                    await asyncio.sleep(0.02)
                victim.send_signal(signal.SIGKILL)
                killed_at = datetime.now(UTC)
                await _drained(client, [session_id], DRAIN_TIMEOUT_S)
                audit = await _audit(client, [session_id], ids)
            moved = [r for r in audit.records.values() if r["attempts"] > 1 and r["finished_at"]]
            last = max((_stamp(r["finished_at"]) for r in moved), default=None)
            return {
                "burst": burst,
                "moved": len(moved),
                "recovery_s": (last - killed_at).total_seconds() if last else float("nan"),
                "lease_s": lease_s,
                "lost": audit.lost,
                "duplicates": audit.duplicates,
            }

        return asyncio.run(run())


# --- Postgres refusing connections ----------------------------------------------------


class _Outage:
    """The database refusing connections, its open ones cut, until :meth:`end`."""

    def __init__(self, url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        self.name = str(parsed.database)
        admin = parsed.set(drivername="postgresql", database="postgres")
        self.admin = psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True)

    def begin(self) -> None:
        from psycopg import sql

        name = sql.Identifier(self.name)
        self.admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            [self.name],
        )

    def end(self) -> None:
        from psycopg import sql

        name = sql.Identifier(self.name)
        self.admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))


@dataclass
class _Answer:
    sent: float
    answered: float
    status: int  # 0: no answer (a transport error)
    retry_after: bool
    execution_id: str | None


async def _load(
    url: str, session_id: str, outage: _Outage, lead_s: float, outage_s: float, tail_s: float
) -> tuple[list[_Answer], float, float]:
    """Eight clients executing ``echo`` back to back; the outage from ``lead_s`` for
    ``outage_s``; the answers, and when the outage began and ended (monotonic)."""
    answers: list[_Answer] = []
    start = time.monotonic()
    stop_at = start + lead_s + outage_s + tail_s
    path = f"/sessions/{session_id}/execute"

    async def client_loop(client: httpx.AsyncClient, worker: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            sent = time.monotonic()
            body = {"agent": "echo", "inputs": {"w": worker, "n": n}}
            n += 1
            try:
                answer = await client.post(path, json=body)
            except httpx.TransportError:
                answers.append(_Answer(sent, time.monotonic(), 0, False, None))
                await asyncio.sleep(0.05)
                continue
            ok = answer.status_code == 200
            answers.append(
                _Answer(
                    sent,
                    time.monotonic(),
                    answer.status_code,
                    "retry-after" in answer.headers,
                    answer.json()["id"] if ok else None,
                )
            )
            if not ok:
                await asyncio.sleep(0.05)  # a client told to retry does not spin

    async with _client(url) as client:
        workers = [asyncio.create_task(client_loop(client, w)) for w in range(8)]
        await asyncio.sleep(lead_s)
        await asyncio.to_thread(outage.begin)
        began = time.monotonic()
        await asyncio.sleep(outage_s)
        await asyncio.to_thread(outage.end)
        ended = time.monotonic()
        await asyncio.gather(*workers)
    return answers, began, ended


def measure_outage(workdir: Path, outage_s: float) -> dict[str, Any] | None:
    """``None`` when no Postgres server answers."""
    with bench_database() as database_url:
        if database_url is None:
            return None
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "postgres.toml"
        config.write_text(f'[storage]\nurl = "{database_url}"\n')
        outage = _Outage(database_url)
        try:
            with _platform(workdir, config) as url:

                async def run() -> dict[str, Any]:
                    async with _client(url) as client:
                        session_id = (await client.post("/sessions", json={})).json()["id"]
                    answers, began, ended = await _load(url, session_id, outage, 1.5, outage_s, 3)
                    async with _client(url) as client:
                        accepted = {a.execution_id for a in answers if a.execution_id}
                        audit = await _audit(client, [session_id], accepted)
                    during = [a for a in answers if began <= a.sent < ended]
                    after = [a for a in answers if a.sent >= ended and a.status == 200]
                    unavailable = sum(a.status == 503 and a.retry_after for a in during)
                    return {
                        "outage_s": ended - began,
                        "answers": len(answers),
                        "during": len(during),
                        "unavailable": unavailable,
                        "server_errors": sum(a.status >= 500 and a.status != 503 for a in answers),
                        "no_answer": sum(a.status == 0 for a in answers),
                        "recovery_s": min((a.answered for a in after), default=float("nan"))
                        - ended,
                        "lost": audit.lost,
                        # a write that committed though its answer was an error is no copy
                        "duplicates": audit.refinished,
                        "committed_unanswered": audit.unsubmitted,
                    }

                return asyncio.run(run())
        finally:
            outage.end()
            outage.admin.close()


# --- the table ----------------------------------------------------------------------------


def _integrity(m: dict[str, Any]) -> str:
    text = f"{m['lost']} / {m['duplicates']}"
    return text if m["lost"] == 0 and m["duplicates"] == 0 else f"FAIL: {text}"


def rows(quantum: dict[str, Any], kill: dict[str, Any], outage: dict[str, Any] | None) -> list[str]:
    anchor, flaky = quantum["anchor"], quantum["flaky"]
    n = flaky["n"]
    lines = [
        "| fault | recovery | vs anchor | lost / duplicates |",
        "| --- | ---: | ---: | ---: |",
        f"| quantum: {anchor['n']} Bell samples (100 shots, real Aer) over 2 instances, "
        f"both healthy ({anchor['on_flaky']} placed on `flaky`) | drained in "
        f"{anchor['drain_s']:.2f} s | 1.00x (anchor) | {_integrity(anchor)} |",
        f"| the same, `flaky` refusing half its jobs (retryable 503, 3 in a row; "
        f"{flaky['on_flaky']} placed on it, {flaky['refused']} refused): "
        f"{flaky['retried'] / n:.0%} retried, {flaky['failed_over'] / n:.0%} failed over "
        f"after 0.5 s; `/health` (every 50 ms) showed `flaky` "
        f"{'out of the rotation at times' if flaky['taken_out'] else 'healthy throughout'}"
        f", {flaky['flaky_status']} at the end | drained in "
        f"{flaky['drain_s']:.2f} s | {flaky['drain_s'] / anchor['drain_s']:.2f}x | "
        f"{_integrity(flaky)} |",
        f"| remote runner killed (SIGKILL) holding {kill['moved']} of a burst of "
        f"{kill['burst']} one-second `sleep`s, 2 runners | its executions finished on the "
        f"other {kill['recovery_s']:.2f} s after the kill (lease, 0.5 s backoff, 1 s run) | "
        f"{kill['recovery_s'] / kill['lease_s']:.2f}x lease_s ({kill['lease_s']:g} s) | "
        f"{_integrity(kill)} |",
    ]
    if outage is None:
        lines.append("| Postgres refusing connections | skipped: no Postgres server | | |")
        return lines
    share = outage["unavailable"] / outage["during"] if outage["during"] else float("nan")
    errors = outage["server_errors"]
    lines.append(
        f"| Postgres refusing connections for {outage['outage_s']:.1f} s under 8 clients "
        f"executing `echo` ({outage['answers']:,} answers): {share:.0%} of the "
        f"{outage['during']} sent meanwhile 503 + Retry-After, "
        f"{'0' if errors == 0 else f'FAIL: {errors}'} × 500, {outage['no_answer']} unanswered, "
        f"{outage['committed_unanswered']} committed though answered 503 | first 200 "
        f"{outage['recovery_s']:.2f} s after connections returned | | {_integrity(outage)} |"
    )
    return lines


def measure_all(workdir: Path | None = None, *, quick: bool = False) -> list[str]:
    """Every fault's row (markdown, header first), ``quick``: smaller runs (~1 minute)."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="limit-bench-faults-"))
    quantum = measure_quantum(workdir / "quantum", 48 if quick else 160)
    kill = measure_runner_kill(workdir / "kill", 2.0, 4 if quick else 8)
    outage = measure_outage(workdir / "postgres", 2.0 if quick else 3.0)
    return rows(quantum, kill, outage)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    args = parser.parse_args()
    lines = measure_all(quick=args.quick)
    for line in lines:
        print(line)
    if any("FAIL" in line for line in lines):
        sys.exit("FAIL: a fault lost or duplicated work, or answered 500")


if __name__ == "__main__":
    main()
