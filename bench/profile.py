"""``python -m bench.profile``: where one local ``echo`` execute's time goes over HTTP.

Starts ``limit up`` (embedded SQLite, every governance check the platform runs by
default), drives ``POST /sessions/{id}/execute`` with the bench's load generator, and
samples the API process with py-spy meanwhile: only the thread holding the GIL, since a
thread waiting for it would count as busy at the frame it waits in.  Each sample is
filed under the layer of its innermost frame that belongs to one (:data:`LAYERS`, in
the order a request meets them); the table gives each layer's share of the samples and
its milliseconds per execute: the layers of ``docs/performance.md``.  ``--output DIR``
keeps the raw stacks (``stacks.txt``, py-spy's collapsed format) and a flame graph
(``flame.svg``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import httpx

from bench.loadgen import build_request, run_load
from bench.serving import serve
from limit_graph.deployments.server import free_port

__all__ = ["LAYERS", "layer_of", "main", "shares"]

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-admin-key-0123456789abcdef"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "ASGI server and middleware",
        (
            "uvicorn/",
            "h11/",
            "httptools",
            "starlette/middleware",
            "limit_graph/api/observability.py",
            "limit_graph/api/limits.py",
            "limit_graph/api/guard.py",
            "opentelemetry/",
            "prometheus_client/",
            "starlette/routing.py",
        ),
    ),
    ("request parsing", ("fastapi/dependencies/", "limit_graph/api/ijson.py", "json/decoder")),
    (
        "authentication and policy",
        (
            "limit_graph/api/deps.py",
            "limit_graph/governance/auth",
            "limit_graph/governance/tokens.py",
            "limit_graph/governance/authorizer.py",
            "limit_graph/governance/policy/",
            "cedarpy",
        ),
    ),
    (
        "pre-task checks",
        (
            "limit_graph/orchestration/admission.py",
            "limit_graph/governance/checks.py",
            "limit_graph/governance/compliance/",
            "limit_graph/governance/quotas.py",
            "limit_graph/governance/rates/",
            "limit_graph/orchestration/quota_gate.py",
            "limit_graph/orchestration/cache.py",
        ),
    ),
    ("the agent", ("limit_graph/tasks/",)),
    (
        "the record and its ledger entries",
        (
            "limit_graph/orchestration/recording.py",
            "limit_graph/storage/",
            "limit_graph/core/canonical.py",
            "limit_graph/core/ledger_leaf.py",
            "limit_graph/core/merkle/",
            "sqlalchemy/",
            "sqlite3",
        ),
    ),
    (
        "the answer",
        ("fastapi/routing.py:serialize_response", "fastapi/encoders.py", "starlette/responses.py"),
    ),
    ("events and lineage", ("limit_graph/orchestration/events.py", "lineage")),
]
"""Each layer and the frames (a substring of ``function (file:line)``) that are its."""

OTHER = "other (event loop, executors, the rest)"


def layer_of(stack: Iterable[str]) -> str:
    """The layer of a sample: that of its innermost frame that has one."""
    found = OTHER
    for frame in stack:
        for name, marks in LAYERS:
            if any(mark in frame for mark in marks):
                found = name
                break
    return found


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    frames = []
    for frame in stack.split(";"):
        function, _, where = frame.partition(" (")
        where = where.rstrip(")")
        frames.append(f"{where.rsplit(':', 1)[0]}:{function} ({where})")
    return frames, int(count)


def shares(collapsed: str) -> tuple[Counter[str], int]:
    """Samples by layer in py-spy's collapsed stacks, and their total."""
    by_layer: Counter[str] = Counter()
    for line in collapsed.splitlines():
        if not line.strip():
            continue
        frames, count = _frames(line)
        by_layer[layer_of(frames)] += count
    return by_layer, sum(by_layer.values())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds sampled")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--output", type=Path, help="keep stacks.txt and flame.svg here")
    args = parser.parse_args()
    spy = Path(sys.executable).parent / "py-spy"
    workdir = Path(tempfile.mkdtemp(prefix="limit-bench-profile-"))
    out = args.output or workdir
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LIMIT_HOME": str(workdir / "home"),
        "LIMIT_ADMIN_API_KEY": KEY,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    auth = {"X-API-Key": KEY}
    port = free_port()
    limit = str(Path(sys.executable).parent / "limit")
    body = json.dumps({"agent": "echo", "inputs": {"n": 1}}).encode()
    command = [limit, "up", "--no-prefect", "--bind", f"127.0.0.1:{port}"]
    with serve(command, port, env, workdir) as server:
        base = f"http://127.0.0.1:{port}"
        sid = httpx.post(f"{base}/sessions", json={"config": {}}, headers=auth).json()["id"]
        request = build_request("POST", "127.0.0.1", port, f"/sessions/{sid}/execute", auth, body)
        asyncio.run(run_load("127.0.0.1", port, [request], connections=8, duration_s=2))
        record = [str(spy), "record", "--pid", str(server.pid), "--rate", str(args.rate)]
        record += ["--duration", str(int(args.duration)), "--nonblocking", "--gil"]
        samplers = [
            subprocess.Popen(
                [*record, "--format", fmt, "--output", str(out / name)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for fmt, name in (("raw", "stacks.txt"), ("flamegraph", "flame.svg"))
        ]
        result = asyncio.run(
            run_load(
                "127.0.0.1",
                port,
                [request],
                connections=args.connections,
                duration_s=args.duration + 1,
                warmup_s=0.5,
            )
        )
        for sampler in samplers:
            sampler.wait(timeout=args.duration + 60)
    by_layer, total = shares((out / "stacks.txt").read_text())
    print(
        f"`POST /sessions/{{id}}/execute` (echo, local, sync): {result.rps:,.0f} requests/s, "
        f"p50 {result.percentile(0.5) * 1e3:.2f} ms over {args.connections} connections; "
        f"{total:,} samples of the API process holding the GIL at {args.rate}/s."
    )
    print()
    print("| layer | share of the samples holding the GIL | ms per execute |")
    print("| --- | ---: | ---: |")
    per_request_ms = 1e3 * (total / args.rate) / max(result.rps * args.duration, 1)
    for name, _ in [*LAYERS, (OTHER, ())]:
        share = by_layer[name] / total if total else 0.0
        print(f"| {name} | {share:.1%} | {share * per_request_ms:.3f} |")
    print()
    print(f"Stacks: {out / 'stacks.txt'}; flame graph: {out / 'flame.svg'}.")


if __name__ == "__main__":
    main()
