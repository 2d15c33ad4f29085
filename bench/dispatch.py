"""Dispatch to runners against Prefect's own ways of running work, in one run.

Platform rows: the API (``limit up --no-prefect``, embedded SQLite) with ``limit runner``
processes on the remote pool; once with the queue in the API process (the default of
one process on SQLite), once with it shared in the database by two API processes,
the work submitted to one and the runners connected to the other.
- dispatch latency: executions submitted one at a time to a warm, idle runner; from
  the platform accepting the request (``submitted_at``) to the runner starting the
  agent (the ``started_at`` it reports).
- pool throughput: a backlog of ``echo`` executions queued first, then drained by two
  runners; executions per second from the first start (its record's time) until the
  session's status shows every one recorded final (read every 50 ms).

Prefect rows, on a Prefect server started for the run (SQLite):
- ``run_deployment`` on a process work pool with a worker polling every second:
  from the call to the flow run's RUNNING start time.
- task runs per second in one flow (a trivial task called in a loop).

``python -m bench.dispatch`` prints the table; ``python -m bench`` includes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.serving import wait_serving
from limit_graph.deployments.server import PrefectServer, free_port, prefect_env

ROOT = Path(__file__).resolve().parents[1]
LIMIT = str(Path(sys.executable).parent / "limit")
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
RUNNER_KEY = "bench-runner-key-0123456789abcdef"


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def platform_server(
    workdir: Path, prefect_api_url: str | None = None, *, config: Path | None = None
) -> Iterator[str]:
    """``limit up --no-prefect`` in ``workdir``; with ``prefect_api_url``, its mirror on;
    with ``config``, that settings file.  Two in one ``workdir`` share its store."""
    port = free_port()
    env = {
        **os.environ,
        "LIMIT_HOME": str(workdir / "home"),
        "LIMIT_ADMIN_API_KEY": ADMIN_KEY,
        "LIMIT_RUNNER_API_KEY": RUNNER_KEY,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    env.pop("PREFECT_API_URL", None)
    env.pop("LIMIT_CONFIG", None)
    if config is not None:
        env["LIMIT_CONFIG"] = str(config)
    if prefect_api_url is not None:
        env["PREFECT_API_URL"] = prefect_api_url
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as printed:  # not a pipe: one nobody reads fills up
        process = subprocess.Popen(
            [LIMIT, "up", "--no-prefect", "--bind", f"127.0.0.1:{port}"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=printed,
        )
        try:
            wait_serving(process, port, printed, "limit up")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=60)


@contextmanager
def runners_for(
    url: str, pool: str, count: int, concurrency: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    started = [
        subprocess.Popen(
            [LIMIT, "runner", "--pool", pool, "--api-url", url, "--api-key", RUNNER_KEY,
             "--concurrency", str(concurrency)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]  # fmt: skip
    try:
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=60)


def wait_runners(
    client: httpx.Client, count: int, kinds: tuple[str, ...] = ("remote",), timeout_s: float = 60
) -> None:
    """Until ``count`` runners serve the pool of each backend kind in ``kinds``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        backends = client.get("/health").json()["checks"]["backends"].values()
        pools = dict.fromkeys(kinds, 0)
        for backend in backends:
            if backend["kind"] in pools:
                pools[backend["kind"]] = max(pools[backend["kind"]], backend["pool_runners"])
        if min(pools.values()) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{count} runners per pool ({', '.join(kinds)}) did not connect")


def measure_platform(workdir: Path, latency_n: int, backlog: int) -> dict[str, Any]:
    """One API process, its queue in memory."""
    with platform_server(workdir) as url:
        return _measure(url, url, latency_n, backlog)


