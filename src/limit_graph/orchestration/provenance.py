"""A session's provenance: its ledger entries, paged, for the session's tenant.

Unlike every other read, a deleted session's entries stay readable by its tenant and
the admin: the ledger is where "who deleted it" is answered.  Another tenant gets the
same :class:`NotFound` as for an unknown id.
"""

from __future__ import annotations

import uuid

from limit_graph.core.models import ProvenanceEntry
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.sessions import require_visible
from limit_graph.storage.base import Storage
from limit_graph.storage.paging import Page, decode_index_cursor, encode_index_cursor

__all__ = ["session_provenance"]


async def session_provenance(
    storage: Storage,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> Page[ProvenanceEntry]:
    """Up to ``limit`` of the session's ledger entries after ``cursor``, in ledger order."""
    after = decode_index_cursor(cursor) if cursor else -1
    session = await storage.get_session(session_id)
    require_visible(session, principal, session_id, include_deleted=True)
    entries = await storage.list_entries(session_id=session_id, after=after, limit=limit + 1)
    chosen = entries[:limit]
    more = len(entries) > limit
    return Page(chosen, encode_index_cursor(chosen[-1].index) if more else None)
