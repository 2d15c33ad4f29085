"""What the soak saw and its report: the tables and the verdict of ``bench/soak.py``."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.soak_accounting import Accounting
from bench.soak_clients import Load
from bench.soak_procs import ProcessSeries

__all__ = ["RSS_TARGET", "Observed", "SoakReport", "rows"]

RSS_TARGET = 0.10
"""The API's RSS may grow less than this from the first minute to the end."""


@dataclass
class Observed:
    """What the soak saw while it ran and drained."""

    load: Load
    sample_times: list[float] = field(default_factory=list)
    drain_s: float = 0.0
    listed: dict[str, list[str]] = field(default_factory=dict)
    consistency: str = ""
    quotas: list[dict[str, Any]] = field(default_factory=list)
    busy_cores: float = 0.0
    load_average: tuple[float, float] = (0.0, 0.0)


@dataclass
class SoakReport:
    duration_s: float
    store: str
    processes: list[ProcessSeries]
    observed: Observed
    accounting: Accounting
    ledger_ok: bool
    ledger_detail: str
    runners_per_pool: int

    @property
    def api(self) -> list[ProcessSeries]:
        return [
            s for s in self.processes if s.name.startswith("API") or s.name.endswith("(supervisor)")
        ]

    @property
    def api_growth(self) -> float | None:
        """The largest growth of an API process from the first minute's reading to the end."""
        known = [g for g in (s.growth(1) for s in self.api) if g is not None]
        return max(known) if known else None

    @property
    def ok(self) -> bool:
        growth = self.api_growth
        return (
            not self.accounting.lost
            and not self.accounting.twice
            and self.ledger_ok
            and growth is not None
            and growth < RSS_TARGET
        )


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} %"


OPERATION_ORDER = (
    "POST /sessions",
    "POST /sessions/{id}/complete",
    "execute local echo",
    "execute remote echo (2 runners)",
    "execute quantum.sample on aer (2 runners)",
    "run workflow",
    "GET /sessions/{id}/results",
    "GET /sessions/{id}/executions/{eid}",
    "GET /sessions/{id}/status",
    "refused: circuit over max_qubits (422)",
    "refused: target not allowed (403)",
    "event delivered (stream lag)",
)


