"""Agents: list, describe (with JSON Schemas), execute with or without a session."""

from __future__ import annotations

from fastapi import APIRouter, Response

from limit_graph.api.deps import CanReadAgents, CanRunExecutions, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.routes.executions import execution_response
from limit_graph.api.schemas import AgentExecuteRequest, AgentList, AgentOut
from limit_graph.core.models import Execution
from limit_graph.orchestration.executions import ExecuteCommand

router = APIRouter(prefix="/agents", tags=["agents"], route_class=IJSONRoute)


@router.get("", response_model=AgentList)
async def list_agents(platform: CurrentPlatform, _: CanReadAgents) -> AgentList:
    return AgentList(
        items=[AgentOut.model_validate(a.describe()) for a in platform.registry.list()]
    )


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: str, platform: CurrentPlatform, _: CanReadAgents) -> AgentOut:
    return AgentOut.model_validate(platform.registry.get(agent_id).describe())


@router.post(
    "/{agent_id}/execute",
    response_model=Execution,
    responses={202: {"model": Execution, "description": "Accepted; still running"}},
)
async def execute_agent(
    agent_id: str,
    body: AgentExecuteRequest,
    response: Response,
    platform: CurrentPlatform,
    principal: CanRunExecutions,
) -> Execution:
    command = ExecuteCommand(
        agent=agent_id,
        inputs=body.inputs,
        backend=body.backend,
        timeout_s=body.timeout_s,
        wait_s=body.wait_s,
    )
    execution = await platform.execute_agent(principal, body.session_id, command)
    return execution_response(response, execution)
