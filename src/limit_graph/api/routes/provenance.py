"""``GET /sessions/{id}/provenance``: the session's ledger entries, paged.

Readable by the session's tenant and the admin, also once the session is deleted
(who deleted it is in here); proofs and the whole ledger come with ``/audit``.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from limit_graph.api.deps import CanReadSessionsIncludingDeleted, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.schemas import ProvenanceEntryOut, ProvenancePage
from limit_graph.orchestration.provenance import session_provenance

__all__ = ["router"]

router = APIRouter(
    prefix="/sessions/{session_id:uuid}", tags=["provenance"], route_class=IJSONRoute
)


@router.get("/provenance", response_model=ProvenancePage)
async def provenance(
    session_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanReadSessionsIncludingDeleted,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=512),
) -> ProvenancePage:
    """Who did what to the session and its executions, when, with each entry's hashes."""
    page = await session_provenance(
        platform.storage, principal, session_id, limit=limit, cursor=cursor
    )
    return ProvenancePage(
        items=[ProvenanceEntryOut.model_validate(e, from_attributes=True) for e in page.items],
        next_cursor=page.next_cursor,
    )
