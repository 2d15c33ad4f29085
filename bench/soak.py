"""The mixed-load soak: the whole platform under steady mixed load for minutes, then an
exact account of what it accepted.

``limit up --no-prefect`` (embedded SQLite; ``--postgres``: a database of its own on
the local server) with its governance on -- quotas on the tenant and on each session,
rate limits on every route class, circuit limits platform-wide and circuit limits and
allowed targets in each session -- and ``limit runner`` processes, two on the remote
pool and two on the quantum pool (real Aer).  Over loopback, for ``--duration``
seconds, paced clients (``bench/soak_clients.py``) create and complete sessions, run
local, remote and quantum executes and small workflows (local, mapped remote and
quantum steps), read results, executions and status, send work the checks must refuse,
and watch event streams.  Every process's resident memory is read at the start, once a
minute (a fifth of the run, for runs under two minutes) and at the end.

Afterwards (``bench/soak_accounting.py``): every accepted execution is read back through
the results endpoints and from the store, and must have exactly one final ledger entry;
the ledger must verify (``limit audit verify``), and the checkpoint at the end must be
provably consistent with the one at the start.  The targets: no execution lost or
recorded twice, the ledger verifies, the API's RSS grows less than 10 % from the first
minute to the last.

``python -m bench.soak [--duration 300] [--postgres] [--prefect]``; exits 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from bench.dispatch import ADMIN_KEY, bench_database, platform_server, runners_for, wait_runners
from bench.soak_accounting import StoreView, account, drain, read_back, verify_ledger
from bench.soak_clients import SESSION_CONFIG, Load, Mix
from bench.soak_procs import ProcessSeries, children_of, cpu_ticks, load_average
from bench.soak_report import Observed, SoakReport, rows
from limit_graph.core import merkle
from limit_graph.deployments.server import PrefectServer

__all__ = ["SoakReport", "main", "measure", "rows", "run"]

GENEROUS = {"rate": 5000, "burst": 10000}
DRAIN_TIMEOUT_S = 180.0
RUNNERS_PER_POOL = 2


def _config(path: Path, database_url: str | None, workers: int, redis: bool) -> Path:
    """The soak's settings: generous rate limits on every route class and circuit limits
    on every quantum execution, on top of the platform's defaults."""
    rate = f"{{ rate = {GENEROUS['rate']}, burst = {GENEROUS['burst']} }}"
    lines = [
        "[server]",
        f"workers = {workers}",
        "[governance]",
        'checks = [{ check = "circuit-limits", targets = ["aer"], max_qubits = 12, '
        "max_shots = 100000 }]",
    ]
    if redis:
        lines.append('redis_url = "redis://127.0.0.1:6379/0"')
    for route_class in ("execute", "read", "write"):
        lines += [
            f"[governance.rates.{route_class}]",
            f"per_principal = {rate}",
            f"per_tenant = {rate}",
        ]
    if database_url is not None:
        lines += ["[storage]", f'url = "{database_url}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _author_key(admin: httpx.Client) -> str:
    """A tenant of the soak's own with generous quotas, and an author's key in it."""
    admin.post("/tenants", json={"name": "soak"}).raise_for_status()
    made = admin.post(
        "/principals",
        json={"name": "soak-author", "tenant": "soak", "kind": "user", "roles": ["author"]},
    )
    made.raise_for_status()
    key = admin.post("/keys", json={"principal_id": made.json()["id"]})
    key.raise_for_status()
    limits = {"executions": 100_000_000, "concurrent": 2000, "shots": 10**12, "period": "day"}
    admin.put("/quotas/tenant:soak", json=limits).raise_for_status()
    return str(key.json()["key"])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _processes(
    api_pid: int, runners: dict[str, list[int]], prefect_pid: int | None
) -> list[ProcessSeries]:
    """The processes to watch: ``limit up`` and its API processes, each runner, the
    Prefect server, and any children of theirs."""
    top: list[tuple[str, int]] = []
    up = api_pid if " up " in _cmdline(api_pid) + " " else _ppid(api_pid)
    top.append(("API (`limit up`)" if up == api_pid else "`limit up` (supervisor)", up))
    top += [(f"runner, {pool} pool #{n + 1}", pid) for pool, pids in runners.items()
            for n, pid in enumerate(pids)]  # fmt: skip
    if prefect_pid is not None:
        top.append(("Prefect server", prefect_pid))
    top.append(("the soak's clients (this process)", os.getpid()))
    series: list[ProcessSeries] = []
    for name, pid in top:
        series.append(ProcessSeries(name, pid))
        children = children_of(pid) if pid != os.getpid() else []
        helpers = [c for c in children if "resource_tracker" in _cmdline(c)]
        for child in helpers:
            series.append(ProcessSeries(f"{name}: multiprocessing's resource tracker", child))
        for n, child in enumerate(c for c in children if c not in helpers):
            label = "API process" if pid == up and up != api_pid else f"{name}: child"
            series.append(ProcessSeries(f"{label} #{n + 1}", child))
    return series


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


async def _sample(
    processes: list[ProcessSeries], times: list[float], interval: float, stop_at: float
) -> None:
    """A reading of every process now, then each ``interval`` until ``stop_at``."""
    started = time.monotonic()
    while True:
        times.append(time.monotonic() - started)
        for series in processes:
            series.take()
        next_at = started + interval * len(times)
        if next_at > stop_at - interval / 4:
            return
        await asyncio.sleep(next_at - time.monotonic())


async def _checkpoint(client: httpx.AsyncClient) -> tuple[int, bytes]:
    made = (await client.get("/audit/checkpoint")).json()
    return int(made["tree_size"]), base64.b64decode(made["root_hash"])


async def _consistent(client: httpx.AsyncClient, first: tuple[int, bytes]) -> str:
    """Whether the checkpoint now extends ``first``, by its RFC 6962 consistency proof."""
    second = await _checkpoint(client)
    if first[0] == 0:
        return f"nothing to prove from an empty tree (now {second[0]:,} entries)"
    proof = await client.get(
        "/audit/proof/consistency", params={"first": first[0], "second": second[0]}
    )
    proof.raise_for_status()
    hashes = [base64.b64decode(h) for h in proof.json()["hashes"]]
    try:
        merkle.verify_consistency(first[0], second[0], first[1], second[1], hashes)
    except merkle.ProofError as exc:
        return f"FAILED from {first[0]:,} to {second[0]:,} entries: {exc}"
    return f"proven from {first[0]:,} to {second[0]:,} entries"


async def _soak(
    url: str,
    key: str,
    sessions: dict[str, list[str]],
    processes: list[ProcessSeries],
    duration_s: float,
    mix: Mix,
) -> Observed:
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": key}, timeout=180, limits=limits
    ) as client:
        seen = Observed(Load(client, sessions, mix))
        work = [s for kind in ("local", "remote", "quantum", "workflow") for s in sessions[kind]]
        watched = [work[n * len(work) // mix.watchers] for n in range(mix.watchers)]
        watchers = [asyncio.create_task(seen.load.watch(s)) for s in watched]
        start = await _checkpoint(client)
        busy, total = cpu_ticks()
        average = load_average()
        stop_at = time.monotonic() + duration_s
        interval = 60.0 if duration_s >= 120 else duration_s / 5
        sampler = asyncio.create_task(_sample(processes, seen.sample_times, interval, stop_at))
        await seen.load.run(stop_at)
        await sampler
        seen.sample_times.append(duration_s)
        for series in processes:
            series.take()
        busy_end, total_end = cpu_ticks()
        seen.busy_cores = (busy_end - busy) / max(1, total_end - total) * (os.cpu_count() or 1)
        seen.load_average = (average, load_average())
        seen.drain_s = await drain(client, seen.load.accepted, DRAIN_TIMEOUT_S)
        await asyncio.sleep(2.0)  # streams re-read the ledger every second
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        seen.listed = await read_back(client, seen.load.accepted)
        seen.consistency = await _consistent(client, start)
        seen.quotas = (await client.get("/quotas")).json()["items"]
    return seen


@contextmanager
def _database(postgres: bool) -> Iterator[str | None]:
    if not postgres:
        yield None
        return
    with bench_database() as url:
        if url is None:
            raise RuntimeError("--postgres: no Postgres server answers (POSTGRES_URL)")
        yield url


def _work_sessions(url: str, key: str, mix: Mix) -> dict[str, list[str]]:
    """A session of its own for each execute and workflow client, by kind."""
    counts = {
        "local": mix.local_clients,
        "remote": mix.remote_clients,
        "quantum": mix.quantum_clients,
        "workflow": mix.workflow_clients,
    }
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as author:
        made: dict[str, list[str]] = {kind: [] for kind in counts}
        for kind, count in counts.items():
            for n in range(count):
                body = {"name": f"soak-{kind}-{n}", "config": SESSION_CONFIG}
                answer = author.post("/sessions", json=body)
                answer.raise_for_status()
                made[kind].append(answer.json()["id"])
    return made


def run(
    duration_s: float,
    workdir: Path,
    *,
    postgres: bool = False,
    prefect: bool = False,
    workers: int = 1,
    redis: bool = False,
    mix: Mix | None = None,
) -> SoakReport:
    """The soak in ``workdir`` (the platform's home is ``workdir/home``)."""
    mix = mix or Mix()
    workdir.mkdir(parents=True, exist_ok=True)
    with _database(postgres) as database_url:
        config = _config(workdir / "soak.toml", database_url, workers, redis)
        with ExitStack() as stack:
            prefect_server = (
                stack.enter_context(PrefectServer(workdir / "prefect", ui=False))
                if prefect
                else None
            )
            api_url = prefect_server.api_url if prefect_server else None
            url = stack.enter_context(platform_server(workdir, api_url, config=config))
            admin = stack.enter_context(
                httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=60)
            )
            key = _author_key(admin)
            sessions = _work_sessions(url, key, mix)
            remote = stack.enter_context(runners_for(url, "remote", RUNNERS_PER_POOL, 16))
            quantum = stack.enter_context(runners_for(url, "quantum", RUNNERS_PER_POOL, 4))
            wait_runners(admin, RUNNERS_PER_POOL, ("remote", "quantum"), timeout_s=120)
            api_pid = int(admin.get("/health").json()["process"]["pid"])
            prefect_process = prefect_server.process if prefect_server else None
            processes = _processes(
                api_pid,
                {"remote": [p.pid for p in remote], "quantum": [p.pid for p in quantum]},
                prefect_process.pid if prefect_process else None,
            )
            seen = asyncio.run(_soak(url, key, sessions, processes, duration_s, mix))
        sqlite = None if database_url else workdir / "home" / "limit.db"
        store = StoreView.read(sqlite, database_url)
        ledger_ok, ledger_detail = verify_ledger(workdir / "home", config, workdir)
    return SoakReport(
        duration_s=duration_s,
        store="Postgres" if postgres else "SQLite",
        processes=processes,
        observed=seen,
        accounting=account(seen.load.accepted, seen.listed, store),
        ledger_ok=ledger_ok,
        ledger_detail=ledger_detail,
        runners_per_pool=RUNNERS_PER_POOL,
    )


def measure(
    duration_s: float,
    workdir: Path | None = None,
    *,
    postgres: bool = False,
    prefect: bool = False,
    workers: int = 1,
) -> list[str]:
    """The soak's rows for ``python -m bench``; ``workdir`` is kept, a temporary one not.

    ``measure(20)`` is a smoke run of the whole soak in about a minute and a half.
    """
    kept = workdir is not None
    where = workdir or Path(tempfile.mkdtemp(prefix="limit-bench-soak-"))
    try:
        return rows(run(duration_s, where, postgres=postgres, prefect=prefect, workers=workers))
    finally:
        if not kept:
            shutil.rmtree(where, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--postgres", action="store_true", help="a Postgres database of its own")
    parser.add_argument("--prefect", action="store_true", help="a Prefect server, mirror on")
    parser.add_argument("--workers", type=int, default=1, help="API processes (`[server] workers`)")
    parser.add_argument(
        "--redis", action="store_true", help="rate limits in Redis (127.0.0.1:6379)"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="every client's rate times this")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="limit-bench-soak-"))
    try:
        report = run(
            args.duration,
            workdir,
            postgres=args.postgres,
            prefect=args.prefect,
            workers=args.workers,
            redis=args.redis,
            mix=Mix().scaled(args.scale),
        )
        for line in rows(report):
            print(line)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if not report.ok:
        sys.exit("FAIL: the soak missed a target")


if __name__ == "__main__":
    main()