def _operation_rows(report: SoakReport) -> list[str]:
    lines = [
        "| operation | count | ops/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ops = report.observed.load.recorder.ops
    order = [n for n in OPERATION_ORDER if n in ops] + sorted(set(ops) - set(OPERATION_ORDER))
    for name in order:
        stats = ops[name]
        count = len(stats.latencies)
        rate = f"{stats.errors / count * 100:.2f} %" if count else "-"
        lines.append(
            f"| {name} | {count:,} | {count / report.duration_s:,.1f} | "
            f"{stats.percentile_ms(0.5):,.1f} | {stats.percentile_ms(0.99):,.1f} | "
            f"{stats.errors:,} ({rate}) |"
        )
    return lines


def _process_rows(report: SoakReport) -> list[str]:
    times = report.observed.sample_times
    first = times[1] if len(times) > 2 else 0.0
    lines = [
        f"| process | pid | start MiB | at {first:.0f} s MiB | end MiB | "
        f"growth {first:.0f} s → end | CPU % of a core |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for series in report.processes:
        cpu = series.cpu_s()
        lines.append(
            f"| {series.name} | {series.pid} | {_mib(series.rss_mib(0))} | "
            f"{_mib(series.rss_mib(1))} | {_mib(series.rss_mib(-1))} | "
            f"{_percent(series.growth(1))} | "
            f"{'-' if cpu is None else f'{cpu / report.duration_s * 100:.0f}'} |"
        )
    return lines


def _event_line(load: Load) -> str:
    accepted = load.accepted.executions
    seen = missed = twice = 0
    for watch in load.watches:
        wanted = [e for e, s in accepted.items() if s == watch.session_id]
        missed += sum(watch.finals[e] == 0 for e in wanted)
        twice += sum(n > 1 for n in watch.finals.values())
        seen += watch.events
    return (
        f"Event streams: {seen:,} events on {len(load.watches)} streams, "
        f"{sum(w.out_of_order for w in load.watches)} out of order or repeated, "
        f"{sum(w.reconnects for w in load.watches)} reconnects; of the watched sessions' "
        f"{sum(s in {w.session_id for w in load.watches} for s in accepted.values()):,} "
        f"accepted executions, {missed} final events missed, {twice} seen twice."
    )


def _summary(report: SoakReport) -> list[str]:
    seen, counted = report.observed, report.accounting
    accepted = seen.load.accepted
    growth = report.api_growth
    series = "; ".join(
        f"{s.name} {', '.join(_mib(s.rss_mib(n)) for n in range(len(s.samples)))}"
        for s in report.api
    )
    quota_text = "; ".join(
        f"{q['resource']} used {q['used']:,.0f}, {q['reserved']:,.0f} reserved"
        for q in seen.quotas
        if q["scope"] == "tenant:soak"
    )
    runs = Counter(accepted.run_states.values())
    runs["not ended"] = len(accepted.runs) - len(accepted.run_states)
    verdict = "meets" if growth is not None and growth < RSS_TARGET else "misses"
    return [
        f"API RSS at {', '.join(f'{t:.0f}' for t in seen.sample_times)} s: {series} MiB; "
        f"growth from the first minute's reading to the end {_percent(growth)} "
        f"(target < {RSS_TARGET * 100:.0f} %: {verdict}).",
        f"Machine: {seen.busy_cores:.2f} of {os.cpu_count()} cores busy during the load "
        f"(every process on it); load average {seen.load_average[0]:.1f} at the start, "
        f"{seen.load_average[1]:.1f} at the end.",
        "",
        f"Accepted: {counted.accepted:,} executions ({counted.from_workflows:,} of them steps "
        f"of {len(accepted.runs):,} workflow runs: "
        f"{', '.join(f'{n} {state}' for state, n in sorted(runs.items()) if n)}; "
        f"{accepted.answered_202:,} executes answered 202), drained in {seen.drain_s:.1f} s; "
        f"{counted.failed:,} ended failed, cancelled or timed out; {counted.not_final:,} not "
        f"final after the drain; {counted.retried:,} run again after a lease expired; "
        f"{counted.entries:,} execution entries in the ledger.",
        _event_line(seen.load),
        f"Quotas of tenant:soak after the drain: {quota_text or 'none listed'}.",
        f"Ledger: `limit audit verify`: {report.ledger_detail}; the checkpoint at the end "
        f"against the one at the start: {seen.consistency}.",
    ]


def rows(report: SoakReport) -> list[str]:
    """The soak's tables and verdict, as markdown lines."""
    counted = report.accounting
    accepted = report.observed.load.accepted
    lines = [
        f"Mixed-load soak: {report.duration_s:.0f} s, {report.store}, governance on "
        "(tenant and session quotas, rate limits on every route class, circuit limits "
        f"and allowed targets), {report.runners_per_pool} runners per pool "
        "(remote, quantum on Aer).",
        "",
        *_operation_rows(report),
        "",
        *_process_rows(report),
        "",
        *_summary(report),
        "",
        f"lost: {len(counted.lost)}, recorded twice: {len(counted.twice)}, "
        f"ledger: {'verified' if report.ledger_ok else 'FAILED'}",
    ]
    for label, wrong in (("lost", counted.lost), ("recorded twice", counted.twice)):
        for execution_id, why in list(wrong.items())[:10]:
            lines.append(f"- {label}: {execution_id} ({accepted.executions[execution_id]}): {why}")
    for name, stats in report.observed.load.recorder.ops.items():
        for example in stats.examples:
            lines.append(f"- error in {name}: {example}")
    return lines
