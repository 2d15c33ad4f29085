"""The documents the client returns beside the core records, and how it reads them.

Sessions, executions and workflow runs come back as the platform's own records
(:mod:`limit_graph.core.models`); the rest (agents, status, a workflow's validation,
artifacts) are small models here.  A newer server may add fields to any document (the
REST contract allows it), so :func:`read_record` drops the ones this client does not
know instead of failing on them.

>>> from limit_graph.core.models import ErrorInfo
>>> read_record(ErrorInfo, {"type": "ValueError", "message": "no", "hint": "new field"})
ErrorInfo(type='ValueError', message='no', retryable=False)
"""

from __future__ import annotations

import types
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from limit_graph.core.models import BackendKind

__all__ = [
    "Agent",
    "ArchiveSummary",
    "Artifact",
    "ArtifactInfo",
    "SessionStatus",
    "SpecProblem",
    "Validation",
    "WorkflowEdge",
    "WorkflowNode",
    "read_record",
]

M = TypeVar("M", bound=BaseModel)


def read_record(model: type[M], data: Any) -> M:
    """``data`` as a ``model``, fields unknown to it (at any depth) left out."""
    return model.model_validate(_known_fields(model, data))


def _known_fields(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    kept: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in data:
            kept[key] = _prune(field.annotation, data[key])
    return kept


def _prune(annotation: Any, value: Any) -> Any:
    """``value`` with unknown fields left out of the models ``annotation`` names."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _known_fields(annotation, value)
    origin = get_origin(annotation)
    if origin is list and isinstance(value, list) and get_args(annotation):
        (item,) = get_args(annotation)
        return [_prune(item, v) for v in value]
    if origin in (Union, types.UnionType):
        models = [
            a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if len(models) == 1:
            return _prune(models[0], value)
    return value


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Agent(_Document):
    """An agent the platform can run, with the JSON Schemas of its input and output."""

    id: str
    version: str
    description: str = ""
    backends: list[BackendKind] = Field(default_factory=list)
    deterministic: bool = False
    input_schema: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] = Field(default_factory=dict)


class SessionStatus(_Document):
    """A session's state and its executions counted by state (and by backend)."""

    session_id: uuid.UUID
    state: str
    counts: dict[str, int]
    backends: dict[str, dict[str, int]] = Field(default_factory=dict)
    updated_at: datetime


class ArchiveSummary(_Document):
    """What archiving a session wrote: the bundle's hash and how much it holds."""

    session_id: uuid.UUID
    bundle_sha256: str
    entries: int
    executions: int = 0


class WorkflowNode(_Document):
    """One step of a validated workflow, as its graph shows it."""

    id: str
    agent: str
    backend: str | None = None
    map: bool = False
    when: str | None = None


class WorkflowEdge(_Document):
    """``from_`` must finish before ``to`` starts (``from`` in JSON)."""

    from_: str = Field(alias="from")
    to: str


class SpecProblem(_Document):
    """One problem validation found: the step, a JSON pointer into the spec, the message;
    ``line`` and ``column`` for YAML/JSON syntax errors."""

    step: str | None = None
    field: str | None = None
    msg: str = ""
    type: str | None = None
    line: int | None = None
    column: int | None = None

    @classmethod
    def of(cls, error: dict[str, Any]) -> SpecProblem:
        """An item of a problem document's ``errors``; request-level ones (``loc``
        instead of ``field``) get their location as the field."""
        problem = read_record(cls, error)
        if problem.field is None and isinstance(error.get("loc"), list):
            pointer = "/" + "/".join(str(part) for part in error["loc"])
            problem = problem.model_copy(update={"field": pointer})
        return problem


class Validation(_Document):
    """What validating a workflow found: for a valid one its DAG (nodes, edges, Mermaid
    text); for an invalid one every problem, each with its step and field."""

    valid: bool
    name: str | None = None
    spec_sha256: str | None = None
    steps: int | None = None
    nodes: list[WorkflowNode] = Field(default_factory=list)
    edges: list[WorkflowEdge] = Field(default_factory=list)
    mermaid: str | None = None
    detail: str | None = None
    errors: list[SpecProblem] = Field(default_factory=list)

    @classmethod
    def from_problem(cls, problem: dict[str, Any]) -> Validation:
        """The validation a 422 problem document reports (``errors`` item by item)."""
        errors = problem.get("errors")
        return cls(
            valid=False,
            detail=problem.get("detail"),
            errors=[SpecProblem.of(e) for e in errors or [] if isinstance(e, dict)],
        )

    def graph(self) -> dict[str, Any]:
        """The DAG as the server wrote it: ``{"nodes": [...], "edges": [{"from", "to"}]}``."""
        return {
            "nodes": [n.model_dump(mode="json") for n in self.nodes],
            "edges": [e.model_dump(mode="json", by_alias=True) for e in self.edges],
        }


class ArtifactInfo(_Document):
    """An artifact a workflow run published (markdown summary, result table, plot)."""

    name: str
    kind: str | None = None
    media_type: str = "application/octet-stream"
    description: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class Artifact:
    """An artifact's bytes and their media type."""

    name: str
    media_type: str
    content: bytes
