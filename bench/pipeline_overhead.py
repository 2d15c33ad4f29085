"""What the whole pre-task pipeline adds to one in-process local `echo` execute.

Both sides run the orchestrator's execute on durable SQLite in one platform, in
alternating rounds, so that drift of a shared machine falls on both:

* **with**: the caller's execute rate buckets (per principal and per tenant, in memory)
  are drawn from, and the execute runs every pre-task check: access (``agent.execute``),
  the session's state and backends, the platform clearances, the session's circuit
  limits and allowed targets, and quotas -- the tenant's executions per day and
  concurrent executions, reserved before and reconciled after;
* **without**: the same execute by a caller of a tenant with no quotas, in a session
  declaring no checks, with the access check taken out and no rate drawn.

The target (issue 13) is < 1 ms p50 added.  ``python -m bench.pipeline_overhead``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from limit_graph.core.identity import PrincipalKind, Role
from limit_graph.core.models import SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.governance.auth import Principal
from limit_graph.governance.checks import AccessAllowed, CheckPipeline
from limit_graph.orchestration.executions import ExecuteCommand
from limit_graph.orchestration.platform import Platform

__all__ = ["main", "measure", "rows"]

TARGET_MS = 1.0
ROOMY = {"rate": 1_000_000.0, "burst": 1_000_000}
"""Buckets that never refuse here: the bench measures the check, not a refusal."""


async def _author(platform: Platform, tenant: str) -> Principal:
    admin = platform.admin
    await platform.identity.create_tenant(admin, tenant)
    made = await platform.identity.create_principal(
        admin, name="author", tenant=tenant, kind=PrincipalKind.USER, roles=[Role.AUTHOR]
    )
    key = (await platform.identity.create_key(admin, made.record.id)).key
    return await platform.authenticator.authenticate(key)


async def measure(home: Path, calls: int, rounds: int = 5) -> dict[str, list[float]]:
    """Seconds per execute, with and without the pre-task pipeline."""
    settings = load_settings(
        environ={},
        home=str(home),
        storage__url=f"sqlite:///{home}/b.db",
        governance__rates={"execute": {"per_principal": ROOMY, "per_tenant": ROOMY}},
    )
    platform = await Platform.start(settings)
    try:
        governed = await _author(platform, "governed")
        plain = await _author(platform, "plain")
        await platform.quotas.set(
            platform.admin,
            "tenant:governed",
            {"executions": 10_000_000, "concurrent": 1_000, "period": "day"},
        )
        checked = await platform.sessions.create(
            governed,
            SessionConfig(
                policies=[
                    {"check": "circuit-limits", "max_qubits": 7, "max_shots": 10_000},
                    {"check": "allowed-targets", "targets": ["aer", "fake:*"]},
                ]
            ),
        )
        bare_session = await platform.sessions.create(plain, SessionConfig())
        command = ExecuteCommand("echo", {"n": 1})
        full = platform.checks
        bare = CheckPipeline([c for c in full.checks if not isinstance(c, AccessAllowed)])
        admission = platform.executions.admission

        async def with_pipeline() -> None:
            await platform.rates.check_caller("execute", governed)
            await platform.executions.execute(governed, checked.id, command)

        async def without() -> None:
            await platform.executions.execute(plain, bare_session.id, command)

        samples: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(200):  # warm both paths: caches, the decision cache, the writer
            admission.checks = full
            await with_pipeline()
            admission.checks = bare
            await without()
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            for name, run, checks in (("with", with_pipeline, full), ("without", without, bare)):
                admission.checks = checks
                for _ in range(per_round):
                    started = time.perf_counter()
                    await run()
                    samples[name].append(time.perf_counter() - started)
        admission.checks = full
        return samples
    finally:
        await platform.close()


def rows(samples: dict[str, list[float]]) -> list[str]:
    def p50(name: str) -> float:
        return statistics.median(samples[name]) * 1e3

    def p99(name: str) -> float:
        ordered = sorted(samples[name])
        return ordered[int(len(ordered) * 0.99)] * 1e3

    added = p50("with") - p50("without")
    verdict = "meets" if added < TARGET_MS else "misses"
    return [
        "| in-process `echo` execute, SQLite (durable) | p50 ms | p99 ms |",
        "| --- | ---: | ---: |",
        f"| without the pre-task pipeline | {p50('without'):.3f} | {p99('without'):.3f} |",
        f"| with access, rates, circuit limits, allowed targets and quotas | "
        f"{p50('with'):.3f} | {p99('with'):.3f} |",
        f"| added | {added:.3f} | |",
        "",
        f"The pre-task pipeline adds {added:.3f} ms p50 (target < {TARGET_MS} ms: {verdict}); "
        f"{len(samples['with']):,} calls each.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        for line in rows(asyncio.run(measure(Path(home), args.calls))):
            print(line)


if __name__ == "__main__":
    main()
