"""What the ledger costs one in-process local ``echo`` execute.

One platform, durable storage, the orchestrator's execute of ``echo`` (as
``bench/inprocess.py`` times it), in alternating rounds so that the drift of a shared
machine falls on both sides:

* **with**: as the platform always runs: the execution's record is written by the
  group-commit writer with its two ledger entries (started and final): their drafts,
  payload hashes and leaves, the head locked and moved, the entries and the tree's new
  nodes inserted, in the record's transaction;
* **without**: the same execute, the same writer and transaction, with the writer's
  ``record_entries`` off (``GroupCommitter.record_entries``, which nothing in the
  platform turns off): the record alone, with no entry, no lock of the head.

That switch is the narrowest "without" that is still the platform's own execute: every
other step (admission, the run, the session's events, the record's write and commit) is
the same code.  Measured on the embedded SQLite and, when it answers, on Postgres, with
lineage off: lineage is derived from the ledger in the background (its own feature, with
its own switch), and with it on, each entry also costs its share of that work, which on
SQLite waits for the same write lock as the records; one more SQLite row, lineage on as
by default, shows what the two cost together.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from limit_graph.core.models import SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.executions import ExecuteCommand
from limit_graph.orchestration.platform import Platform
from limit_graph.storage.database import DatabaseStorage

__all__ = ["measure", "rows"]

TARGET = 0.10
ADMIN = Principal("bench", "bench", frozenset({"admin"}))


async def measure(
    home: Path, url: str, calls: int, rounds: int, *, lineage: bool
) -> dict[str, list[float]]:
    """Seconds per execute, with and without the ledger's entries."""
    settings = load_settings(environ={}, home=str(home), storage__url=url, lineage__enabled=lineage)
    platform = await Platform.start(settings)
    try:
        storage = platform.storage
        assert isinstance(storage, DatabaseStorage)
        committer = storage._committer  # the switch is the writer's; the store has no API for it
        assert committer is not None
        session = await platform.sessions.create(ADMIN, SessionConfig())
        command = ExecuteCommand("echo", {"n": 1})

        async def execute() -> None:
            await platform.executions.execute(ADMIN, session.id, command)

        samples: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(min(200, calls)):  # warm both: caches, the writer, its statements
            for recorded in (True, False):
                committer.record_entries = recorded
                await execute()
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            for name, recorded in (("with", True), ("without", False)):
                committer.record_entries = recorded
                for _ in range(per_round):
                    started = time.perf_counter()
                    await execute()
                    samples[name].append(time.perf_counter() - started)
        committer.record_entries = True
        return samples
    finally:
        await platform.close()


def rows(results: dict[str, dict[str, list[float]]]) -> list[str]:
    """``results``: by database, the samples of :func:`measure`."""
    lines = [
        "| in-process `echo` execute (durable) | without the ledger p50 ms | with p50 ms | "
        "added | with p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for kind, samples in results.items():
        without = statistics.median(samples["without"]) * 1e3
        with_ = statistics.median(samples["with"]) * 1e3
        p99 = sorted(samples["with"])[int(len(samples["with"]) * 0.99)] * 1e3
        added = with_ / without - 1
        lines.append(f"| {kind} | {without:.3f} | {with_:.3f} | {added:+.1%} | {p99:.3f} |")
        verdicts.append(f"{kind} {added:+.1%} ({'meets' if added < TARGET else 'misses'})")
    count = len(next(iter(results.values()))["with"])
    lines += [
        "",
        f"The ledger adds to an execute: {'; '.join(verdicts)} (target < {TARGET:.0%}); "
        f"{count:,} calls each side, alternating rounds. Without = the same writer with its "
        "`record_entries` switch off (a bench knob the platform never turns off); lineage "
        "off but where the row says on.",
    ]
    return lines


def run(
    home: Path, url: str, calls: int, rounds: int, *, lineage: bool = False
) -> dict[str, list[float]]:
    return asyncio.run(measure(home, url, calls, rounds, lineage=lineage))
