"""The database store's ledger: the tree's head and nodes, filtered trail reads,
checkpoints and erasure (:class:`~limit_graph.storage.ledger_store.LedgerStore`).

A proof's nodes come in one query: the leaves it needs from ``limit_ledger`` and the
larger subtrees from ``limit_ledger_nodes``, as one ``UNION ALL`` of ranges of the two
tables' keys (a verification asks for thousands of consecutive nodes at once: runs of
them are one range each).  The head, the nodes, trail reads and a verification's scan
are read with the driver itself, outside a transaction (one round trip each, rows as
the driver gives them, Postgres's binary format); the scan reads the leaf and the
payload as the bytes of their UTF-8, which is what their hashes cover.  Erasure is the
one UPDATE the migration's triggers let through: an erasable entry's ``payload`` and
``salt`` to null.

On SQLite a proof's reads -- the head, and nodes by key, a few dozen rows -- take a few
microseconds in the database, and a millisecond or more through the async pool (a
connection checked out and given back, a hop to aiosqlite's thread and back for each
statement; measured here).  So they are read on a connection of their own, in the
calling thread (:class:`_DirectReads`): read-only, each read a transaction of its own
(it sees the ledger as committed, one snapshot for all its statements), never waiting
for a lock -- a read SQLite answers "busy" (as while a crashed writer's journal is
recovered) goes the async way.  Larger reads (a verification's thousands of nodes,
trail pages, scans) always do, off the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import null, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.core import merkle
from limit_graph.core.errors import NotFound, StateDenied
from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage import schema as t
from limit_graph.storage.ledger import LedgerHead
from limit_graph.storage.ledger_store import EntryFilter, LeafRow, StoredCheckpoint, TreeHead

__all__ = ["DatabaseLedger"]

Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(
        tree_size=row.tree_size,
        root_hash=bytes(row.root_hash),
        timestamp=t.from_micros(row.ts_us),
        key_id=row.key_id,
        note=row.note,
    )


_RUNS_PER_QUERY = 256
"""Ranges of consecutive nodes one query reads at most (a proof's are a few dozen; a
whole-ledger verification asks for thousands at once)."""

_Run = tuple[int, int, int]
"""Nodes ``(level, first)`` to ``(level, last)``."""


def _runs(ids: Sequence[merkle.NodeId]) -> list[_Run]:
    """The ids as runs of consecutive indexes on one level, level by level (one pass
    when they come so ordered, as a verification's do).

    >>> _runs([(0, 5), (1, 2), (0, 6), (1, 4), (0, 7), (1, 3), (3, 0), (1, 3)])
    [(0, 5, 7), (1, 2, 4), (3, 0, 0)]
    """
    runs: list[_Run] = []
    level = first = last = -1
    for node_level, idx in ids:
        if node_level == level and idx == last + 1:
            last = idx
            continue
        if level >= 0:
            runs.append((level, first, last))
        level, first, last = node_level, idx, idx
    if level >= 0:
        runs.append((level, first, last))
    pairs = zip(runs, runs[1:], strict=False)
    if all(a[0] < b[0] or (a[0] == b[0] and a[2] + 1 < b[1]) for a, b in pairs):
        return runs
    by_level: dict[int, set[int]] = {}  # out of order or repeated: sort them out
    for node_level, idx in ids:
        by_level.setdefault(node_level, set()).add(idx)
    runs = []
    for level in sorted(by_level):
        ordered = sorted(by_level[level])
        first = last = ordered[0]
        for idx in ordered[1:]:
            if idx != last + 1:
                runs.append((level, first, last))
                first = idx
            last = idx
        runs.append((level, first, last))
    return runs


def _nodes_query(runs: list[_Run]) -> str:
    """One query of the runs' hashes: leaves (level 0) from ``limit_ledger``, the larger
    subtrees from ``limit_ledger_nodes``, each run a range of the table's key.  The
    numbers are integers this module made, written into the text, so that the driver
    sends it as it is (a statement of hundreds of placeholders is parsed in Python)."""

    def ranges(column: str, runs: list[_Run]) -> str:
        return " OR ".join(
            f"{column} = {first}" if first == last else f"{column} BETWEEN {first} AND {last}"
            for _, first, last in runs
        )

    parts = []
    leaves = [run for run in runs if run[0] == 0]
    if leaves:
        parts.append(f"SELECT 0, idx, leaf_hash FROM {t.ledger.name} WHERE {ranges('idx', leaves)}")
    by_level: dict[int, list[_Run]] = {}
    for run in runs:
        if run[0] > 0:
            by_level.setdefault(run[0], []).append(run)
    if by_level:
        where = " OR ".join(
            f"(level = {level} AND ({ranges('idx', level_runs)}))"
            for level, level_runs in by_level.items()
        )
        parts.append(f"SELECT level, idx, hash FROM {t.ledger_nodes.name} WHERE {where}")
    return " UNION ALL ".join(parts)


DIRECT_NODES = 256
"""The most nodes a read asks for that a SQLite store reads in the calling thread (a
proof at any size asks for fewer than 128)."""


_STATEMENTS = 2 * DIRECT_NODES
"""Statements a direct connection keeps prepared: two for each number of nodes."""


class _DirectReads:
    """Small reads of a SQLite ledger in the calling thread (module docstring)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def rows(self, query: str) -> list[tuple[Any, ...]] | None:
        """The rows of a query of constant text, or ``None`` when SQLite would wait."""
        return self._read(lambda conn: conn.execute(query).fetchall())

    def nodes(self, ids: Sequence[merkle.NodeId]) -> list[tuple[Any, ...]] | None:
        """The nodes ``ids``, or ``None``: the leaves in one statement and the larger
        subtrees in another, of placeholders (prepared once for each number of them,
        where a statement naming the nodes in its text is parsed every time)."""
        leaves = [idx for level, idx in ids if level == 0]
        subtrees = [value for level, idx in ids if level > 0 for value in (level, idx)]

        def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            found: list[tuple[Any, ...]] = []
            if leaves:
                marks = ", ".join("?" * len(leaves))
                query = f"SELECT 0, idx, leaf_hash FROM {t.ledger.name} WHERE idx IN ({marks})"
                found += conn.execute(query, leaves).fetchall()
            if subtrees:
                marks = ", ".join(["(?, ?)"] * (len(subtrees) // 2))
                query = (  # CROSS JOIN: SQLite looks each key up, in the order given
                    f"SELECT n.level, n.idx, n.hash FROM (VALUES {marks}) AS k "
                    f"CROSS JOIN {t.ledger_nodes.name} AS n "
                    "ON n.level = k.column1 AND n.idx = k.column2"
                )
                found += conn.execute(query, subtrees).fetchall()
            return found

        return self._read(read)

    def _read(
        self, read: Callable[[sqlite3.Connection], list[tuple[Any, ...]]]
    ) -> list[tuple[Any, ...]] | None:
        if self._conn is None:
            uri = Path(self._path).resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, timeout=0, check_same_thread=False, cached_statements=_STATEMENTS
            )
            conn.isolation_level = None
            self._conn = conn
        try:
            self._conn.execute("BEGIN")  # one snapshot for all the statements
            try:
                return read(self._conn)
            finally:
                self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class DatabaseLedger:
    def __init__(
        self, read: Connect, write: Connect, *, is_sqlite: bool, sqlite_path: str | None = None
    ) -> None:
        """``sqlite_path``: the SQLite file, whose small reads are then direct."""
        self._read = read
        self._write = write
        self._is_sqlite = is_sqlite
        self._direct = _DirectReads(sqlite_path) if sqlite_path else None
        uuid_type = t.ledger.c.session_id.type
        sqlite = sqlite_dialect()
        processor = uuid_type.dialect_impl(sqlite).bind_processor(sqlite) if is_sqlite else None
        self._uuid: Callable[[Any], Any] = processor or (lambda value: value)
        """A session id as the driver is given it (SQLite keeps a UUID as 32 hex digits)."""
        self._insert = sqlite_insert if is_sqlite else pg_insert

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()

    async def head(self) -> TreeHead:
        [(size, edge)] = await self._small_rows(
            f"SELECT size, edge FROM {t.ledger_head.name} WHERE id = 1"
        )
        head = LedgerHead.stored(size, bytes(edge))
        return TreeHead(head.size, head.root())

    async def nodes(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        found: dict[merkle.NodeId, bytes] = {}
        direct = (
            self._direct.nodes(ids)
            if self._direct is not None and len(ids) <= DIRECT_NODES
            else None
        )
        if direct is not None:
            found.update(((level, idx), digest) for level, idx, digest in direct)
        else:
            runs = _runs(ids)
            for start in range(0, len(runs), _RUNS_PER_QUERY):
                rows = await self._rows(_nodes_query(runs[start : start + _RUNS_PER_QUERY]))
                found.update(((level, idx), digest) for level, idx, digest in rows)
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"the ledger holds no node {missing[0]} (of {len(missing)} missing)")
        return found

    async def entries(
        self, where: EntryFilter, *, after: int = -1, limit: int = 1000
    ) -> list[ProvenanceEntry]:
        mark = "?" if self._is_sqlite else "%s"
        conditions = [f"idx > {int(after)}"]
        values: list[Any] = []
        for column, value in (
            ("tenant =", where.tenant),
            ("actor =", where.actor),
            ("action =", where.action),
            ("session_id =", None if where.session_id is None else self._uuid(where.session_id)),
            ("ts_us >=", t.to_micros(where.since) if where.since is not None else None),
            ("ts_us <", t.to_micros(where.until) if where.until is not None else None),
        ):
            if value is not None:
                conditions.append(f"{column} {mark}")
                values.append(value)
        rows = await self._rows(
            f"SELECT leaf, leaf_hash, payload, salt FROM {t.ledger.name} "
            f"WHERE {' AND '.join(conditions)} ORDER BY idx LIMIT {int(limit)}",
            values,
        )
        return [
            t.ledger_entry(leaf, bytes(digest), payload, salt)
            for leaf, digest, payload, salt in rows
        ]

    async def scan(self, *, after: int = -1, limit: int = 1000) -> list[LeafRow]:
        rows = await self._rows(
            f"SELECT idx, {self._as_bytes('leaf')}, leaf_hash, {self._as_bytes('payload')}, "
            f"salt FROM {t.ledger.name} WHERE idx > {int(after)} ORDER BY idx LIMIT {int(limit)}"
        )
        return [LeafRow(*row) for row in rows]

    def _as_bytes(self, column: str) -> str:
        """A text column as the bytes of its UTF-8, which is what its hash covers."""
        return f"CAST({column} AS BLOB)" if self._is_sqlite else f"convert_to({column}, 'UTF8')"

    async def _small_rows(self, query: str) -> list[tuple[Any, ...]]:
        """The rows of a query of a few keyed rows: direct on SQLite (module docstring)."""
        if self._direct is not None:
            rows = self._direct.rows(query)
            if rows is not None:
                return rows
        return await self._rows(query)

    async def _rows(self, query: str, values: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query (``values`` for its placeholders), read with the driver
        itself, outside a transaction: for the reads of thousands of rows a whole-ledger
        verification makes, where building SQLAlchemy's rows would cost more than the
        driver's fetch (and Postgres's binary format sends ``bytea`` as it is, not
        doubled into hex), and for a proof's reads, which then cost one round trip each
        (no ``BEGIN`` and ``ROLLBACK`` around them).  Each query sees the committed
        ledger as it is."""
        async with self._read() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            if self._is_sqlite:  # its connections are in autocommit mode already
                async with driver.execute(query, values) as cursor:
                    return list(await cursor.fetchall())
            await driver.set_autocommit(True)
            try:
                async with driver.cursor(binary=True) as cursor:
                    await cursor.execute(query, values or None)
                    return list(await cursor.fetchall())
            finally:
                await driver.set_autocommit(False)

    async def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        row = {
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash,
            "ts_us": t.to_micros(checkpoint.timestamp),
            "key_id": checkpoint.key_id,
            "note": checkpoint.note,
        }
        statement = (
            self._insert(t.checkpoints)
            .values(**row)
            .on_conflict_do_nothing()
            .returning(t.checkpoints.c.tree_size)
        )
        async with self._write() as conn:
            added = (await conn.execute(statement)).first()
        return added is not None

    async def checkpoints(
        self, *, after_size: int = -1, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        c = t.checkpoints.c
        query = select(t.checkpoints).where(c.tree_size > after_size).order_by(c.tree_size)
        async with self._read() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [_checkpoint(r) for r in rows]

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        c = t.checkpoints.c
        query = select(t.checkpoints).order_by(c.tree_size.desc()).limit(1)
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return _checkpoint(row) if row is not None else None

    async def erase_payload(self, index: int) -> ProvenanceEntry:
        c = t.ledger.c
        async with self._write() as conn:
            row = (
                await conn.execute(select(c.erasable, *t.ENTRY_COLUMNS).where(c.idx == index))
            ).first()
            if row is None:
                raise NotFound(f"the ledger has no entry {index}")
            if not row.erasable:
                raise StateDenied(
                    f"entry {index} is not erasable: its payload is part of the record",
                    ["ledger-append-only"],
                )
            await conn.execute(
                update(t.ledger).where(c.idx == index).values(payload=null(), salt=None)
            )
        return t.ledger_entry(row.leaf, row.leaf_hash, None, None)
