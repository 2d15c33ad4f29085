"""The REST endpoints the client covers: each a request and how to read its answer.

Both clients (:mod:`.sync` and :mod:`.aio`) send these the same way, so what a method
asks for and what it returns is written once, here.

>>> call = get_session("2b1f0c1e-0000-4000-8000-000000000000")
>>> call.method, call.path
('GET', '/sessions/2b1f0c1e-0000-4000-8000-000000000000')
>>> workflow_body({"name": "demo", "steps": []})
{'name': 'demo', 'steps': []}
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from limit_graph.client.paging import Page
from limit_graph.client.records import (
    Agent,
    ArchiveSummary,
    Artifact,
    ArtifactInfo,
    SessionStatus,
    Validation,
    read_record,
)
from limit_graph.core.models import (
    BackendKind,
    Execution,
    ExecutionState,
    Session,
    SessionConfig,
    SessionState,
    WorkflowRun,
)

__all__ = ["Call", "Id", "WorkflowSpec", "events_path", "segment", "workflow_body"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Id = uuid.UUID | str
"""A session, execution or run id: a UUID or its text."""

WorkflowSpec = Mapping[str, Any] | BaseModel | str | os.PathLike[str]
"""A workflow: the spec as a mapping or pydantic model, its YAML/JSON text, or a file."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reader of its successful answer.  ``handles`` are error
    statuses the reader answers itself; ``wait_s`` is how long the server may hold
    the request before it answers (added to the read timeout)."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    wait_s: float = 0.0
    handles: frozenset[int] = field(default_factory=frozenset)


def segment(value: Id) -> str:
    return quote(str(value), safe="")


def _query(**values: Any) -> dict[str, Any]:
    return {k: str(v) for k, v in values.items() if v is not None}


def _nothing(_: httpx.Response) -> None:
    return None


def _json(response: httpx.Response) -> Any:
    return response.json() if response.content else None


