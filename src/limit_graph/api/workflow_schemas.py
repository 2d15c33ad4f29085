"""Request and response bodies of the workflow endpoints."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from limit_graph.core.models import WorkflowRun

__all__ = [
    "ArtifactInfo",
    "ArtifactList",
    "GraphEdge",
    "GraphNode",
    "WorkflowExecuteRequest",
    "WorkflowResumeRequest",
    "WorkflowRunPage",
    "WorkflowValidateRequest",
    "WorkflowValidation",
]

SPEC_DESCRIPTION = (
    "The workflow: the spec as an object, or its YAML or JSON text "
    "(its schema: GET /workflows/schema)."
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowExecuteRequest(_Request):
    workflow: dict[str, Any] | str = Field(description=SPEC_DESCRIPTION)
    params: dict[str, Any] = Field(
        default_factory=dict, description="Values of the workflow's params for this run."
    )
    wait_s: float = Field(
        default=0.0,
        ge=0,
        le=300,
        strict=True,
        description="Wait up to this long for the run to end (200 if it did, else 202).",
    )


class WorkflowValidateRequest(_Request):
    workflow: dict[str, Any] | str = Field(description=SPEC_DESCRIPTION)
    params: dict[str, Any] | None = Field(
        default=None, description="Check these run params too (missing, unknown, mistyped)."
    )
    session_id: uuid.UUID | None = Field(
        default=None, description="Check the backends against this session's config."
    )


class WorkflowResumeRequest(_Request):
    from_step: str | None = Field(
        default=None,
        max_length=128,
        description="Also run this step and everything downstream of it again.",
    )
    wait_s: float = Field(default=0.0, ge=0, le=300, strict=True)


class GraphNode(BaseModel):
    id: str
    agent: str
    backend: str
    map: bool
    when: str | None = None


GraphEdge = dict[Literal["from", "to"], str]


class WorkflowValidation(BaseModel):
    valid: Literal[True] = True
    name: str
    spec_sha256: str
    steps: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    mermaid: str = Field(description="The DAG as Mermaid flowchart text.")


class WorkflowRunPage(BaseModel):
    items: list[WorkflowRun]
    next_cursor: str | None = None


class ArtifactInfo(BaseModel):
    name: str
    kind: Literal["markdown", "table", "image"]
    media_type: str
    description: str
    link: str


class ArtifactList(BaseModel):
    items: list[ArtifactInfo]
