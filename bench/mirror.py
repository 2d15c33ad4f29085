"""The Prefect mirror under load: lag, draining, accounting, and session flow runs.

A real Prefect server (child process, SQLite) and the platform in this process, driven
through its services; the mirror runs in that process with the budget of the
settings (`[prefect] mirror_task_runs_per_s`).

- `measure_mirror`: about `rate` `echo` executions a second for `seconds`, spread over
  a few sessions; the mirror's lag sampled every 0.25 s; then the time until it has
  drained (its saved cursor at the ledger's end), and, by final state, the executions
  the platform holds against those Prefect accounts for (each task run read once, by
  id: a group's `count:` tag, else one).  Any difference, either way, is a failure: a
  FAIL row, and `python -m bench.mirror` exits 1.
- `measure_session_flow_runs`: sessions created as fast as the platform takes them,
  then at a steady rate; how long until each one's flow run exists in Prefect.

`python -m bench.mirror --seconds 10 --rate 200` prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from limit_graph.core.models import SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.executions import ExecuteCommand
from limit_graph.orchestration.mirror import CURSOR_KEY, NAMESPACE, PrefectMirror
from limit_graph.orchestration.mirror_views import executions_shown
from limit_graph.orchestration.platform import Platform

ADMIN = Principal("bench", "bench", frozenset({"admin"}))
SESSIONS = 4
TICK_S = 0.05
MAX_TICKS_BEHIND = 4
"""Executes launched in one tick at most, in ticks' worth of the rate."""
FINAL_STATES = ("succeeded", "failed", "timed_out", "cancelled")
DRAIN_TIMEOUT_S = 600.0
RECORD_TIMEOUT_S = 120.0


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


async def _drain(platform: Platform, timeout_s: float) -> float:
    """Seconds until the mirror's saved cursor is at the end of the ledger (the load is
    over, so the ledger no longer grows)."""
    started = time.monotonic()
    last = await platform.storage.ledger_size() - 1
    while True:
        saved = await platform.storage.get_value(NAMESPACE, CURSOR_KEY) or {}
        if saved.get("index", -1) >= last:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"the mirror did not drain in {timeout_s:.0f} s")
        await asyncio.sleep(0.05)


async def _executed(platform: Platform, sessions: list[uuid.UUID]) -> dict[str, int]:
    """The sessions' executions by final state, as the platform's store holds them."""
    found: Counter[str] = Counter(dict.fromkeys(FINAL_STATES, 0))
    for session_id in sessions:
        for (state, _), n in (await platform.storage.count_executions(session_id)).items():
            if state.is_final:
                found[state.value] += n
    return dict(found)


async def _accounted(api_url: str, flow_run_ids: list[uuid.UUID]) -> tuple[dict[str, int], int]:
    """Executions Prefect accounts for under these flow runs, by the platform state their
    task runs stand for, and the task runs doing it; each task run counted once (offset
    pages shift while the server records more)."""
    runs: dict[uuid.UUID, tuple[str | None, list[str]]] = {}
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
                    runs[run.id] = (run.state.name if run.state else None, run.tags)
                offset += len(page)
                if len(page) < 200:
                    break
    found: Counter[str] = Counter(dict.fromkeys(FINAL_STATES, 0))
    for state_name, tags in runs.values():
        state, n = executions_shown(state_name, tags)
        found[state] += n
    return dict(found), len(runs)


async def _account(
    api_url: str, flow_run_ids: list[uuid.UUID], executed: dict[str, int]
) -> tuple[dict[str, int], int]:
    """Prefect's accounting once it matches the platform's, or as it stands when it no
    longer can or after ``RECORD_TIMEOUT_S``.  The server records task runs a little
    after it accepted their events, and a task run read mid-write may show no state yet
    (``prefect:None``), so only more executions in a final state than the platform
    holds ends the wait early: a recorded final state does not go away."""
    deadline = time.monotonic() + RECORD_TIMEOUT_S
    while True:
        counted, task_runs = await _accounted(api_url, flow_run_ids)
        over = any(counted.get(state, 0) > n for state, n in executed.items())
        if counted == executed or over or time.monotonic() > deadline:
            return counted, task_runs
        await asyncio.sleep(0.5)


def mismatch(m: dict[str, Any]) -> str | None:
    """What differs between the platform's and Prefect's accounting, if anything."""
    executed, counted = m["executed"], m["counted_in_prefect"]
    if executed == counted:
        return None
    states = sorted(executed.keys() | counted.keys())
    return "; ".join(
        f"{state} {executed.get(state, 0):,} executed, {counted.get(state, 0):,} in Prefect"
        for state in states
        if executed.get(state, 0) != counted.get(state, 0)
    )


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
            per_tick = max(1, int(rate * TICK_S))
            while (elapsed := time.monotonic() - started) < seconds:
                # Behind the rate, catch up at most a few ticks at a time: a backlog
                # launched at once (tens of thousands of executes) measures only how
                # long they wait for a database connection.
                due = min(int(rate * (elapsed + TICK_S)) - launched, MAX_TICKS_BEHIND * per_tick)
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
            drain_s = await _drain(platform, DRAIN_TIMEOUT_S)
            stop.set()
            await sampler
            executed = await _executed(platform, sessions)
            flow_runs = [f for s in sessions if (f := mirror.flow_run_id(s)) is not None]
            counted, task_runs = await _account(url, flow_runs, executed)
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


def _accounting(m: dict[str, Any]) -> str:
    executed, counted = m["executed"], m["counted_in_prefect"]
    shown = [
        s for s in sorted(executed.keys() | counted.keys()) if executed.get(s) or counted.get(s)
    ]
    cells = ", ".join(f"{s} {executed.get(s, 0):,} / {counted.get(s, 0):,}" for s in shown)
    totals = f"{sum(executed.values()):,} / {sum(counted.values()):,} ({cells})"
    return totals if mismatch(m) is None else f"FAIL {totals}"


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
        ("executed / counted through Prefect, all final states", _accounting(m)),
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
    if (wrong := mismatch(m)) is not None:
        lines += ["", f"FAIL: the mirror's accounting is not exact: {wrong}."]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> tuple[str, str | None]:
    """Both measurements on a Prefect server of their own: the markdown table, and what
    differs between the platform's accounting and Prefect's (``None``: nothing)."""
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
    return _table(mirror, sessions), mismatch(mirror)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=1000, help="executions per second")
    parser.add_argument("--sessions", type=int, default=500, help="sessions in the burst")
    parser.add_argument("--paced-rate", type=float, default=30.0, help="sessions per second")
    parser.add_argument("--storage", choices=["database", "memory"], default="database")
    table, wrong = asyncio.run(run(parser.parse_args()))
    print(table)
    if wrong is not None:
        sys.exit(1)


if __name__ == "__main__":
    main()
