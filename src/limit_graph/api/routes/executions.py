"""Executions within a session: execute, results, status, one execution."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from limit_graph.api.deps import CanReadExecutions, CanRunExecutions, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.schemas import ExecuteRequest, ExecutionPage, FanOutOut, SessionStatusOut
from limit_graph.core.models import Execution, ExecutionState
from limit_graph.orchestration.executions import ExecuteCommand

router = APIRouter(
    prefix="/sessions/{session_id:uuid}", tags=["executions"], route_class=IJSONRoute
)


def execution_response(response: Response, execution: Execution) -> Execution:
    """200 with a finished execution; 202 and a ``Location`` while it still runs."""
    if not execution.state.is_final:
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = f"/sessions/{execution.session_id}/executions/{execution.id}"
    return execution


@router.post(
    "/execute",
    response_model=Execution | FanOutOut,
    responses={202: {"model": Execution | FanOutOut, "description": "Accepted; still running"}},
)
async def execute(
    session_id: uuid.UUID,
    body: ExecuteRequest,
    response: Response,
    platform: CurrentPlatform,
    principal: CanRunExecutions,
) -> Execution | FanOutOut:
    """Run an agent; with ``fan_out``, once on each named instance (a FanOut answer)."""
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


@router.get("/results", response_model=ExecutionPage)
async def results(
    session_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanReadExecutions,
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
    session_id: uuid.UUID, platform: CurrentPlatform, principal: CanReadExecutions
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
    principal: CanReadExecutions,
) -> Execution:
    return await platform.executions.get(principal, session_id, execution_id)


@router.post("/executions/{execution_id:uuid}/cancel", response_model=Execution)
async def cancel_execution(
    session_id: uuid.UUID,
    execution_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanRunExecutions,
) -> Execution:
    """Cancel an unfinished execution (409 if it already ended)."""
    return await platform.executions.cancel(principal, session_id, execution_id)
