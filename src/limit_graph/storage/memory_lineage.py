"""The lineage store of the memory backend, and the state the file backend persists.

A batch is applied whole under the store's lock (:meth:`LineageState.apply` changes
nothing it cannot finish: it only adds and replaces), so readers never see half of one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

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

__all__ = ["LineageState", "MemoryLineageStore"]

NodeKey = tuple[uuid.UUID, str]
EdgeKey = tuple[uuid.UUID, str, str, str]


@dataclass
class LineageState:
    """Every node, edge and cursor, with the indexes the two reads need."""

    nodes: dict[NodeKey, LineageNode] = field(default_factory=dict)
    edges: dict[EdgeKey, LineageEdge] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)
    by_hash: dict[str, set[NodeKey]] = field(default_factory=lambda: defaultdict(set))
    by_session: dict[uuid.UUID, set[NodeKey]] = field(default_factory=lambda: defaultdict(set))
    edges_of_session: dict[uuid.UUID, set[EdgeKey]] = field(
        default_factory=lambda: defaultdict(set)
    )
    edges_at: dict[NodeKey, set[EdgeKey]] = field(default_factory=lambda: defaultdict(set))

    def apply(self, batch: LineageBatch) -> None:
        for node in batch.nodes:
            key = (node.session_id, node.id)
            existing = self.nodes.get(key)
            if existing is not None and not replaces(existing, node):
                continue
            if existing is not None and existing.hash is not None:
                self.by_hash[existing.hash].discard(key)
            self.nodes[key] = node
            self.by_session[node.session_id].add(key)
            if node.hash is not None:
                self.by_hash[node.hash].add(key)
        for edge in batch.edges:
            if edge.key in self.edges:
                continue
            self.edges[edge.key] = edge
            self.edges_of_session[edge.session_id].add(edge.key)
            self.edges_at[(edge.session_id, edge.source)].add(edge.key)
            self.edges_at[(edge.session_id, edge.target)].add(edge.key)
        if batch.cursor > self.cursors.get(batch.cursor_name, -1):
            self.cursors[batch.cursor_name] = batch.cursor

    def graph(self, session_id: uuid.UUID) -> LineageGraph:
        nodes = sorted(
            (self.nodes[k] for k in self.by_session.get(session_id, ())), key=lambda n: n.id
        )
        edges = sorted(
            (self.edges[k] for k in self.edges_of_session.get(session_id, ())),
            key=lambda e: (e.source, e.target, e.kind),
        )
        return LineageGraph(nodes, edges)

    def uses(self, content_hash: str, tenant: str | None) -> list[HashUse]:
        found: list[HashUse] = []
        for key in self.by_hash.get(content_hash, ()):
            content = self.nodes[key]
            if tenant is not None and content.tenant != tenant:
                continue
            for edge_key in self.edges_at.get(key, ()):
                edge = self.edges[edge_key]
                if edge.kind == "used" and edge.source == content.id:
                    execution_id = edge.target
                elif edge.kind == "produced" and edge.target == content.id:
                    execution_id = edge.source
                else:
                    continue
                execution = self.nodes.get((content.session_id, execution_id))
                found.append(HashUse(content, edge, execution))
        return sorted(found, key=lambda use: use.key)


class MemoryLineageStore:
    """:class:`~limit_graph.storage.lineage.LineageStore` in process memory."""

    def __init__(self, state: LineageState | None = None) -> None:
        self._state = state or LineageState()
        self._lock = asyncio.Lock()

    async def _ready(self) -> LineageState:
        """The state, loaded (the file store reads its log on first use)."""
        return self._state

    async def cursor(self, name: str = GRAPH_CURSOR) -> int:
        state = await self._ready()
        return state.cursors.get(name, -1)

    async def apply(self, batch: LineageBatch) -> None:
        state = await self._ready()
        async with self._lock:
            await self._persist(batch)
            state.apply(batch)

    async def _persist(self, batch: LineageBatch) -> None:
        """Make ``batch`` durable before it is applied; memory has nothing to do."""

    async def session_graph(self, session_id: uuid.UUID) -> LineageGraph:
        state = await self._ready()
        async with self._lock:
            return state.graph(session_id)

    async def uses_of(
        self,
        content_hash: str,
        *,
        tenant: str | None,
        limit: int = 100,
        after: UseKey | None = None,
    ) -> list[HashUse]:
        state = await self._ready()
        async with self._lock:
            uses = state.uses(content_hash, tenant)
        if after is not None:
            uses = [u for u in uses if u.key > after]
        return uses[:limit]
