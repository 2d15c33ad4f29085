"""Prefect's own anchors, run in a process whose PREFECT_API_URL names a fresh server.

``measure(deployment_runs, task_runs)``: the latency of ``run_deployment`` until the
flow run is RUNNING on a process worker polling every second, and the rate of
trivial task runs inside one flow.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments import run_deployment
from prefect.types.entrypoint import EntrypointType
from prefect.workers.process import ProcessWorker

POOL = "bench-native"


@task(persist_result=False)
def nothing(n: int) -> int:
    return n


@flow(name="bench-noop", persist_result=False)
def noop() -> None:
    """Does nothing: what is measured is how long Prefect takes to start it."""


@flow(name="bench-task-runs", persist_result=False)
def task_runs(n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        nothing(i)
    return n / (time.perf_counter() - started)


async def _deployment_latencies(runs: int) -> list[float]:
    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(
                name=POOL,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )
    deployment = await noop.ato_deployment(
        name="noop", work_pool_name=POOL, entrypoint_type=EntrypointType.MODULE_PATH
    )
    await deployment.aapply()
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL],
        env={**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latencies: list[float] = []
    try:
        async with get_client() as client:
            for _ in range(runs + 1):  # the first run warms the worker up; not counted
                called = datetime.now(UTC)
                run: Any = await run_deployment("bench-noop/noop", timeout=0)
                while True:
                    current = await client.read_flow_run(run.id)
                    if current.start_time is not None:
                        latencies.append((current.start_time - called).total_seconds())
                        break
                    await asyncio.sleep(0.05)
                while not (await client.read_flow_run(run.id)).state.is_final():  # type: ignore[union-attr]
                    await asyncio.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(60)
    return latencies[1:]


def measure(deployment_runs: int, task_runs_n: int) -> dict[str, Any]:
    latencies = sorted(asyncio.run(_deployment_latencies(deployment_runs)))
    rate = task_runs(task_runs_n)
    return {
        "deployment_runs": len(latencies),
        "deployment_p50_s": latencies[len(latencies) // 2],
        "deployment_p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "task_runs": task_runs_n,
        "task_runs_per_s": rate,
    }
