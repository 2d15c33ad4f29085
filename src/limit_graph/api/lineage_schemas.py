"""Response bodies of the lineage routes: a session's graph, and the uses of a hash.

Content hashes are hex SHA-256, as every content hash of the platform; a content node's
id is ``sha256:<hash>`` (a sealed field's: its ``sealed:sha256:`` commitment), an
execution's ``execution:<id>``.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from limit_graph.orchestration.lineage_reads import SessionLineage
from limit_graph.storage.lineage import EdgeKind, HashUse, LineageEdge, LineageNode, NodeKind

__all__ = [
    "LineageEdgeOut",
    "LineageNodeOut",
    "LineageUseOut",
    "LineageUsesOut",
    "SessionLineageOut",
]


class LineageNodeOut(BaseModel):
    id: str
    kind: NodeKind = Field(description="input, output, execution, dataset or circuit.")
    hash: str | None = Field(description="SHA-256 (hex) of the content; none for an execution.")
    label: str
    attributes: dict[str, Any] = Field(
        description="An execution's agent, version, backend, state, times, workflow step; "
        "a circuit's format; a dataset's rows or file path."
    )

    @classmethod
    def of(cls, node: LineageNode) -> LineageNodeOut:
        return cls(
            id=node.id,
            kind=node.kind,
            hash=node.hash,
            label=node.label,
            attributes=dict(node.attributes),
        )


class LineageEdgeOut(BaseModel):
    source: str
    target: str
    kind: EdgeKind = Field(
        description="used: content → execution; produced: execution → output; informed: "
        "an upstream execution → the workflow step that waited for it."
    )
    attributes: dict[str, Any] = Field(description="For used: the input names it was under.")

    @classmethod
    def of(cls, edge: LineageEdge) -> LineageEdgeOut:
        return cls(
            source=edge.source,
            target=edge.target,
            kind=edge.kind,
            attributes=dict(edge.attributes),
        )


class SessionLineageOut(BaseModel):
    session_id: uuid.UUID
    nodes: list[LineageNodeOut]
    edges: list[LineageEdgeOut]
    ledger_entries: int = Field(description="How many ledger entries the graph was derived from.")

    @classmethod
    def of(cls, found: SessionLineage) -> SessionLineageOut:
        return cls(
            session_id=found.session_id,
            nodes=[LineageNodeOut.of(n) for n in found.graph.nodes],
            edges=[LineageEdgeOut.of(e) for e in found.graph.edges],
            ledger_entries=found.covered,
        )


class LineageUseOut(BaseModel):
    """One execution that used or produced the content."""

    execution_id: uuid.UUID
    session_id: uuid.UUID
    tenant: str
    relation: EdgeKind = Field(description="used or produced.")
    kind: NodeKind = Field(
        description="What the content was to it: input, dataset, circuit, output."
    )
    names: list[str] = Field(description="The inputs (dotted paths) it was under, when used.")
    agent: str | None
    agent_version: str | None
    state: str | None
    finished_at: str | None
    workflow: dict[str, Any] | None = Field(description="The workflow run and step, if any.")

    @classmethod
    def of(cls, use: HashUse) -> LineageUseOut:
        ran = use.edge.target if use.edge.kind == "used" else use.edge.source
        attributes = dict(use.execution.attributes) if use.execution is not None else {}
        return cls(
            execution_id=uuid.UUID(ran.removeprefix("execution:")),
            session_id=use.content.session_id,
            tenant=use.content.tenant,
            relation=use.edge.kind,
            kind=use.content.kind,
            names=list(use.edge.attributes.get("names", [])),
            agent=attributes.get("agent"),
            agent_version=attributes.get("agent_version"),
            state=attributes.get("state"),
            finished_at=attributes.get("finished_at"),
            workflow=attributes.get("workflow"),
        )


class LineageUsesOut(BaseModel):
    hash: str
    items: list[LineageUseOut]
    next_cursor: str | None
