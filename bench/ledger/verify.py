"""Verifying a whole ledger: :func:`~limit_graph.orchestration.ledger_verify.verify_ledger`
on a real store of ``size`` entries (:mod:`bench.ledger.build`), on Postgres and SQLite.

The verifier checks every entry's leaf and payload hashes, the tree's every node against
the stored one, each checkpoint's signature (one every 256 entries, 3,907 for a
million) and root, consecutive checkpoints' consistency, and the head.  The anchor is
what no verifier can skip, measured in the same run on the same store: reading every row
(through the store's own ``scan``, in pages of 50,000) and hashing each leaf and payload
once.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
from dataclasses import dataclass

from bench.ledger.build import ORIGIN, BuiltLedger
from limit_graph.core import notes
from limit_graph.orchestration.ledger_verify import LedgerReport, verify_ledger
from limit_graph.storage.database import DatabaseStorage

__all__ = ["VerifyResult", "measure", "rows"]

TARGET_S = 10.0


@dataclass(frozen=True)
class VerifyResult:
    kind: str
    size: int
    load_s: float
    seconds: list[float]
    anchor: list[float]
    report: LedgerReport


async def _anchor(storage: DatabaseStorage) -> float:
    """Seconds to read every row and hash each leaf and payload once."""
    started = time.perf_counter()
    after = -1
    sha256 = hashlib.sha256
    while rows := await storage.ledger.scan(after=after, limit=50_000):
        for row in rows:
            sha256(b"\x00" + row.leaf).digest()
            if row.payload is not None:
                sha256(row.payload).digest()
        after = rows[-1].index
    return time.perf_counter() - started


async def _measure(ledger: BuiltLedger, kind: str, repeat: int) -> VerifyResult:
    storage = DatabaseStorage(ledger.url)
    await storage.start()
    try:
        verifier = notes.Verifier.from_verifier_key(ledger.verifier_key)
        seconds: list[float] = []
        anchor = [await _anchor(storage)]  # once: the figure is the verifier's
        report: LedgerReport | None = None
        for _ in range(repeat):
            started = time.perf_counter()
            report = await verify_ledger(storage, verifiers=[verifier], origin=ORIGIN)
            seconds.append(time.perf_counter() - started)
        assert report is not None
        return VerifyResult(kind, ledger.size, ledger.load_s, seconds, anchor, report)
    finally:
        await storage.close()


def measure(ledger: BuiltLedger, kind: str, repeat: int) -> VerifyResult:
    return asyncio.run(_measure(ledger, kind, repeat))


def rows(results: list[VerifyResult]) -> list[str]:
    lines = [
        "| verify the whole ledger | entries | seconds | anchor s | vs anchor | loaded in s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for result in results:
        took = statistics.median(result.seconds)
        anchor = statistics.median(result.anchor)
        state = "ok" if result.report.ok else f"FAILED at {result.report.first_bad}"
        lines.append(
            f"| `verify_ledger`, {result.kind} ({state}, "
            f"{result.report.checkpoints:,} checkpoints) | {result.size:,} | {took:.2f} | "
            f"{anchor:.2f} | {took / anchor:.2f}x | {result.load_s:.1f} |"
        )
        met = "meets" if took < TARGET_S * result.size / 1_000_000 else "misses"
        verdicts.append(f"{result.kind} {took:.1f} s ({met})")
    lines += [
        "",
        f"Whole-ledger verification: {'; '.join(verdicts)}; target < {TARGET_S:.0f} s "
        f"a million entries (scaled to the size run); medians of {len(results[0].seconds)}. "
        "Anchor: reading every row and hashing each leaf and payload once. The ledger was "
        "made by the platform's leaf and tree code and loaded by COPY (Postgres) or the "
        "writer's prepared INSERT (SQLite), not through the group-commit writer.",
    ]
    return lines
