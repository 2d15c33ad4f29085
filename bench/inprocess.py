"""In-process timings: the orchestrator's execute for `echo`, and its anchor."""

from __future__ import annotations

import time
from pathlib import Path

from limit_graph.core.models import SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.executions import ExecuteCommand
from limit_graph.orchestration.platform import Platform

ADMIN = Principal("bench", "bench", frozenset({"admin"}))


async def measure_inprocess(home: Path, calls: int) -> dict[str, list[float]]:
    """Seconds per call, for each thing measured."""
    timings: dict[str, list[float]] = {}
    for kind in ("database", "memory"):
        settings = load_settings(environ={}, home=str(home / kind), storage__type=kind)
        platform = await Platform.start(settings)
        try:
            session = await platform.sessions.create(ADMIN, SessionConfig())
            command = ExecuteCommand("echo", {"n": 1})
            echo = platform.registry.get("echo")
            for _ in range(min(500, calls)):
                await platform.executions.execute(ADMIN, session.id, command)
            samples = []
            for _ in range(calls):
                started = time.perf_counter()
                await platform.executions.execute(ADMIN, session.id, command)
                samples.append(time.perf_counter() - started)
            label = "SQLite (durable)" if kind == "database" else "memory"
            timings[f"orchestrator execute `echo`, {label}"] = samples
            if kind == "memory":
                model = echo.input_model.model_validate({"n": 1})
                anchor = []
                for _ in range(calls):
                    started = time.perf_counter()
                    echo.fn(model)
                    anchor.append(time.perf_counter() - started)
                timings["anchor: `echo` function called directly"] = anchor
        finally:
            await platform.close()
    return timings
