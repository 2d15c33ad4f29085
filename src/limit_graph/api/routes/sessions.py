"""Sessions: create, read, list, rename, complete, delete, archive, restore."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Query, Response, status

from limit_graph.api.deps import (
    CanArchiveSessions,
    CanCompleteSessions,
    CanCreateSessions,
    CanDeleteSessions,
    CanListSessions,
    CanReadSessions,
    CanRestoreSessions,
    CanUpdateSessions,
    CurrentPlatform,
)
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.schemas import ArchiveSummary, SessionCreate, SessionPage, SessionUpdate
from limit_graph.core.models import Session, SessionState

router = APIRouter(prefix="/sessions", tags=["sessions"], route_class=IJSONRoute)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Session)
async def create_session(
    body: SessionCreate, platform: CurrentPlatform, principal: CanCreateSessions
) -> Session:
    return await platform.sessions.create(principal, body.config, body.name)


@router.get("", response_model=SessionPage)
async def list_sessions(
    platform: CurrentPlatform,
    principal: CanListSessions,
    state: SessionState | None = None,
    tag: str | None = Query(default=None, max_length=128),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=512),
) -> SessionPage:
    page = await platform.sessions.list(principal, state=state, tag=tag, limit=limit, cursor=cursor)
    items = [await platform.with_flow_run(s, lookup=False) for s in page.items]
    return SessionPage(items=items, next_cursor=page.next_cursor)


@router.post("/restore", status_code=status.HTTP_201_CREATED, response_model=Session)
async def restore_session(
    platform: CurrentPlatform,
    principal: CanRestoreSessions,
    bundle: dict[str, Any] = Body(description="An archive bundle from GET /sessions/{id}/archive"),
) -> Session:
    return await platform.sessions.restore(principal, bundle)


@router.get("/{session_id:uuid}", response_model=Session)
async def get_session(
    session_id: uuid.UUID, platform: CurrentPlatform, principal: CanReadSessions
) -> Session:
    return await platform.with_flow_run(await platform.sessions.get(principal, session_id))


@router.patch("/{session_id:uuid}", response_model=Session)
async def update_session(
    session_id: uuid.UUID,
    body: SessionUpdate,
    platform: CurrentPlatform,
    principal: CanUpdateSessions,
) -> Session:
    return await platform.sessions.update(principal, session_id, name=body.name, config=body.config)


@router.delete("/{session_id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(
    session_id: uuid.UUID, platform: CurrentPlatform, principal: CanDeleteSessions
) -> Response:
    await platform.sessions.delete(principal, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{session_id:uuid}/complete", response_model=Session)
async def complete_session(
    session_id: uuid.UUID, platform: CurrentPlatform, principal: CanCompleteSessions
) -> Session:
    return await platform.with_flow_run(await platform.sessions.complete(principal, session_id))


@router.post("/{session_id:uuid}/archive", response_model=ArchiveSummary)
async def archive_session(
    session_id: uuid.UUID, platform: CurrentPlatform, principal: CanArchiveSessions
) -> dict[str, Any]:
    return await platform.sessions.archive(principal, session_id)


@router.get("/{session_id:uuid}/archive")
async def get_archive(
    session_id: uuid.UUID, platform: CurrentPlatform, principal: CanReadSessions
) -> dict[str, Any]:
    return await platform.sessions.get_archive(principal, session_id)
