"""Appending to the ledger on Postgres: 32 writers through the platform's write path,
against a plain batched ``INSERT`` of the same rows.

- **platform**: ``writers`` asyncio tasks, each appending one entry at a time with
  ``DatabaseStorage.write_entry`` and waiting for it to be durable, as a request does:
  the group-commit writer locks the tree's head, makes each entry (payload hash, leaf,
  leaf hash), extends the tree, inserts the entries, the nodes they complete and the
  moved head, and commits, one transaction per batch.  The payloads are the big
  ledger's (:mod:`bench.ledger.build`): session and execution documents.
- **anchor**: the same rows, made beforehand, inserted by one connection in
  transactions of ``writers`` entries (the largest batch ``writers`` single-entry
  writers can form), one multi-row ``INSERT`` for the entries and one for their nodes,
  each committed durably, into tables of the same columns and indexes; and once more in
  transactions of 512 (the writer's ``MAX_BATCH``), the database's bulk rate.

Each side runs ``seconds`` a round (after a warm-up), alternating, ``repeat`` rounds;
the medians are kept.  The ledger written is verified afterwards
(:func:`~limit_graph.orchestration.ledger_verify.verify_ledger`): no gap, one order.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.ledger import build
from bench.ledger.databases import fresh_postgres, libpq
from limit_graph.core import merkle
from limit_graph.orchestration.ledger_verify import verify_ledger
from limit_graph.storage import schema as t
from limit_graph.storage.database import DatabaseStorage

__all__ = ["AppendResult", "measure", "rows"]

TARGET_PER_S = 20_000
WARMUP_S = 0.5
_POOL = 4096
"""Distinct rows the anchor cycles through (under new indexes)."""


@dataclass(frozen=True)
class AppendResult:
    writers: int
    platform: list[float]
    anchor: list[float]
    bulk: list[float]
    entries: int
    verified: str | None

    @property
    def ratio(self) -> float:
        return statistics.median(self.platform) / statistics.median(self.anchor)


async def _platform_round(storage: DatabaseStorage, writers: int, seconds: float) -> float:
    """Entries per second appended by ``writers`` tasks during ``seconds``."""
    counted = 0
    measuring = False
    stop = time.monotonic() + WARMUP_S + seconds
    next_index = (await storage.ledger.head()).size

    async def writer() -> None:
        nonlocal counted, next_index
        while time.monotonic() < stop:
            draft, _, _ = build._draft(next_index)
            next_index += 1
            await storage.write_entry(draft)
            if measuring:
                counted += 1

    tasks = [asyncio.create_task(writer()) for _ in range(writers)]
    await asyncio.sleep(WARMUP_S)
    measuring, started = True, time.monotonic()
    await asyncio.gather(*tasks)
    return counted / (time.monotonic() - started)


def _anchor_tables(conn: psycopg.Connection[Any]) -> None:
    for table in (t.ledger.name, t.ledger_nodes.name):
        conn.execute(f"CREATE TABLE plain_{table} (LIKE {table} INCLUDING ALL)")
    conn.commit()


def _insert(table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    width = len(columns)
    values = ", ".join(
        "(" + ", ".join(f"${r * width + k + 1}" for k in range(width)) + ")"
        for r in range(len(rows))
    )
    sql = f"INSERT INTO plain_{table} ({', '.join(columns)}) VALUES {values}"
    return sql, [value for row in rows for value in row]


class _Anchor:
    """The same rows as the platform writes, inserted plainly (module docstring)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(libpq(url))
        _anchor_tables(self.conn)
        self.columns = [c.name for c in t.ledger.columns]
        made = [build._row(i) for i in range(_POOL)]
        self.rows = [tuple(row[c] for c in self.columns) for row in made]
        self.hashed = self.columns.index("leaf_hash")
        self.next = 0
        self.edge = merkle.CompactRange.empty()

    def round(self, batch: int, seconds: float) -> float:
        """Entries per second inserted in transactions of ``batch`` entries."""
        cursor = psycopg.RawCursor(self.conn)
        counted = 0
        started = time.monotonic()
        stop = started + seconds
        while time.monotonic() < stop:
            entries, nodes = [], []
            for _ in range(batch):
                row = self.rows[self.next % _POOL]
                entries.append((self.next, *row[1:]))
                nodes += [(lv, i, h) for (lv, i), h in self.edge.append(row[self.hashed]) if lv]
                self.next += 1
            for table, columns, values in (
                (t.ledger.name, self.columns, entries),
                (t.ledger_nodes.name, ["level", "idx", "hash"], nodes),
            ):
                if values:
                    cursor.execute(*_insert(table, columns, values))
            self.conn.commit()
            counted += batch
        return counted / (time.monotonic() - started)

    def close(self) -> None:
        self.conn.close()


async def _measure(url: str, writers: int, seconds: float, repeat: int) -> AppendResult:
    storage = DatabaseStorage(url)
    await storage.start()
    anchor = _Anchor(url)
    platform: list[float] = []
    plain: list[float] = []
    bulk: list[float] = []
    try:
        anchor.round(writers, WARMUP_S)
        for _ in range(repeat):
            plain.append(await asyncio.to_thread(anchor.round, writers, seconds))
            platform.append(await _platform_round(storage, writers, seconds))
        bulk.append(await asyncio.to_thread(anchor.round, 512, seconds))
        report = await verify_ledger(storage)
        size = (await storage.ledger.head()).size
    finally:
        anchor.close()
        await storage.close()
    verified = None if report.ok else f"entry {report.first_bad}: {report.detail}"
    return AppendResult(writers, platform, plain, bulk, size, verified)


def measure(writers: int, seconds: float, repeat: int) -> AppendResult:
    """Both sides on a fresh Postgres database, dropped afterwards."""
    with fresh_postgres("append") as url:
        return asyncio.run(_measure(url, writers, seconds, repeat))


def rows(result: AppendResult) -> list[str]:
    platform = statistics.median(result.platform)
    anchor = statistics.median(result.anchor)
    bulk = statistics.median(result.bulk)
    verdict = "meets" if platform >= TARGET_PER_S else "misses"
    checked = "verifies" if result.verified is None else f"DOES NOT VERIFY ({result.verified})"
    return [
        f"| append to the ledger, Postgres, {result.writers} writers | entries/s | "
        "vs plain INSERT |",
        "| --- | ---: | ---: |",
        f"| anchor: plain batched INSERT of the same rows, {result.writers} a transaction | "
        f"{anchor:,.0f} | 1.00x (anchor) |",
        f"| platform: `write_entry` through the group-commit writer | {platform:,.0f} | "
        f"{platform / anchor:.2f}x |",
        f"| plain batched INSERT, 512 a transaction (the database's bulk rate) | {bulk:,.0f} | "
        f"{bulk / anchor:.2f}x |",
        "",
        f"Platform append {platform:,.0f} entries/s (target >= {TARGET_PER_S:,}: {verdict}); "
        f"medians of {len(result.platform)} rounds; the {result.entries:,} entries written "
        f"{checked}.",
    ]
