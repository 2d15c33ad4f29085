"""Workflows against the same DAGs written as Prefect flows, on one Prefect server.

Platform rows: ``limit up --no-prefect`` (embedded SQLite) with ``PREFECT_API_URL`` set,
so its Prefect mirror shows every run on the bench's Prefect server; each workflow is
posted with ``wait_s`` and timed from the request to the answer (the run's end).
- a chain of 200 ``echo`` steps, each consuming its upstream's output;
- a fan-out: one step mapped over 1,000 items;
- warm remote steps: a chain of ``echo`` steps on the remote backend, one warm runner;
  from an upstream step's end (``finished_at``) to the next one's start.

Prefect rows, on the same server, in a child process (``PREFECT_API_URL``): the same
DAGs as ``@flow`` functions: 200 chained ``@task`` calls; ``.map`` over 1,000 items.

Validation of 1,000-step workflows: ``bench.workflow_validation``, in this process.

``python -m bench.workflows`` prints the table; ``python -m bench`` includes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench import workflow_validation as validation
from bench.dispatch import ADMIN_KEY, platform_server, runners_for, wait_runners
from limit_graph.deployments.server import PrefectServer

CHAIN = 200
FAN = 1000


def chain_spec(n: int, backend: str = "local") -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"id": "s0", "agent": "echo", "backend": backend, "inputs": {"n": 0}}
    ]
    for i in range(1, n):
        steps.append(
            {
                "id": f"s{i}",
                "agent": "echo",
                "backend": backend,
                "inputs": {"n": f"${{steps.s{i - 1}.outputs.n}}"},
            }
        )
    return {"name": f"chain-{n}", "max_parallel": 16, "steps": steps}


def fan_spec(n: int) -> dict[str, Any]:
    return {
        "name": f"fan-{n}",
        "max_parallel": 16,
        "steps": [
            {
                "id": "each",
                "agent": "echo",
                "map": {"over": list(range(n)), "as": "i"},
                "inputs": {"i": "${i}"},
            }
        ],
    }


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _run(client: httpx.Client, session_id: str, spec: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.post(
        f"/sessions/{session_id}/execute", json={"workflow": spec, "wait_s": 300}
    )
    elapsed = time.perf_counter() - started
    run = response.json()
    if response.status_code != 200 or run["state"] != "succeeded":
        raise RuntimeError(f"workflow {spec['name']} did not succeed: {response.text[:2000]}")
    return elapsed, run


def measure_platform(workdir: Path, prefect_url: str, repeat: int) -> dict[str, Any]:
    with (
        platform_server(workdir, prefect_url) as url,
        httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=600) as client,
    ):
        session_id = client.post("/sessions", json={}).json()["id"]
        _run(client, session_id, chain_spec(10))  # warm-up
        chain = [_run(client, session_id, chain_spec(CHAIN))[0] for _ in range(repeat)]
        fan = [_run(client, session_id, fan_spec(FAN))[0] for _ in range(repeat)]
        with runners_for(url, "remote", 1, 16):
            wait_runners(client, 1)
            _run(client, session_id, chain_spec(5, "remote"))  # warm the runner
            _, run = _run(client, session_id, chain_spec(50, "remote"))
            gaps = []
            previous: dict[str, Any] | None = None
            for step in run["steps"]:
                execution = client.get(
                    f"/sessions/{session_id}/executions/{step['execution_ids'][0]}"
                ).json()
                if previous is not None:
                    gap = _stamp(execution["started_at"]) - _stamp(previous["finished_at"])
                    gaps.append(gap.total_seconds())
                previous = execution
    return {"chain": chain, "fan": fan, "remote_gaps": gaps}


PREFECT_SIDE = """
import json, sys, time
from prefect import flow, task

@task(persist_result=False)
def echo(n):
    return n

@flow(name="bench-chain", persist_result=False)
def chain(n: int):
    value = 0
    for _ in range(n):
        value = echo(value)
    return value

@flow(name="bench-fan", persist_result=False)
def fan(n: int):
    return [f.result() for f in echo.map(list(range(n)))]

which, n = sys.argv[1], int(sys.argv[2])
chain(3)
started = time.perf_counter()
(chain if which == "chain" else fan)(n)
print(json.dumps({"elapsed_s": time.perf_counter() - started}))
"""


def measure_prefect(prefect_url: str, repeat: int) -> dict[str, list[float]]:
    env = {**os.environ, "PREFECT_API_URL": prefect_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    results: dict[str, list[float]] = {"chain": [], "fan": []}
    for which, n in (("chain", CHAIN), ("fan", FAN)):
        for _ in range(repeat):
            done = subprocess.run(
                [sys.executable, "-c", PREFECT_SIDE, which, str(n)],
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
                check=True,
            )
            results[which].append(json.loads(done.stdout.strip().splitlines()[-1])["elapsed_s"])
    return results


def rows(platform: dict[str, Any], prefect: dict[str, list[float]]) -> list[str]:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    lines = [
        "| workflow | platform s | Prefect flow s | platform / Prefect | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for key, label in (
        ("chain", f"chain of {CHAIN} `echo` steps (local)"),
        ("fan", f"fan-out of {FAN:,} `echo` map items (local)"),
    ):
        ours, theirs = median(platform[key]), median(prefect[key])
        lines.append(f"| {label} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f}x | ≤ 0.5x |")
    gaps = sorted(platform["remote_gaps"])
    p50 = gaps[len(gaps) // 2] * 1000
    p99 = gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))] * 1000
    lines += [
        "",
        "| measure | p50 ms | p99 ms | target |",
        "| --- | ---: | ---: | --- |",
        f"| warm remote steps: upstream end → next start ({len(gaps)} gaps) | {p50:.1f} | "
        f"{p99:.1f} | p50 < 20 ms |",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workflows")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the median is kept")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="limit-bench-workflows-"))
    with PrefectServer(workdir / "prefect", ui=False) as server:
        platform = measure_platform(workdir / "platform", server.api_url, args.repeat)
        prefect = measure_prefect(server.api_url, args.repeat)
    for line in [*rows(platform, prefect), "", *validation.rows(validation.measure(1000, 20), 20)]:
        print(line)


if __name__ == "__main__":
    main()