def _record(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: read_record(model, response.json())


def _page(model: type[M]) -> Callable[[httpx.Response], Page[M]]:
    def read(response: httpx.Response) -> Page[M]:
        doc = response.json()
        items = [read_record(model, item) for item in doc["items"]]
        return Page(items, doc.get("next_cursor"))

    return read


def _items(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    return lambda response: [read_record(model, item) for item in response.json()["items"]]


def workflow_body(spec: WorkflowSpec) -> dict[str, Any] | str:
    """The ``workflow`` of a request: a mapping or model as JSON, text as it is (the
    server parses it and reports syntax errors with their line), a file's text."""
    if isinstance(spec, BaseModel):
        return spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, str):
        return spec
    return Path(spec).read_text(encoding="utf-8")


# --- sessions ----------------------------------------------------------------------


def create_session(
    name: str | None, config: SessionConfig | Mapping[str, Any] | None
) -> Call[Session]:
    if isinstance(config, SessionConfig):
        body_config: dict[str, Any] = config.model_dump(mode="json", exclude_unset=True)
    else:
        body_config = dict(config or {})
    body: dict[str, Any] = {"config": body_config}
    if name is not None:
        body["name"] = name
    return Call("POST", "/sessions", _record(Session), json=body)


def get_session(session_id: Id) -> Call[Session]:
    return Call("GET", f"/sessions/{segment(session_id)}", _record(Session))


def list_sessions(
    state: SessionState | str | None, tag: str | None, limit: int | None, cursor: str | None
) -> Call[Page[Session]]:
    params = _query(state=state, tag=tag, limit=limit, cursor=cursor)
    return Call("GET", "/sessions", _page(Session), params=params)


def complete_session(session_id: Id) -> Call[Session]:
    return Call("POST", f"/sessions/{segment(session_id)}/complete", _record(Session))


def delete_session(session_id: Id) -> Call[None]:
    return Call("DELETE", f"/sessions/{segment(session_id)}", _nothing)


def archive_session(session_id: Id) -> Call[ArchiveSummary]:
    return Call("POST", f"/sessions/{segment(session_id)}/archive", _record(ArchiveSummary))


def get_archive(session_id: Id) -> Call[dict[str, Any]]:
    return Call("GET", f"/sessions/{segment(session_id)}/archive", _json)


def restore_session(bundle: Mapping[str, Any]) -> Call[Session]:
    return Call("POST", "/sessions/restore", _record(Session), json=dict(bundle))


def session_status(session_id: Id) -> Call[SessionStatus]:
    return Call("GET", f"/sessions/{segment(session_id)}/status", _record(SessionStatus))


# --- executions --------------------------------------------------------------------


def execute(
    session_id: Id,
    agent: str,
    inputs: Mapping[str, Any] | None,
    *,
    backend: BackendKind | str | None,
    timeout_s: float | None,
    idempotency_key: str | None,
    wait_s: float,
    allow_cached: bool,
) -> Call[Execution]:
    body: dict[str, Any] = {"agent": agent, "inputs": dict(inputs or {}), "wait_s": wait_s}
    for key, value in (
        ("backend", backend),
        ("timeout_s", timeout_s),
        ("idempotency_key", idempotency_key),
    ):
        if value is not None:
            body[key] = str(value) if key == "backend" else value
    if allow_cached:
        body["allow_cached"] = True
    path = f"/sessions/{segment(session_id)}/execute"
    return Call("POST", path, _record(Execution), json=body, wait_s=wait_s)


def list_results(
    session_id: Id, state: ExecutionState | str | None, limit: int | None, cursor: str | None
) -> Call[Page[Execution]]:
    params = _query(state=state, limit=limit, cursor=cursor)
    return Call("GET", f"/sessions/{segment(session_id)}/results", _page(Execution), params=params)


def get_execution(session_id: Id, execution_id: Id) -> Call[Execution]:
    path = f"/sessions/{segment(session_id)}/executions/{segment(execution_id)}"
    return Call("GET", path, _record(Execution))


def events_path(session_id: Id) -> str:
    """The session's event stream (read as a stream, not through a :class:`Call`)."""
    return f"/sessions/{segment(session_id)}/events"


def cancel_execution(session_id: Id, execution_id: Id) -> Call[Execution]:
    path = f"/sessions/{segment(session_id)}/executions/{segment(execution_id)}/cancel"
    return Call("POST", path, _record(Execution))


# --- agents ------------------------------------------------------------------------


def list_agents() -> Call[list[Agent]]:
    return Call("GET", "/agents", _items(Agent))


def get_agent(name: str) -> Call[Agent]:
    return Call("GET", f"/agents/{segment(name)}", _record(Agent))


# --- workflows ---------------------------------------------------------------------


def _validation(response: httpx.Response) -> Validation:
    if response.status_code == 422:
        return Validation.from_problem(response.json())
    return read_record(Validation, response.json())


def validate_workflow(
    spec: WorkflowSpec, params: Mapping[str, Any] | None, session_id: Id | None
) -> Call[Validation]:
    body: dict[str, Any] = {"workflow": workflow_body(spec)}
    if params is not None:
        body["params"] = dict(params)
    if session_id is not None:
        body["session_id"] = str(session_id)
    return Call("POST", "/workflows/validate", _validation, json=body, handles=frozenset({422}))


def workflow_schema() -> Call[dict[str, Any]]:
    return Call("GET", "/workflows/schema", _json)


def _runs(session_id: Id) -> str:
    return f"/sessions/{segment(session_id)}/workflows"


def run_workflow(
    session_id: Id, spec: WorkflowSpec, params: Mapping[str, Any] | None, wait_s: float
) -> Call[WorkflowRun]:
    body = {"workflow": workflow_body(spec), "params": dict(params or {}), "wait_s": wait_s}
    path = f"/sessions/{segment(session_id)}/execute"
    return Call("POST", path, _record(WorkflowRun), json=body, wait_s=wait_s)


def list_workflow_runs(
    session_id: Id, limit: int | None, cursor: str | None
) -> Call[Page[WorkflowRun]]:
    params = _query(limit=limit, cursor=cursor)
    return Call("GET", _runs(session_id), _page(WorkflowRun), params=params)


def get_workflow_run(session_id: Id, run_id: Id, wait_s: float) -> Call[WorkflowRun]:
    path = f"{_runs(session_id)}/{segment(run_id)}"
    params = _query(wait_s=wait_s or None)
    return Call("GET", path, _record(WorkflowRun), params=params, wait_s=wait_s)


def cancel_workflow_run(session_id: Id, run_id: Id) -> Call[WorkflowRun]:
    return Call("POST", f"{_runs(session_id)}/{segment(run_id)}/cancel", _record(WorkflowRun))


def resume_workflow_run(
    session_id: Id, run_id: Id, from_step: str | None, wait_s: float
) -> Call[WorkflowRun]:
    body: dict[str, Any] = {"wait_s": wait_s}
    if from_step is not None:
        body["from_step"] = from_step
    path = f"{_runs(session_id)}/{segment(run_id)}/resume"
    return Call("POST", path, _record(WorkflowRun), json=body, wait_s=wait_s)


def list_artifacts(session_id: Id, run_id: Id) -> Call[list[ArtifactInfo]]:
    path = f"{_runs(session_id)}/{segment(run_id)}/artifacts"
    return Call("GET", path, _items(ArtifactInfo))


def get_artifact(session_id: Id, run_id: Id, name: str) -> Call[Artifact]:
    def read(response: httpx.Response) -> Artifact:
        media_type = response.headers.get("content-type", "application/octet-stream")
        return Artifact(name, media_type, response.content)

    path = f"{_runs(session_id)}/{segment(run_id)}/artifacts/{segment(name)}"
    return Call("GET", path, read)
