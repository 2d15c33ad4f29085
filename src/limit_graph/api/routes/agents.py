"""Agents: list, describe (with JSON Schemas), execute with or without a session.

Several versions of one agent coexist: the list has one item per version, and an id
is a name (its newest version) or ``name@version``, in paths as in execute bodies.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from limit_graph.api.deps import CanExecuteAgents, CanReadAgents, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.routes.executions import execution_response
from limit_graph.api.schemas import AgentExecuteRequest, AgentList, AgentOut
from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import Execution
from limit_graph.orchestration.executions import ExecuteCommand

router = APIRouter(prefix="/agents", tags=["agents"], route_class=IJSONRoute)


def agent_out(registry: AgentRegistry, agent: AgentSpec) -> AgentOut:
    latest = registry.get(agent.name).version == agent.version
    return AgentOut.model_validate({**agent.describe(), "latest": latest})


@router.get("", response_model=AgentList)
async def list_agents(platform: CurrentPlatform, _: CanReadAgents) -> AgentList:
    """Every agent, one item per version, by name and then version (oldest first)."""
    registry = platform.registry
    return AgentList(items=[agent_out(registry, a) for a in registry.list()])


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(
    agent_id: str,
    platform: CurrentPlatform,
    _: CanReadAgents,
    version: Annotated[
        str | None,
        Query(description="This version instead of the newest; `/agents/NAME@VERSION` too."),
    ] = None,
) -> AgentOut:
    """The agent's newest version, or ``version``; 404 names the versions there are."""
    name, pinned = agent_id.partition("@")[::2]
    if pinned and version is not None and pinned != version:
        raise InvalidInput(
            f"{agent_id!r} names version {pinned} and ?version= names {version}",
            [{"loc": ["query", "version"], "msg": "two versions named", "type": "value_error"}],
        )
    agent = platform.registry.get(name, version or pinned or None)
    return agent_out(platform.registry, agent)


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
    principal: CanExecuteAgents,
) -> Execution:
    """Run in ``session_id`` (needs ``session.execute`` on it) or, without one, in a
    one-off session (needs ``session.create``), decided by the platform."""
    command = ExecuteCommand(
        agent=agent_id,
        inputs=body.inputs,
        backend=body.backend,
        timeout_s=body.timeout_s,
        wait_s=body.wait_s,
    )
    execution = await platform.execute_agent(principal, body.session_id, command)
    return execution_response(response, execution)
