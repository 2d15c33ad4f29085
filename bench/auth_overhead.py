"""What authentication and authorization add to one in-process local `echo` execute.

Both sides run the orchestrator's execute on durable SQLite in the same platform, in
alternating rounds so that drift of a shared machine falls on both:

* **with**: the API key is authenticated (:class:`Authenticator`), the route's decision
  (``session.execute`` on the session) is taken, and the execute runs every pre-task
  check, the access check (``agent.execute``) among them, whose allow is written to the
  ledger with the execution;
* **without**: the same execute for the same principal with the access check taken out
  of the pipeline, and nothing authenticated or decided before it.

The target (issue 12) is < 0.3 ms p50 added.  ``python -m bench.auth_overhead``.
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
from limit_graph.governance.checks import AccessAllowed, CheckPipeline
from limit_graph.governance.policy.schema import Action
from limit_graph.orchestration.executions import ExecuteCommand
from limit_graph.orchestration.platform import Platform

__all__ = ["main", "measure", "rows"]

TARGET_MS = 0.3


async def measure(home: Path, calls: int, rounds: int = 5) -> dict[str, list[float]]:
    """Seconds per execute, with and without authentication and authorization."""
    settings = load_settings(environ={}, home=str(home), storage__url=f"sqlite:///{home}/b.db")
    platform = await Platform.start(settings)
    try:
        admin = platform.admin
        await platform.identity.create_tenant(admin, "bench")
        made = await platform.identity.create_principal(
            admin, name="author", tenant="bench", kind=PrincipalKind.USER, roles=[Role.AUTHOR]
        )
        key = (await platform.identity.create_key(admin, made.record.id)).key
        author = await platform.authenticator.authenticate(key)
        session = await platform.sessions.create(author, SessionConfig())
        command = ExecuteCommand("echo", {"n": 1})
        full = platform.checks
        bare = CheckPipeline([c for c in full.checks if not isinstance(c, AccessAllowed)])
        admission = platform.executions.admission

        async def with_auth() -> None:
            caller = await platform.authenticator.authenticate(key)
            loaded = await platform.sessions.cache.load(session.id)
            assert loaded is not None
            await platform.authorizer.on_session(caller, Action.SESSION_EXECUTE, loaded)
            await platform.executions.execute(caller, session.id, command)

        async def without() -> None:
            await platform.executions.execute(author, session.id, command)

        samples: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(200):  # warm both paths: caches, the decision cache, the writer
            admission.checks = full
            await with_auth()
            admission.checks = bare
            await without()
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            for name, run, checks in (("with", with_auth, full), ("without", without, bare)):
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
        f"| without authentication and authorization | {p50('without'):.3f} | "
        f"{p99('without'):.3f} |",
        f"| with API-key authentication, route decision and access check | {p50('with'):.3f} | "
        f"{p99('with'):.3f} |",
        f"| added | {added:.3f} | |",
        "",
        f"Authentication plus authorization add {added:.3f} ms p50 "
        f"(target < {TARGET_MS} ms: {verdict}); {len(samples['with']):,} calls each.",
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
