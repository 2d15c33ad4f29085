"""Executions within a session: execute (an agent or a workflow), results, status."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from fastapi import APIRouter, Body, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from limit_graph.api.deps import CanExecuteInSessions, CanReadSessions, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.schemas import ExecuteRequest, ExecutionPage, FanOutOut, SessionStatusOut
from limit_graph.api.workflow_schemas import WorkflowExecuteRequest
from limit_graph.core.models import Execution, ExecutionState, WorkflowRun
from limit_graph.orchestration.executions import ExecuteCommand

M = TypeVar("M", bound=BaseModel)

EXECUTE_BODIES = (ExecuteRequest, WorkflowExecuteRequest)
"""The two bodies of ``/execute``, told apart by a ``workflow`` key; their schemas are
added to the OpenAPI document's components (``api/app.py``)."""

router = APIRouter(
    prefix="/sessions/{session_id:uuid}", tags=["executions"], route_class=IJSONRoute
)


def execution_response(response: Response, execution: Execution) -> Execution:
    """200 with a finished execution; 202 and a ``Location`` while it still runs."""
    if not execution.state.is_final:
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = f"/sessions/{execution.session_id}/executions/{execution.id}"
    return execution


def _parse(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in errors], body=body
        ) from None


def workflow_response(response: Response, run: WorkflowRun) -> WorkflowRun:
    """200 with a finished run; 202 and a ``Location`` while it still runs."""
    if not run.state.is_final:
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = f"/sessions/{run.session_id}/workflows/{run.id}"
    return run


_EXECUTE_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": f"#/components/schemas/{m.__name__}"} for m in EXECUTE_BODIES
                    ]
                }
            }
        },
    }
}


@router.post(
    "/execute",
    response_model=Execution | FanOutOut | WorkflowRun,
    responses={
        202: {
            "model": Execution | FanOutOut | WorkflowRun,
            "description": "Accepted; still running",
        }
    },
    openapi_extra=_EXECUTE_DOC,
)
async def execute(
    session_id: uuid.UUID,
    response: Response,
    platform: CurrentPlatform,
    principal: CanExecuteInSessions,
    raw: dict[str, Any] = Body(),
) -> Execution | FanOutOut | WorkflowRun:
    """Run an agent (with ``fan_out``: once on each named instance, a FanOut answer), or
    with ``workflow``, a workflow run (a WorkflowRun answer)."""
    if "workflow" in raw:
        run_body = _parse(WorkflowExecuteRequest, raw)
        run = await platform.workflows.run(
            principal, session_id, run_body.workflow, run_body.params, wait_s=run_body.wait_s
        )
        return workflow_response(response, run)
    body = _parse(ExecuteRequest, raw)
    command = ExecuteCommand(
        agent=body.agent,
        inputs=body.inputs,
        backend=body.backend,
        timeout_s=body.timeout_s,
        idempotency_key=body.idempotency_key,
        wait_s=body.wait_s,
        inline=body.inline,
        allow_cached=body.allow_cached,
        fan_out=tuple(body.fan_out or ()),
    )
    if command.fan_out:
        fanned = await platform.executions.execute_fan_out(principal, session_id, command)
        if not fanned.finished:
            response.status_code = status.HTTP_202_ACCEPTED
        states = {e.state for e in fanned.executions}
        if not fanned.finished:
            summary = "running"
        elif states == {ExecutionState.SUCCEEDED}:
            summary = "succeeded"
        else:
            summary = "partial" if ExecutionState.SUCCEEDED in states else "failed"
        return FanOutOut(state=summary, executions=fanned.executions, aggregate=fanned.aggregate)
    execution = await platform.executions.execute(principal, session_id, command)
    return execution_response(response, execution)


def execute_body_schemas() -> dict[str, Any]:
    """Component schemas of the two ``/execute`` bodies (and what they refer to)."""
    adapter: TypeAdapter[Any] = TypeAdapter(ExecuteRequest | WorkflowExecuteRequest)
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    return dict(schema.get("$defs", {}))


@router.get("/results", response_model=ExecutionPage)
async def results(
    session_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanReadSessions,
    state: ExecutionState | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=512),
) -> ExecutionPage:
    page = await platform.executions.results(
        principal, session_id, state=state, limit=limit, cursor=cursor
    )
    return ExecutionPage(items=page.items, next_cursor=page.next_cursor)


@router.get("/status", response_model=SessionStatusOut)
async def session_status(
    session_id: uuid.UUID, platform: CurrentPlatform, principal: CanReadSessions
) -> SessionStatusOut:
    found = await platform.executions.status(principal, session_id)
    return SessionStatusOut(
        session_id=found.session.id,
        state=found.session.state.value,
        counts=found.counts,
        backends=found.backends,
        updated_at=found.updated_at,
    )


@router.get("/executions/{execution_id:uuid}", response_model=Execution)
async def get_execution(
    session_id: uuid.UUID,
    execution_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanReadSessions,
) -> Execution:
    return await platform.executions.get(principal, session_id, execution_id)


@router.post("/executions/{execution_id:uuid}/cancel", response_model=Execution)
async def cancel_execution(
    session_id: uuid.UUID,
    execution_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanExecuteInSessions,
) -> Execution:
    """Cancel an unfinished execution (409 if it already ended)."""
    return await platform.executions.cancel(principal, session_id, execution_id)
