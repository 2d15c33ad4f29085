"""Validating a 1,000-step workflow, against the issue's target of 100 ms.

Generated workflows, validated with the built-in agents (`validate_workflow`, the
check `POST /workflows/validate` and every run make before anything runs):

- a chain: 1,000 `sleep` steps, each wired to the one before by
  `${steps.PREV.outputs.slept_s}` (typed wiring checked against both schemas);
- a fan-out: one `echo` step and 999 `sleep` steps each taking an item of its list;
- the chain again as YAML text and as JSON text (reading included).

Medians of `--repeat` runs after a few warm-up runs.  ``python -m
bench.workflow_validation`` prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import yaml

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.workflows import validate_workflow

TARGET_MS = 100.0
WARMUP = 3


def _output(step: str, path: str) -> str:
    return "${steps." + step + ".outputs" + path + "}"


def chain(steps: int) -> dict[str, Any]:
    """``steps`` sleeps in a line, each sleeping as long as the one before."""
    first = {"id": "s0", "agent": "sleep", "inputs": {"seconds": 0}}
    rest = [
        {"id": f"s{i}", "agent": "sleep", "inputs": {"seconds": _output(f"s{i - 1}", ".slept_s")}}
        for i in range(1, steps)
    ]
    return {"name": "chain", "steps": [first, *rest]}


def fan_out(steps: int) -> dict[str, Any]:
    """One source step and ``steps - 1`` steps reading an item of its list each."""
    source = {"id": "source", "agent": "echo", "inputs": {"xs": "${params.xs}"}}
    leaves = [
        {"id": f"leaf{i}", "agent": "sleep", "inputs": {"seconds": _output("source", f".xs[{i}]")}}
        for i in range(steps - 1)
    ]
    params = {"xs": {"type": "array", "default": [0] * (steps - 1)}}
    return {"name": "fan-out", "params": params, "steps": [source, *leaves]}


def median_ms(run: Callable[[], object], repeat: int) -> float:
    for _ in range(WARMUP):
        run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def measure(steps: int, repeat: int) -> list[tuple[str, float]]:
    """(what, median ms) for each workflow measured."""
    registry = AgentRegistry.from_entry_points()
    linear, wide = chain(steps), fan_out(steps)
    as_yaml, as_json = yaml.safe_dump(linear, sort_keys=False), json.dumps(linear)
    cases: list[tuple[str, Any]] = [
        (f"chain of {steps:,} typed `sleep` steps (mapping)", linear),
        (f"fan-out: 1 `echo` step, {steps - 1:,} `sleep` steps (mapping)", wide),
        (f"the chain as YAML text ({len(as_yaml) / 1e3:,.0f} kB)", as_yaml),
        (f"the chain as JSON text ({len(as_json) / 1e3:,.0f} kB)", as_json),
    ]
    for _, source in cases:
        valid = validate_workflow(source, registry)
        assert len(valid.graph.order()) == steps
    return [
        (name, median_ms(lambda s=source: validate_workflow(s, registry), repeat))
        for name, source in cases
    ]


def rows(measured: list[tuple[str, float]], repeat: int) -> list[str]:
    lines = [
        f"| workflow validation (median of {repeat}) | ms | vs target {TARGET_MS:.0f} ms |",
        "| --- | ---: | ---: |",
    ]
    for name, ms in measured:
        verdict = "ok" if ms < TARGET_MS else "OVER"
        lines.append(f"| {name} | {ms:,.1f} | {ms / TARGET_MS:.2f}x ({verdict}) |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workflow_validation")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    for line in rows(measure(args.steps, args.repeat), args.repeat):
        print(line)


if __name__ == "__main__":
    main()
