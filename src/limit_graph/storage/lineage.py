"""The lineage store: the graph of what each execution used and produced, by content hash.

Every backend exposes one as ``storage.lineage``.  The graph is derived from the ledger
by a follower off the request path (:mod:`limit_graph.orchestration.lineage`), which
writes each batch of nodes and edges *with* the ledger index it has derived up to, in
one transaction (:meth:`LineageStore.apply`): a crash loses nothing (the batch and its
cursor are both there or both not) and doubles nothing (every write is an idempotent
upsert, and a cursor only moves forward).

A graph belongs to a session: a node is keyed by (session, id), an edge by (session,
source, target, kind), and both carry the session's tenant.  Content nodes are named by
their hash (``sha256:<hex>``), so the same content is one node within a session and the
same hash across sessions: "which executions used or produced this" is a look-up by
hash (:meth:`LineageStore.uses_of`).  When the same content is seen twice the first
node stays, with one exception, :func:`replaces`:

>>> s = uuid.UUID(int=1)
>>> given = LineageNode(s, "sha256:ab", "input", "ab", "acme", "x", {}, entry=3)
>>> made = LineageNode(s, "sha256:ab", "output", "ab", "acme", "echo result", {}, entry=9)
>>> replaces(given, made), replaces(made, given)
(True, False)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from limit_graph.core.errors import InvalidInput

__all__ = [
    "EDGE_KINDS",
    "GRAPH_CURSOR",
    "NODE_KINDS",
    "OPENLINEAGE_CURSOR",
    "EdgeKind",
    "HashUse",
    "LineageBatch",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "LineageStore",
    "NodeKind",
    "UseKey",
    "check_hash",
    "execution_node_id",
    "replaces",
]

NodeKind = Literal["input", "output", "execution", "dataset", "circuit"]
EdgeKind = Literal["used", "produced", "informed"]
"""``used``: content → the execution that read it; ``produced``: an execution → its
result; ``informed``: an upstream execution → the workflow step that waited for it (W3C
PROV's *wasInformedBy*)."""
NODE_KINDS: tuple[NodeKind, ...] = get_args(NodeKind)
EDGE_KINDS: tuple[EdgeKind, ...] = get_args(EdgeKind)

GRAPH_CURSOR = "graph"
"""The cursor of the graph: the last ledger index derived into nodes and edges."""
OPENLINEAGE_CURSOR = "openlineage"
"""The cursor of the OpenLineage events: the last ledger index whose events were sent."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_hash(value: str) -> str:
    """A content hash as the store keys it: 64 hex digits, lower case; anything else
    is :class:`InvalidInput`.

    >>> check_hash("AB" * 32)[:4]
    'abab'
    """
    lowered = value.strip().lower()
    if not _HEX64.fullmatch(lowered):
        msg = "a content hash is 64 hexadecimal digits (a SHA-256)"
        raise InvalidInput(msg, [{"loc": ["query", "hash"], "msg": msg, "type": "value_error"}])
    return lowered


def execution_node_id(execution_id: uuid.UUID | str) -> str:
    """The id of an execution's node.

    >>> execution_node_id(uuid.UUID(int=5))
    'execution:00000000-0000-0000-0000-000000000005'
    """
    return f"execution:{execution_id}"


@dataclass(frozen=True)
class LineageNode:
    """An execution, or content one used or produced (``hash`` is set for content)."""

    session_id: uuid.UUID
    id: str
    kind: NodeKind
    hash: str | None
    tenant: str
    label: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    entry: int = -1
    """The ledger index this node was derived from."""


@dataclass(frozen=True)
class LineageEdge:
    session_id: uuid.UUID
    source: str
    target: str
    kind: EdgeKind
    tenant: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[uuid.UUID, str, str, str]:
        return (self.session_id, self.source, self.target, self.kind)


def replaces(existing: LineageNode, new: LineageNode) -> bool:
    """Whether ``new`` takes the place of the ``existing`` node of its key: content a
    session was given and later produced becomes that output; an execution's node
    follows its latest final entry; anything else stays as first seen."""
    if existing.kind == "input" and new.kind == "output":
        return True
    return existing.kind == new.kind == "execution" and new.entry > existing.entry


@dataclass(frozen=True)
class LineageBatch:
    """Nodes and edges derived from the ledger up to index ``cursor``, written together
    with that cursor (``cursor_name``: :data:`GRAPH_CURSOR` or another follower's)."""

    nodes: Sequence[LineageNode]
    edges: Sequence[LineageEdge]
    cursor: int
    cursor_name: str = GRAPH_CURSOR


@dataclass(frozen=True)
class LineageGraph:
    """One session's nodes and edges (nodes by id, edges by source, target, kind)."""

    nodes: list[LineageNode]
    edges: list[LineageEdge]


UseKey = tuple[str, str, str]
"""Where a page of :meth:`LineageStore.uses_of` ends: (session id, execution node id,
edge kind) of its last use."""


@dataclass(frozen=True)
class HashUse:
    """One execution that used (``edge.kind == "used"``) or produced the content."""

    content: LineageNode
    edge: LineageEdge
    execution: LineageNode | None
    """The execution's node (``None`` only if the graph lacks it)."""

    @property
    def key(self) -> UseKey:
        execution = self.edge.target if self.edge.kind == "used" else self.edge.source
        return (str(self.content.session_id), execution, self.edge.kind)


class LineageStore(Protocol):
    """Nodes, edges and the followers' cursors, in the backend's store."""

    async def cursor(self, name: str = GRAPH_CURSOR) -> int:
        """The last ledger index the named follower has written up to; -1 if none."""

    async def apply(self, batch: LineageBatch) -> None:
        """Upsert the batch's nodes (:func:`replaces` decides a conflict) and edges (the
        first stays) and move its cursor to ``batch.cursor`` unless it is past it
        already, all in one transaction."""

    async def session_graph(self, session_id: uuid.UUID) -> LineageGraph:
        """The session's whole graph, nodes by id, edges by (source, target, kind)."""

    async def uses_of(
        self,
        content_hash: str,
        *,
        tenant: str | None,
        limit: int = 100,
        after: UseKey | None = None,
    ) -> list[HashUse]:
        """The executions that used or produced content with this hash, in every session
        of ``tenant`` (``None``: of every tenant), by :attr:`HashUse.key`, after
        ``after``, at most ``limit``."""
