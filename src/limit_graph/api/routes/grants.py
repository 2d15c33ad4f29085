"""Session grants: the owner (or a holder of ``admin`` on the session) lets a principal
or a group of the tenant ``read``, ``execute`` or ``admin`` it."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from limit_graph.api.deps import CanGrantSessions, CanReadSessions, CurrentPlatform
from limit_graph.api.identity_schemas import GrantCreate, GrantList, GrantOut
from limit_graph.api.ijson import IJSONRoute

router = APIRouter(
    prefix="/sessions/{session_id:uuid}/grants", tags=["sessions"], route_class=IJSONRoute
)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GrantOut)
async def create_grant(
    session_id: uuid.UUID, body: GrantCreate, platform: CurrentPlatform, principal: CanGrantSessions
) -> GrantOut:
    grant = await platform.grants.create(
        principal,
        session_id,
        permission=body.permission,
        principal_id=body.principal_id,
        group=body.group,
    )
    return GrantOut.of(grant)


@router.get("", response_model=GrantList)
async def list_grants(
    session_id: uuid.UUID, platform: CurrentPlatform, principal: CanReadSessions
) -> GrantList:
    grants = await platform.grants.list(principal, session_id)
    return GrantList(items=[GrantOut.of(g) for g in grants])


@router.delete("/{grant_id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_grant(
    session_id: uuid.UUID,
    grant_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanGrantSessions,
) -> Response:
    await platform.grants.delete(principal, session_id, grant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
