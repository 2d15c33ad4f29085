"""The lineage store of the database backend (SQLite and Postgres).

A batch is one transaction: its nodes and edges as multi-row upserts, then its cursor,
moved only forward (``ON CONFLICT ... DO UPDATE ... WHERE``, on both databases).  The
one-statement upserts cannot touch a row twice, so a batch is first folded to one row
per key by the same rule the conflict applies (:func:`~limit_graph.storage.lineage.
replaces`).  "Which executions used or produced this hash" is one query: the content
nodes by ``ix_limit_lineage_nodes_hash``, the edges leaving them (``used``, by the key)
and reaching them (``produced``, by ``ix_limit_lineage_edges_target``) as a ``UNION
ALL``, each joined to its execution's node, in key order from a keyset cursor.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import and_, literal, or_, select, tuple_, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.storage import schema as t
from limit_graph.storage.lineage import (
    GRAPH_CURSOR,
    HashUse,
    LineageBatch,
    LineageEdge,
    LineageGraph,
    LineageNode,
    UseKey,
    replaces,
)

__all__ = ["DatabaseLineageStore"]

Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection]]

_N = t.lineage_nodes
_E = t.lineage_edges
_C = t.lineage_cursors


def _folded_nodes(nodes: Sequence[LineageNode]) -> list[LineageNode]:
    kept: dict[tuple[uuid.UUID, str], LineageNode] = {}
    for node in nodes:
        key = (node.session_id, node.id)
        existing = kept.get(key)
        if existing is None or replaces(existing, node):
            kept[key] = node
    return list(kept.values())


def _folded_edges(edges: Sequence[LineageEdge]) -> list[LineageEdge]:
    kept: dict[tuple[uuid.UUID, str, str, str], LineageEdge] = {}
    for edge in edges:
        kept.setdefault(edge.key, edge)
    return list(kept.values())


def _node_row(node: LineageNode) -> dict[str, Any]:
    return {
        "session_id": node.session_id,
        "node_id": node.id,
        "kind": node.kind,
        "hash": node.hash,
        "tenant": node.tenant,
        "label": node.label,
        "attributes": dict(node.attributes),
        "entry": node.entry,
    }


def _edge_row(edge: LineageEdge) -> dict[str, Any]:
    return {
        "session_id": edge.session_id,
        "source": edge.source,
        "target": edge.target,
        "kind": edge.kind,
        "tenant": edge.tenant,
        "attributes": dict(edge.attributes),
    }


def _node(row: Any, prefix: str = "") -> LineageNode:
    get = row._mapping
    return LineageNode(
        get[f"{prefix}session_id"],
        get[f"{prefix}node_id"],
        get[f"{prefix}kind"],
        get[f"{prefix}hash"],
        get[f"{prefix}tenant"],
        get[f"{prefix}label"],
        get[f"{prefix}attributes"],
        entry=get[f"{prefix}entry"],
    )


def _edge(row: Any) -> LineageEdge:
    return LineageEdge(row.session_id, row.source, row.target, row.kind, row.tenant, row.attributes)


class DatabaseLineageStore:
    """:class:`~limit_graph.storage.lineage.LineageStore` on the backend's engine:
    ``read`` opens a read-only connection, ``write`` a write transaction."""

    def __init__(self, read: Connect, write: Connect, *, is_sqlite: bool) -> None:
        self._read = read
        self._write = write
        self._insert = sqlite_insert if is_sqlite else pg_insert

    async def cursor(self, name: str = GRAPH_CURSOR) -> int:
        async with self._read() as conn:
            found = await conn.scalar(select(_C.c.idx).where(_C.c.name == name))
        return int(found) if found is not None else -1

    async def apply(self, batch: LineageBatch) -> None:
        nodes = [_node_row(n) for n in _folded_nodes(batch.nodes)]
        edges = [_edge_row(e) for e in _folded_edges(batch.edges)]
        async with self._write() as conn:
            if nodes:
                upsert = self._insert(_N)
                new = upsert.excluded
                replaced = or_(
                    and_(_N.c.kind == "input", new.kind == "output"),
                    and_(_N.c.kind == "execution", new.kind == "execution", _N.c.entry < new.entry),
                )
                changed = {c: new[c] for c in ("kind", "hash", "label", "attributes", "entry")}
                await conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[_N.c.session_id, _N.c.node_id], set_=changed, where=replaced
                    ),
                    nodes,
                )
            if edges:
                await conn.execute(self._insert(_E).on_conflict_do_nothing(), edges)
            moved = self._insert(_C).values(name=batch.cursor_name, idx=batch.cursor)
            await conn.execute(
                moved.on_conflict_do_update(
                    index_elements=[_C.c.name],
                    set_={"idx": moved.excluded.idx},
                    where=_C.c.idx < moved.excluded.idx,
                )
            )

    async def session_graph(self, session_id: uuid.UUID) -> LineageGraph:
        async with self._read() as conn:
            nodes = await conn.execute(
                select(_N).where(_N.c.session_id == session_id).order_by(_N.c.node_id)
            )
            found = [_node(row) for row in nodes]
            edges = await conn.execute(
                select(_E)
                .where(_E.c.session_id == session_id)
                .order_by(_E.c.source, _E.c.target, _E.c.kind)
            )
            return LineageGraph(found, [_edge(row) for row in edges])

    async def uses_of(
        self,
        content_hash: str,
        *,
        tenant: str | None,
        limit: int = 100,
        after: UseKey | None = None,
    ) -> list[HashUse]:
        content = [c.label(f"c_{c.name}") for c in _N.c]
        edge = [_E.c.source, _E.c.target, _E.c.tenant.label("e_tenant"), _E.c.attributes]
        where = [_N.c.hash == content_hash]
        if tenant is not None:
            where.append(_N.c.tenant == tenant)
        used = (
            select(_E.c.target.label("exe"), literal("used").label("ek"), *content, *edge)
            .join_from(
                _N, _E, and_(_E.c.session_id == _N.c.session_id, _E.c.source == _N.c.node_id)
            )
            .where(_E.c.kind == "used", *where)
        )
        produced = (
            select(_E.c.source.label("exe"), literal("produced").label("ek"), *content, *edge)
            .join_from(
                _N, _E, and_(_E.c.session_id == _N.c.session_id, _E.c.target == _N.c.node_id)
            )
            .where(_E.c.kind == "produced", *where)
        )
        uses = union_all(used, produced).subquery()
        execution = _N.alias("x")
        query = select(uses, *[c.label(f"x_{c.name}") for c in execution.c]).outerjoin(
            execution,
            and_(execution.c.session_id == uses.c.c_session_id, execution.c.node_id == uses.c.exe),
        )
        if after is not None:
            query = query.where(
                tuple_(uses.c.c_session_id, uses.c.exe, uses.c.ek)
                > tuple_(literal(uuid.UUID(after[0]), _N.c.session_id.type), *after[1:])
            )
        query = query.order_by(uses.c.c_session_id, uses.c.exe, uses.c.ek).limit(limit)
        async with self._read() as conn:
            rows = list(await conn.execute(query))
        found = []
        for row in rows:
            node = _node(row, "c_")
            link = LineageEdge(
                node.session_id, row.source, row.target, row.ek, row.e_tenant, row.attributes
            )
            ran = _node(row, "x_") if row.x_node_id is not None else None
            found.append(HashUse(node, link, ran))
        return found
