"""``GET /sessions/{id}/provenance``: the session's ledger entries, paged.

Readable by the session's tenant and the admin, also once the session is deleted
(who deleted it is in here); each entry comes with its inclusion proof, the page with
the checkpoint they prove against; the whole ledger is ``/audit``'s.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from limit_graph.api.audit_schemas import AuditEntryOut, CheckpointOut
from limit_graph.api.deps import CanReadSessionsIncludingDeleted, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.schemas import ProvenanceEntryOut, ProvenancePage
from limit_graph.storage.ledger import encode_hash

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
    """Who did what to the session and its executions, when: each entry with its leaf
    hash and its inclusion proof in the signed checkpoint the page carries."""
    page = await platform.audit.session_entries(principal, session_id, limit=limit, cursor=cursor)
    key = platform.checkpoints.key.verifier_key
    return ProvenancePage(
        items=[
            ProvenanceEntryOut.model_validate(
                {**AuditEntryOut.of(entry).model_dump(), "proof": [encode_hash(h) for h in proof]}
            )
            for entry, proof in page.entries
        ],
        checkpoint=CheckpointOut.of(page.checkpoint, key) if page.checkpoint else None,
        next_cursor=page.next_cursor,
    )
