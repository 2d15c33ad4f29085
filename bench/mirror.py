"""The Prefect mirror under load: lag, draining, accounting, and session flow runs.

A real Prefect server (child process, SQLite) and the platform in this process, driven
through its services; the mirror runs in that process with the budget of the
settings (`[prefect] mirror_task_runs_per_s`).

- `measure_mirror`: about `rate` `echo` executions a second for `seconds`, spread over
  a few sessions; the mirror's lag sampled every 0.25 s; then the time until it has
  drained, and the executions Prefect accounts for (sum of `count:` tags, one per
  plain task run) against those executed.
- `measure_session_flow_runs`: sessions created as fast as the platform takes them,
  then at a steady rate; how long until each one's flow run exists in Prefect.

`python -m bench.mirror --seconds 10 --rate 200` prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from limit_graph.core.models import ExecutionState, SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.executions import ExecuteCommand
from limit_graph.orchestration.mirror import PrefectMirror
from limit_graph.orchestration.platform import Platform

ADMIN = Principal("bench", "bench", frozenset({"admin"}))
SESSIONS = 4
TICK_S = 0.05


@asynccontextmanager
async def _stack(
    home: Path, storage: str, api_url: str | None
) -> AsyncIterator[tuple[Platform, PrefectMirror]]:
    """A platform with a running mirror, on a Prefect server of its own unless given one."""
    server = None
    if api_url is None:
        server = await asyncio.to_thread(PrefectServer(home=home / "prefect", ui=False).start)
        api_url = server.api_url
    settings = load_settings(environ={}, home=str(home / "limit"), storage__type=storage)
    platform = await Platform.start(settings)
    mirror = PrefectMirror(
        platform.storage,
        api_url,
        telemetry=platform.telemetry,
        task_runs_per_s=settings.prefect.mirror_task_runs_per_s,
    )
    await mirror.start()
    try:
        yield platform, mirror
    finally:
        await mirror.close()
        await platform.close()
        if server is not None:
            await asyncio.to_thread(server.stop)


async def _sample(mirror: PrefectMirror, lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        lags.append(mirror.lag_s)
        await asyncio.sleep(0.25)


async def _drain(mirror: PrefectMirror, timeout_s: float) -> float:
    """Seconds until the mirror has nothing left to send."""
    started = time.monotonic()
    while mirror.backlog or mirror.lag_s:
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"the mirror did not drain in {timeout_s:.0f} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _accounted(api_url: str, flow_run_ids: list[uuid.UUID]) -> tuple[int, int]:
    """Executions Prefect accounts for under these flow runs, and the task runs doing it."""
    executions = runs = 0
    async with PrefectClient(api=api_url) as client:
        for flow_run_id in flow_run_ids:
            offset = 0
            while True:
                page = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                    limit=200,
                    offset=offset,
                )
                for run in page:
                    counts = [int(t[6:]) for t in run.tags if t.startswith("count:")]
                    executions += counts[0] if counts else 1
                runs += len(page)
                offset += len(page)
                if len(page) < 200:
                    break
    return executions, runs


async def measure_mirror_async(
    seconds: int = 60, rate: int = 1000, *, storage: str = "database", api_url: str | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="limit-bench-mirror-") as tmp:
        async with _stack(Path(tmp), storage, api_url) as (platform, mirror):
            url = mirror.api_url
            sessions = [
                (await platform.sessions.create(ADMIN, SessionConfig())).id for _ in range(SESSIONS)
            ]
            command = ExecuteCommand("echo", {"n": 1})
            lags: list[float] = []
            stop = asyncio.Event()
            sampler = asyncio.create_task(_sample(mirror, lags, stop))
            started = time.monotonic()
            launched = 0
            while (elapsed := time.monotonic() - started) < seconds:
                due = int(rate * (elapsed + TICK_S)) - launched
                await asyncio.gather(
                    *(
                        platform.executions.execute(ADMIN, sessions[i % SESSIONS], command)
                        for i in range(launched, launched + due)
                    )
                )
                launched += due
                await asyncio.sleep(max(0.0, started + launched / rate - time.monotonic()))
            driven_s = time.monotonic() - started
            backlog_at_end = mirror.backlog
            drain_s = await _drain(mirror, timeout_s=600)
            stop.set()
            await sampler
            executed = 0
            for session_id in sessions:
                counts = await platform.storage.count_executions(session_id)
                executed += sum(n for (s, _), n in counts.items() if s is ExecutionState.SUCCEEDED)
            flow_runs = [mirror.flow_run_id(s) for s in sessions]
            deadline = time.monotonic() + 120
            while True:  # the server records task runs a little after accepting them
                counted, task_runs = await _accounted(url, [f for f in flow_runs if f])
                if counted >= executed or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            registry = platform.telemetry.registry
            created = {
                kind: int(
                    registry.get_sample_value("limit_mirror_task_runs_total", {"kind": kind}) or 0
                )
                for kind in ("single", "grouped")
            }
    return {
        "seconds": seconds,
        "rate_target": rate,
        "rate_achieved": round(launched / driven_s, 1),
        "executed": executed,
        "lag_max_s": round(max(lags, default=0.0), 2),
        "lag_p50_s": round(statistics.median(lags) if lags else 0.0, 2),
        "backlog_at_end": backlog_at_end,
        "drain_s": round(drain_s, 2),
        "counted_in_prefect": counted,
        "task_runs_in_prefect": task_runs,
        "task_runs_created": created,
    }


async def measure_session_flow_runs_async(
    n: int = 500,
    *,
    paced_rate: float = 30.0,
    paced_s: float = 10.0,
    storage: str = "database",
    api_url: str | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="limit-bench-sessions-") as tmp:
        async with _stack(Path(tmp), storage, api_url) as (platform, mirror):
            burst_started = time.monotonic()
            burst = await asyncio.gather(
                *(platform.sessions.create(ADMIN, SessionConfig()) for _ in range(n))
            )
            create_s = time.monotonic() - burst_started
            burst_waits = await _flow_run_waits(mirror, {s.id: burst_started for s in burst}, n)
            drained_s = max(burst_waits)
            created: dict[uuid.UUID, float] = {}
            paced = int(paced_rate * paced_s)
            watcher = asyncio.create_task(_flow_run_waits(mirror, created, paced))
            paced_started = time.monotonic()
            for i in range(paced):
                await asyncio.sleep(max(0.0, paced_started + i / paced_rate - time.monotonic()))
                session = await platform.sessions.create(ADMIN, SessionConfig())
                created[session.id] = time.monotonic()
            waits = await watcher
    waits.sort()
    return {
        "burst_sessions": n,
        "burst_create_per_s": round(n / create_s, 1),
        "burst_flow_runs_s": round(drained_s, 2),
        "burst_flow_runs_per_s": round(n / drained_s, 1),
        "paced_rate": paced_rate,
        "paced_sessions": len(waits),
        "paced_wait_p50_s": round(statistics.median(waits), 3),
        "paced_wait_p95_s": round(waits[int(0.95 * (len(waits) - 1))], 3),
        "paced_wait_max_s": round(waits[-1], 3),
    }


async def _flow_run_waits(
    mirror: PrefectMirror, created: dict[uuid.UUID, float], expected: int
) -> list[float]:
    """Seconds from each session's creation until Prefect had created its flow run (the
    mirror learns the id from Prefect's answer), watched every 10 ms while ``created``
    fills up to ``expected`` sessions."""
    seen: dict[uuid.UUID, float] = {}
    deadline = time.monotonic() + 600
    while len(seen) < expected:
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError("flow runs missing after 600 s")
        for session_id in created.keys() - seen.keys():
            if mirror.flow_run_id(session_id) is not None:
                seen[session_id] = now
        await asyncio.sleep(0.01)
    return [seen[s] - created[s] for s in created]


def measure_mirror(seconds: int = 60, rate: int = 1000, **options: Any) -> dict[str, Any]:
    return asyncio.run(measure_mirror_async(seconds, rate, **options))


def measure_session_flow_runs(n: int = 500, **options: Any) -> dict[str, Any]:
    return asyncio.run(measure_session_flow_runs_async(n, **options))


def _table(m: dict[str, Any], s: dict[str, Any]) -> str:
    made = m["task_runs_created"]
    rows = [
        (
            "executions/s driven (target / achieved)",
            f"{m['rate_target']:,} / {m['rate_achieved']:,}",
        ),
        ("mirror lag max / p50 (s)", f"{m['lag_max_s']} / {m['lag_p50_s']}"),
        ("backlog at end of load (entries)", f"{m['backlog_at_end']:,}"),
        ("time to drain after load (s)", f"{m['drain_s']}"),
        ("executed / counted through Prefect", f"{m['executed']:,} / {m['counted_in_prefect']:,}"),
        ("task runs created (single / grouped)", f"{made['single']:,} / {made['grouped']:,}"),
        (f"{s['burst_sessions']} sessions at once: created per s", f"{s['burst_create_per_s']:,}"),
        (
            "... all their flow runs after (s) / per s",
            f"{s['burst_flow_runs_s']} / {s['burst_flow_runs_per_s']}",
        ),
        (
            f"flow run wait at {s['paced_rate']:g} sessions/s, p50 / p95 / max (s)",
            f"{s['paced_wait_p50_s']} / {s['paced_wait_p95_s']} / {s['paced_wait_max_s']}",
        ),
    ]
    lines = ["| Prefect mirror | value |", "| --- | ---: |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    """Both measurements on a Prefect server of their own; the markdown table."""
    with tempfile.TemporaryDirectory(prefix="limit-bench-prefect-") as tmp:
        server = await asyncio.to_thread(PrefectServer(home=Path(tmp), ui=False).start)
        try:
            mirror = await measure_mirror_async(
                args.seconds, args.rate, storage=args.storage, api_url=server.api_url
            )
            sessions = await measure_session_flow_runs_async(
                args.sessions,
                paced_rate=args.paced_rate,
                storage=args.storage,
                api_url=server.api_url,
            )
        finally:
            await asyncio.to_thread(server.stop)
    return _table(mirror, sessions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=1000, help="executions per second")
    parser.add_argument("--sessions", type=int, default=500, help="sessions in the burst")
    parser.add_argument("--paced-rate", type=float, default=30.0, help="sessions per second")
    parser.add_argument("--storage", choices=["database", "memory"], default="database")
    print(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
