"""Workflows: the spec's schema, validation, and a session's workflow runs.

A run is started by ``POST /sessions/{id}/execute`` with ``{"workflow": ...}``
(``routes/executions.py``); these routes read, cancel and resume it.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Response

from limit_graph.api.deps import (
    CanExecuteInSessions,
    CanReadSessions,
    CanValidateWorkflows,
    CurrentPlatform,
)
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.routes.executions import workflow_response
from limit_graph.api.workflow_schemas import (
    ArtifactInfo,
    ArtifactList,
    WorkflowResumeRequest,
    WorkflowRunPage,
    WorkflowValidateRequest,
    WorkflowValidation,
)
from limit_graph.core.models import WorkflowRun
from limit_graph.core.workflows import WorkflowSpec

router = APIRouter(tags=["workflows"], route_class=IJSONRoute)

RUNS = "/sessions/{session_id:uuid}/workflows"


@router.get("/workflows/schema", response_model=dict[str, Any])
async def workflow_schema(_: CanValidateWorkflows) -> dict[str, Any]:
    """The JSON Schema of a workflow spec (YAML or JSON documents follow it)."""
    return WorkflowSpec.model_json_schema(by_alias=True)


@router.post("/workflows/validate", response_model=WorkflowValidation)
async def validate_workflow(
    body: WorkflowValidateRequest, platform: CurrentPlatform, principal: CanValidateWorkflows
) -> WorkflowValidation:
    """Every problem of a workflow in one 422 answer, or its DAG; nothing runs."""
    valid = await platform.workflows.validate(
        principal, body.workflow, params=body.params, session_id=body.session_id
    )
    graph = valid.graph.to_json()
    return WorkflowValidation(
        name=valid.spec.name,
        spec_sha256=valid.sha256,
        steps=len(valid.graph.steps),
        nodes=graph["nodes"],
        edges=graph["edges"],
        mermaid=valid.graph.mermaid(),
    )


@router.get(RUNS, response_model=WorkflowRunPage)
async def list_runs(
    session_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanReadSessions,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=512),
) -> WorkflowRunPage:
    page = await platform.workflows.list_runs(principal, session_id, limit=limit, cursor=cursor)
    return WorkflowRunPage(items=page.items, next_cursor=page.next_cursor)


@router.get(RUNS + "/{run_id:uuid}", response_model=WorkflowRun)
async def get_run(
    session_id: uuid.UUID,
    run_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanReadSessions,
    wait_s: float = Query(default=0.0, ge=0, le=60, description="Wait this long for the end."),
) -> WorkflowRun:
    if wait_s > 0:
        return await platform.workflows.wait(principal, session_id, run_id, wait_s)
    return await platform.workflows.get(principal, session_id, run_id)


@router.post(RUNS + "/{run_id:uuid}/cancel", response_model=WorkflowRun)
async def cancel_run(
    session_id: uuid.UUID,
    run_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanExecuteInSessions,
) -> WorkflowRun:
    """Stop the running steps (on runners too) and skip the rest; 409 once it ended."""
    return await platform.workflows.cancel(principal, session_id, run_id)


@router.post(
    RUNS + "/{run_id:uuid}/resume",
    response_model=WorkflowRun,
    responses={202: {"model": WorkflowRun, "description": "Resumed; still running"}},
)
async def resume_run(
    session_id: uuid.UUID,
    run_id: uuid.UUID,
    response: Response,
    platform: CurrentPlatform,
    principal: CanExecuteInSessions,
    body: WorkflowResumeRequest | None = None,
) -> WorkflowRun:
    """Run the failed, cancelled and skipped steps and their downstream again; with
    ``from_step``, also that step and everything downstream of it."""
    request = body or WorkflowResumeRequest()
    run = await platform.workflows.resume(
        principal, session_id, run_id, from_step=request.from_step, wait_s=request.wait_s
    )
    return workflow_response(response, run)


@router.get(RUNS + "/{run_id:uuid}/artifacts", response_model=ArtifactList)
async def list_artifacts(
    session_id: uuid.UUID,
    run_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanReadSessions,
) -> ArtifactList:
    found = await platform.workflows.artifacts(principal, session_id, run_id)
    base = f"/sessions/{session_id}/workflows/{run_id}/artifacts"
    return ArtifactList(
        items=[
            ArtifactInfo(
                name=a.name,
                kind=a.kind,
                media_type=a.media_type,
                description=a.description,
                link=f"{base}/{a.name}",
            )
            for a in found
        ]
    )


@router.get(
    RUNS + "/{run_id:uuid}/artifacts/{name}",
    response_class=Response,
    responses={
        200: {
            "content": {"text/markdown": {}, "application/json": {}, "image/png": {}},
            "description": "The artifact: markdown text, a table's rows as JSON, or a PNG.",
        }
    },
)
async def get_artifact(
    session_id: uuid.UUID,
    run_id: uuid.UUID,
    name: str,
    platform: CurrentPlatform,
    principal: CanReadSessions,
) -> Response:
    artifact = await platform.workflows.artifact(principal, session_id, run_id, name)
    return Response(content=artifact.content(), media_type=artifact.media_type)
