"""`make bench` / `limit bench`: the platform against its anchors, in one run.

HTTP: the platform (`limit up`, embedded SQLite) and a bare FastAPI app with one
pydantic POST endpoint, both under uvicorn with the same settings, driven by the same
load generator.  In-process: the orchestrator's execute call for `echo` on the local
backend, durable writes included.  Then one API process against two on Postgres and
on SQLite (``bench/replicas.py``), recovery from faults (``bench/faults.py``) and five
minutes of mixed load (``bench/soak.py``; ``--soak SECONDS``, 0 to skip it).  The
ledger's benches (``bench/ledger``: append, whole-ledger verification, proofs, what it
costs an execute) close the run
(``--ledger quick`` for a smaller one, ``off`` to skip them).  Prints a markdown table
and writes it to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import auth_overhead, pipeline_overhead, workflow_validation
from bench import authorization as authorization_bench
from bench import data_quality as data_quality_bench
from bench import dispatch as dispatch_bench
from bench import faults as faults_bench
from bench import ledger as ledger_bench
from bench import mirror as mirror_bench
from bench import quantum as quantum_bench
from bench import replicas as replicas_bench
from bench import soak as soak_bench
from bench import workflows as workflows_bench
from bench.inprocess import measure_inprocess
from bench.loadgen import LoadResult, build_request, median_run
from bench.serving import serve
from limit_graph.deployments.server import PrefectServer, free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-admin-key-0123456789abcdef"


def drive(port: int, requests: list[bytes], args: argparse.Namespace) -> LoadResult:
    """The median-throughput run of ``args.repeat`` runs."""
    return median_run(
        port,
        requests,
        repeat=args.repeat,
        connections=args.connections,
        duration_s=args.duration,
        warmup_s=args.warmup,
    )


def row(name: str, result: LoadResult, anchor: LoadResult | None) -> str:
    ratio = f"{result.rps / anchor.rps:.2f}x" if anchor and anchor.rps else "1.00x (anchor)"
    errors = f"{result.errors}" if result.errors else "0"
    return (
        f"| {name} | {result.rps:,.0f} | {result.percentile(0.5) * 1000:.2f} | "
        f"{result.percentile(0.99) * 1000:.2f} | {ratio} | {errors} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the median is kept")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--inprocess-calls", type=int, default=5000)
    parser.add_argument("--latency-n", type=int, default=200, help="dispatch latency samples")
    parser.add_argument("--backlog", type=int, default=20_000, help="executions drained")
    parser.add_argument("--deployment-runs", type=int, default=10)
    parser.add_argument("--task-runs", type=int, default=500)
    parser.add_argument("--mirror-seconds", type=int, default=60)
    parser.add_argument("--mirror-rate", type=int, default=1000, help="executions per second")
    parser.add_argument("--sessions", type=int, default=500, help="sessions in the burst")
    parser.add_argument("--paced-rate", type=float, default=30.0, help="sessions per second")
    parser.add_argument("--quantum-repeat", type=int, default=5)
    parser.add_argument("--quantum-small", type=int, default=500, help="small circuits run")
    parser.add_argument(
        "--no-prefect", action="store_true", help="skip the rows that need a Prefect server"
    )
    parser.add_argument(
        "--ledger",
        choices=[*sorted(ledger_bench.SIZES), "off"],
        default="full",
        help="the ledger's benches at this size (quick: about a minute)",
    )
    parser.add_argument(
        "--soak", type=float, default=300.0, help="seconds of the mixed-load soak (0: skip it)"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="limit-bench-"))
    env = {
        **os.environ,
        "LIMIT_HOME": str(workdir / "home"),
        "LIMIT_ADMIN_API_KEY": KEY,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    auth = {"X-API-Key": KEY}
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"# LIMIT-Graph bench ({time.strftime('%Y-%m-%d %H:%M:%S')})")
    say("")
    say(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.connections} connections, {args.repeat} x {args.duration:.0f} s per row "
        "(median run), load generator on the same cores."
    )
    say("")
    say("| endpoint | requests/s | p50 ms | p99 ms | vs bare POST | errors |")
    say("| --- | ---: | ---: | ---: | ---: | ---: |")

    bare_port = free_port()
    bare_cmd = [
        sys.executable, "-m", "uvicorn", "bench.bare_app:app",
        "--host", "127.0.0.1", "--port", str(bare_port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    body = json.dumps({"agent": "echo", "inputs": {"n": 1}}).encode()
    with serve(bare_cmd, bare_port, env, ROOT):
        bare = drive(
            bare_port, [build_request("POST", "127.0.0.1", bare_port, "/echo", {}, body)], args
        )
        bare_get = drive(
            bare_port, [build_request("GET", "127.0.0.1", bare_port, "/health", {})], args
        )
    durable_port = free_port()
    durable_cmd = [*bare_cmd[:3], "bench.durable_app:app", *bare_cmd[4:]]
    durable_cmd[durable_cmd.index(str(bare_port))] = str(durable_port)
    durable_env = {**env, "LIMIT_BENCH_DB": str(workdir / "durable-anchor.db")}
    with serve(durable_cmd, durable_port, durable_env, ROOT):
        durable = drive(
            durable_port,
            [build_request("POST", "127.0.0.1", durable_port, "/echo", {}, body)],
            args,
        )
    say(row("bare FastAPI `POST /echo`", bare, None))
    say(row("bare FastAPI `GET /health`", bare_get, bare))
    say(
        row(
            "anchor: minimal durable FastAPI `POST /echo` (record + chained entry, "
            "group-committed to SQLite)",
            durable,
            bare,
        )
    )

    port = free_port()
    limit = str(Path(sys.executable).parent / "limit")
    with serve([limit, "up", "--no-prefect", "--bind", f"127.0.0.1:{port}"], port, env, workdir):
        base = f"http://127.0.0.1:{port}"
        sid = httpx.post(f"{base}/sessions", json={"config": {}}, headers=auth).json()["id"]
        health = drive(port, [build_request("GET", "127.0.0.1", port, "/health", {})], args)
        created = drive(
            port,
            [build_request("POST", "127.0.0.1", port, "/sessions", auth, b'{"config": {}}')],
            args,
        )
        execute = drive(
            port,
            [build_request("POST", "127.0.0.1", port, f"/sessions/{sid}/execute", auth, body)],
            args,
        )
        check = httpx.get(f"{base}/sessions/{sid}/status", headers=auth).json()["counts"]
    mirrored: LoadResult | None = None
    if not args.no_prefect:
        mirror_port = free_port()
        with PrefectServer(workdir / "prefect-http", ui=False) as prefect_server:
            mirror_env = {**env, "PREFECT_API_URL": prefect_server.api_url}
            mirror_env["LIMIT_HOME"] = str(workdir / "home-mirror")
            command = [limit, "up", "--no-prefect", "--bind", f"127.0.0.1:{mirror_port}"]
            with serve(command, mirror_port, mirror_env, workdir):
                mirrored = drive(
                    mirror_port,
                    [
                        build_request(
                            "POST", "127.0.0.1", mirror_port, "/sessions", auth, b'{"config": {}}'
                        )
                    ],
                    args,
                )
    say(row("platform `GET /health`", health, bare))
    say(row("platform `POST /sessions`", created, bare))
    if mirrored is not None:
        say(row("platform `POST /sessions`, Prefect mirror on", mirrored, bare))
    say(row("platform `POST /sessions/{id}/execute` (echo, local, sync)", execute, bare))
    say("")
    say(
        f"The platform's execute is {execute.rps / durable.rps:.2f}x the minimal durable app "
        f"(target >= 0.8x) and {execute.rps / bare.rps:.2f}x the bare POST (target >= 0.6x)."
    )
    say("")
    say(f"Executions recorded as succeeded during the run: {check['succeeded']:,}.")
    say("")
    for line in replicas_bench.measure_all(workdir / "replicas", args):
        say(line)

    calls = asyncio.run(measure_inprocess(workdir / "inprocess", args.inprocess_calls))
    say("")
    say("| in-process call | p50 µs | p99 µs | mean µs |")
    say("| --- | ---: | ---: | ---: |")
    for name, samples in calls.items():
        ordered = sorted(samples)
        say(
            f"| {name} | {ordered[len(ordered) // 2] * 1e6:,.0f} | "
            f"{ordered[int(len(ordered) * 0.99)] * 1e6:,.0f} | "
            f"{statistics.fmean(ordered) * 1e6:,.0f} |"
        )
    say("")
    for line in quantum_bench.rows(
        quantum_bench.measure(workdir / "quantum", args.quantum_repeat, args.quantum_small)
    ):
        say(line)
    mirror_wrong: str | None = None
    if not args.no_prefect:
        say("")
        platform_rows = dispatch_bench.measure_platform(
            workdir / "dispatch", args.latency_n, args.backlog
        )
        shared_rows = dispatch_bench.measure_shared_all(
            workdir / "dispatch-shared", args.latency_n, args.backlog
        )
        prefect_rows = dispatch_bench.measure_prefect(
            workdir / "native", args.deployment_runs, args.task_runs
        )
        for line in dispatch_bench.rows(platform_rows, prefect_rows, shared_rows):
            say(line)
        say("")
        mirror_args = argparse.Namespace(
            seconds=args.mirror_seconds,
            rate=args.mirror_rate,
            sessions=args.sessions,
            paced_rate=args.paced_rate,
            storage="database",
        )
        table, mirror_wrong = asyncio.run(mirror_bench.run(mirror_args))
        say(table)
        say("")
        with PrefectServer(workdir / "prefect-workflows", ui=False) as workflow_prefect:
            ours = workflows_bench.measure_platform(
                workdir / "workflows", workflow_prefect.api_url, args.repeat
            )
            theirs = workflows_bench.measure_prefect(workflow_prefect.api_url, args.repeat)
        for line in workflows_bench.rows(ours, theirs):
            say(line)
    say("")
    for line in workflow_validation.rows(workflow_validation.measure(1000, 20), 20):
        say(line)
    say("")
    decisions = [authorization_bench.measure() for _ in range(3)]
    for line in authorization_bench.rows(authorization_bench.median_of(decisions), 3):
        say(line)
    say("")
    overhead = asyncio.run(auth_overhead.measure(workdir / "auth-overhead", args.inprocess_calls))
    for line in auth_overhead.rows(overhead):
        say(line)
    say("")
    pipeline = asyncio.run(
        pipeline_overhead.measure(workdir / "pipeline-overhead", args.inprocess_calls)
    )
    for line in pipeline_overhead.rows(pipeline):
        say(line)
    say("")
    for line in data_quality_bench.rows(data_quality_bench.measure(), 100_000, 21):
        say(line)
    say("")
    fault_rows = faults_bench.measure_all(workdir / "faults")
    for line in fault_rows:
        say(line)
    soak_ok = True
    if args.soak > 0:
        say("")
        report = soak_bench.run(args.soak, workdir / "soak")
        soak_ok = report.ok
        for line in soak_bench.rows(report):
            say(line)
    if args.ledger != "off":
        say("")
        ledger_bench.run(workdir / "ledger", ledger_bench.SIZES[args.ledger], say)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten to {results / 'latest.md'}")
    if mirror_wrong is not None:
        sys.exit(f"FAIL: the Prefect mirror's accounting is not exact: {mirror_wrong}")
    if any("FAIL" in line for line in fault_rows):
        sys.exit("FAIL: a fault lost, duplicated or failed to answer work (the faults table)")
    if not soak_ok:
        sys.exit("FAIL: the soak lost or duplicated work, its ledger or its RSS missed a target")


if __name__ == "__main__":
    main()
