"""``GET /sessions/{id}/lineage`` (a session's lineage graph) and ``GET /lineage?hash=``
(the executions, across sessions, that used or produced content with that hash).

The graph is readable by whoever may read the session, also once it is deleted (like
its provenance); a search by hash by whoever may list the tenant's sessions, and covers
that tenant's (the platform admin's: every tenant's).  Both answer with everything that
had finished when the request arrived (``orchestration/lineage_reads.py``).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from limit_graph.api.deps import CanListSessions, CanReadSessionsIncludingDeleted, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.lineage_schemas import LineageUseOut, LineageUsesOut, SessionLineageOut

__all__ = ["router"]

router = APIRouter(tags=["lineage"], route_class=IJSONRoute)


@router.get("/sessions/{session_id:uuid}/lineage", response_model=SessionLineageOut)
async def session_lineage(
    session_id: uuid.UUID, platform: CurrentPlatform, _: CanReadSessionsIncludingDeleted
) -> SessionLineageOut:
    """The session's inputs, datasets, circuits, executions and outputs, and the edges
    between them: which execution used which content, produced which output, and which
    workflow step waited for which execution."""
    return SessionLineageOut.of(await platform.lineage.session_graph(session_id))


@router.get("/lineage", response_model=LineageUsesOut)
async def uses_of_hash(
    platform: CurrentPlatform,
    principal: CanListSessions,
    content_hash: str = Query(
        alias="hash",
        pattern=r"^[0-9a-fA-F]{64}$",
        description="SHA-256 (hex) of an input, a dataset, a circuit's canonical text or a "
        "result, as the lineage graph names it.",
    ),
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = Query(default=None, max_length=512),
) -> LineageUsesOut:
    """Every execution of the caller's tenant that used or produced content with this
    hash, in any session, with its session id."""
    page = await platform.lineage.uses(principal, content_hash, limit=limit, cursor=cursor)
    return LineageUsesOut(
        hash=content_hash.lower(),
        items=[LineageUseOut.of(use) for use in page.items],
        next_cursor=page.next_cursor,
    )
