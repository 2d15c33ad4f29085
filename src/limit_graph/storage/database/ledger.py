"""The database store's ledger: the tree's head and nodes, filtered trail reads,
checkpoints and erasure (:class:`~limit_graph.storage.ledger_store.LedgerStore`).

A proof's nodes come in one query: the leaves it needs from ``limit_ledger`` and the
larger subtrees from ``limit_ledger_nodes``, as one ``UNION ALL`` of two keyed lookups.
Erasure is the one UPDATE the migration's triggers let through: an erasable entry's
``payload`` and ``salt`` to null.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import and_, literal, null, select, tuple_, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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


class DatabaseLedger:
    def __init__(self, read: Connect, write: Connect, *, is_sqlite: bool) -> None:
        self._read = read
        self._write = write
        self._insert = sqlite_insert if is_sqlite else pg_insert

    async def head(self) -> TreeHead:
        async with self._read() as conn:
            row = (await conn.execute(select(t.ledger_head.c.size, t.ledger_head.c.edge))).one()
        head = LedgerHead.stored(row.size, bytes(row.edge))
        return TreeHead(head.size, head.root())

    async def nodes(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        leaves = [idx for level, idx in ids if level == 0]
        larger = [(level, idx) for level, idx in ids if level > 0]
        parts = []
        if leaves:
            parts.append(
                select(literal(0).label("level"), t.ledger.c.idx, t.ledger.c.leaf_hash).where(
                    t.ledger.c.idx.in_(leaves)
                )
            )
        if larger:
            n = t.ledger_nodes.c
            parts.append(select(n.level, n.idx, n.hash).where(tuple_(n.level, n.idx).in_(larger)))
        if not parts:
            return {}
        query = parts[0] if len(parts) == 1 else union_all(*parts)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        found = {(int(level), int(idx)): bytes(h) for level, idx, h in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"the ledger holds no node {missing[0]} (of {len(missing)} missing)")
        return found

    async def entries(
        self, where: EntryFilter, *, after: int = -1, limit: int = 1000
    ) -> list[ProvenanceEntry]:
        c = t.ledger.c
        query = select(*t.ENTRY_COLUMNS).where(c.idx > after)
        conditions = []
        if where.tenant is not None:
            conditions.append(c.tenant == where.tenant)
        if where.actor is not None:
            conditions.append(c.actor == where.actor)
        if where.action is not None:
            conditions.append(c.action == where.action)
        if where.session_id is not None:
            conditions.append(c.session_id == where.session_id)
        if where.since is not None:
            conditions.append(c.ts_us >= t.to_micros(where.since))
        if where.until is not None:
            conditions.append(c.ts_us < t.to_micros(where.until))
        if conditions:
            query = query.where(and_(*conditions))
        query = query.order_by(c.idx).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [t.ledger_entry(*row) for row in rows]

    async def scan(self, *, after: int = -1, limit: int = 1000) -> list[LeafRow]:
        c = t.ledger.c
        query = (
            select(c.idx, c.leaf, c.leaf_hash, c.payload, c.salt)
            .where(c.idx > after)
            .order_by(c.idx)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            LeafRow(
                idx,
                leaf.encode("utf-8"),
                bytes(leaf_hash),
                payload.encode("utf-8") if payload is not None else None,
                salt,
            )
            for idx, leaf, leaf_hash, payload, salt in rows
        ]

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