def measure_shared(
    workdir: Path, latency_n: int, backlog: int, database_url: str | None = None
) -> dict[str, Any]:
    """Two API processes on one store sharing the queue (a SQLite file, or the Postgres
    database at ``database_url``): the work is submitted to the first, the runners
    claim from the second."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "shared.toml"
    storage = f'[storage]\nurl = "{database_url}"\n' if database_url else ""
    config.write_text(f'[dispatch]\nqueue = "shared"\n{storage}')
    with (
        platform_server(workdir, config=config) as submit_url,
        platform_server(workdir, config=config) as runner_url,
    ):
        measured = _measure(submit_url, runner_url, latency_n, backlog)
    measured["store"] = "Postgres" if database_url else "SQLite"
    return measured


@contextmanager
def bench_database() -> Iterator[str | None]:
    """A fresh Postgres database on this machine's server for the run, dropped after;
    ``None`` when no server answers (``POSTGRES_URL``, else the local default)."""
    import psycopg

    base = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"limit_bench_{os.getpid()}"
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield (
                base.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
                + f"/{name}"
            )
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _measure(url: str, runner_url: str, latency_n: int, backlog: int) -> dict[str, Any]:
    with httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=120) as client:
        session_id = client.post("/sessions", json={}).json()["id"]
        execute = f"/sessions/{session_id}/execute"
        with runners_for(runner_url, "remote", 1, 16):
            wait_runners(client, 1)
            latencies: list[float] = []
            for n in range(latency_n):
                body = {"agent": "echo", "inputs": {"n": n}, "backend": "remote", "wait_s": 10}
                done = client.post(execute, json=body).json()
                assert done["state"] == "succeeded", done
                started = _stamp(done["started_at"]) - _stamp(done["submitted_at"])
                latencies.append(started.total_seconds())
                time.sleep(0.01)
        ids = asyncio.run(_submit_backlog(url, session_id, backlog))
        with runners_for(runner_url, "remote", 2, 64):
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                counts = client.get(f"/sessions/{session_id}/status").json()["counts"]
                if counts["queued"] == 0 and counts["running"] == 0:
                    break
                time.sleep(0.05)
            recorded = datetime.now(UTC)  # every final record committed (within 50 ms)
        first_start, last_finish, succeeded = None, None, 0
        cursor: str | None = None
        wanted = set(ids)
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = client.get(f"/sessions/{session_id}/results", params=params).json()
            for item in page["items"]:
                if item["id"] not in wanted:
                    continue
                succeeded += item["state"] == "succeeded"
                start, finish = _stamp(item["started_at"]), _stamp(item["finished_at"])
                first_start = min(first_start or start, start)
                last_finish = max(last_finish or finish, finish)
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert first_start is not None and last_finish is not None
    # To the last final record, not to the last finish a runner reported: a runner's
    # results can run ahead of what the platform has recorded.
    window = (recorded - first_start).total_seconds()
    return {
        "latency_p50_s": _percentile(latencies, 0.5),
        "latency_p99_s": _percentile(latencies, 0.99),
        "latency_n": len(latencies),
        "throughput": succeeded / window,
        "succeeded": succeeded,
        "backlog": backlog,
        "window_s": window,
        "ran_s": (last_finish - first_start).total_seconds(),
    }


async def _submit_backlog(url: str, session_id: str, count: int) -> list[str]:
    limits = httpx.Limits(max_connections=16)
    ids: list[str] = []
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": ADMIN_KEY}, limits=limits, timeout=120
    ) as client:

        async def submit(n: int) -> None:
            body = {"agent": "echo", "inputs": {"n": n}, "backend": "remote", "wait_s": 0}
            response = await client.post(f"/sessions/{session_id}/execute", json=body)
            ids.append(response.json()["id"])

        for start in range(0, count, 256):
            await asyncio.gather(*(submit(n) for n in range(start, min(count, start + 256))))
    return ids


def measure_prefect(workdir: Path, deployment_runs: int, task_runs: int) -> dict[str, Any]:
    """Prefect's own paths, on a server of their own."""
    server = PrefectServer(workdir / "prefect", ui=False).start()
    env = prefect_env(workdir / "prefect", api_url=server.api_url)
    env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    try:
        script = (
            "import json, sys; from bench.native import measure; "
            f"print(json.dumps(measure({deployment_runs}, {task_runs})))"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-3000:])
        import json

        measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return measured
    finally:
        server.stop()


def rows(
    platform: dict[str, Any], prefect: dict[str, Any], shared: Sequence[dict[str, Any]] = ()
) -> list[str]:
    ms = 1000.0
    lines = [
        "| dispatch path | p50 ms | p99 ms | executions/s | vs Prefect |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| Prefect `run_deployment` → RUNNING (process worker, 1 s polling; "
        f"n={prefect['deployment_runs']}) | {prefect['deployment_p50_s'] * ms:,.0f} | "
        f"{prefect['deployment_p99_s'] * ms:,.0f} | | 1.00x (anchor) |",
        f"| platform accepted → running on a warm remote runner (n={platform['latency_n']}) | "
        f"{platform['latency_p50_s'] * ms:.1f} | {platform['latency_p99_s'] * ms:.1f} | | "
        f"{prefect['deployment_p50_s'] / platform['latency_p50_s']:,.0f}x faster at p50 |",
        f"| Prefect task runs in one flow (n={prefect['task_runs']}) | | | "
        f"{prefect['task_runs_per_s']:,.0f} | 1.00x (anchor) |",
        f"| platform remote pool, 2 runners, `echo` backlog of {platform['backlog']:,} | | | "
        f"{platform['throughput']:,.0f} | "
        f"{platform['throughput'] / prefect['task_runs_per_s']:.2f}x |",
    ]
    for run in shared:
        store = run["store"]
        lines += [
            f"| shared queue ({store}), 2 API processes: accepted by one → running on a runner "
            f"of the other (n={run['latency_n']}) | {run['latency_p50_s'] * ms:.1f} | "
            f"{run['latency_p99_s'] * ms:.1f} | | "
            f"{prefect['deployment_p50_s'] / run['latency_p50_s']:,.0f}x faster at p50 |",
            f"| shared queue ({store}), 2 API processes: backlog of {run['backlog']:,} submitted "
            f"to one, 2 runners on the other | | | {run['throughput']:,.0f} | "
            f"{run['throughput'] / prefect['task_runs_per_s']:.2f}x |",
        ]
    return lines


def measure_shared_all(workdir: Path, latency_n: int, backlog: int) -> list[dict[str, Any]]:
    """The shared queue on SQLite, and on Postgres where a server answers."""
    runs = [measure_shared(workdir / "sqlite", latency_n, backlog)]
    with bench_database() as url:
        if url is not None:
            runs.append(measure_shared(workdir / "postgres", latency_n, backlog, url))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch")
    parser.add_argument("--latency-n", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--deployment-runs", type=int, default=10)
    parser.add_argument("--task-runs", type=int, default=500)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="limit-bench-dispatch-"))
    platform = measure_platform(workdir / "platform", args.latency_n, args.backlog)
    shared = measure_shared_all(workdir / "shared", args.latency_n, args.backlog)
    prefect = measure_prefect(workdir, args.deployment_runs, args.task_runs)
    for line in rows(platform, prefect, shared):
        print(line)
    print(
        f"\nbacklog drained: {platform['succeeded']:,} succeeded in {platform['window_s']:.1f} s; "
        f"median {statistics.median([platform['throughput']]):,.0f}/s"
    )


if __name__ == "__main__":
    main()
