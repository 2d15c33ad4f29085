"""Several API processes as one platform, against one: the local ``echo`` execute over
HTTP from ``limit up`` with ``[server] workers = 1`` and ``= 2`` on one Postgres
database (and on one SQLite file), driven by the same load generator; the anchor is
the bare FastAPI POST under uvicorn with as many worker processes.

The target: two API processes on Postgres serve at least 1.6x the executions per
second of one.  The machine has two cores, which the load generator shares with the
servers, so the rows say how close the stack comes here, not what more cores give.

``python -m bench.replicas`` prints the table; ``python -m bench`` includes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import httpx

from bench.dispatch import bench_database
from bench.loadgen import LoadResult, build_request, median_run
from bench.serving import serve
from limit_graph.deployments.server import free_port

ROOT = Path(__file__).resolve().parents[1]
LIMIT = str(Path(sys.executable).parent / "limit")
KEY = "bench-admin-key-0123456789abcdef"
BODY = json.dumps({"agent": "echo", "inputs": {"n": 1}}).encode()


def _drive(port: int, path: str, headers: dict[str, str], args: argparse.Namespace) -> LoadResult:
    request = build_request("POST", "127.0.0.1", port, path, headers, BODY)
    return median_run(
        port,
        [request],
        repeat=args.repeat,
        connections=args.connections,
        duration_s=args.duration,
        warmup_s=args.warmup,
    )


def measure_bare(workers: int, args: argparse.Namespace) -> LoadResult:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
        "--workers", str(workers),
    ]  # fmt: skip
    with serve(command, port, dict(os.environ), ROOT):
        return _drive(port, "/echo", {}, args)


def measure_platform(
    workdir: Path, workers: int, database_url: str | None, args: argparse.Namespace
) -> LoadResult:
    """``limit up`` with ``workers`` API processes on ``database_url`` (else SQLite in
    ``workdir``); runs in one ``workdir`` share its home (the store's keys are there)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"limit-{workers}.toml"
    storage = f'[storage]\nurl = "{database_url}"\n' if database_url else ""
    config.write_text(f"[server]\nworkers = {workers}\n{storage}")
    env = {
        **os.environ,
        "LIMIT_HOME": str(workdir / "home"),
        "LIMIT_ADMIN_API_KEY": KEY,
        "LIMIT_CONFIG": str(config),
        "LOG_LEVEL": "WARNING",
    }
    for name in ("DATABASE_URL", "PREFECT_API_URL"):
        env.pop(name, None)
    port = free_port()
    command = [LIMIT, "up", "--no-prefect", "--bind", f"127.0.0.1:{port}"]
    auth = {"X-API-Key": KEY}
    with serve(command, port, env, workdir):
        base = f"http://127.0.0.1:{port}"
        session = httpx.post(f"{base}/sessions", json={"config": {}}, headers=auth, timeout=30)
        session.raise_for_status()
        return _drive(port, f"/sessions/{session.json()['id']}/execute", auth, args)


def _row(name: str, result: LoadResult, anchor: LoadResult | None, what: str) -> str:
    ratio = f"{result.rps / anchor.rps:.2f}x {what}" if anchor else "1.00x (anchor)"
    return (
        f"| {name} | {result.rps:,.0f} | {result.percentile(0.5) * 1000:.2f} | "
        f"{result.percentile(0.99) * 1000:.2f} | {ratio} | {result.errors} |"
    )


def measure_all(workdir: Path, args: argparse.Namespace) -> list[str]:
    """The table's rows: the bare anchors, then the platform on Postgres and SQLite."""
    bare = {n: measure_bare(n, args) for n in (1, 2)}
    lines = [
        "| API processes: local `echo` execute | requests/s | p50 ms | p99 ms | ratio | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        _row("bare FastAPI `POST /echo`, 1 uvicorn worker", bare[1], None, ""),
        _row("bare FastAPI `POST /echo`, 2 uvicorn workers", bare[2], bare[1], "of 1 worker"),
    ]
    with bench_database() as url:
        stores: list[tuple[str, str | None]] = [("SQLite", None)]
        if url is not None:
            stores.insert(0, ("Postgres", url))
        else:
            lines.append("| (no Postgres server answered: its rows are left out) | | | | | |")
        for name, database_url in stores:
            one = measure_platform(workdir / name, 1, database_url, args)
            two = measure_platform(workdir / name, 2, database_url, args)
            lines.append(_row(f"platform on {name}, 1 API process", one, None, ""))
            lines.append(
                _row(
                    f"platform on {name}, 2 API processes (target >= 1.6x on Postgres)",
                    two,
                    one,
                    "of 1 process",
                )
            )
    return lines


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    return parser.parse_args(argv)


def main() -> None:
    args = arguments()
    workdir = Path(tempfile.mkdtemp(prefix="limit-replicas-"))
    for line in measure_all(workdir, args):
        print(line, flush=True)


if __name__ == "__main__":
    main()
