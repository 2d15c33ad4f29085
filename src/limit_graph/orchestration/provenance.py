"""A session's provenance: its ledger entries, paged, for the session's tenant.

Unlike every other read, a deleted session's entries stay readable by its tenant and
the admin: the ledger is where "who deleted it" is answered.  Another tenant gets the
same :class:`NotFound` as for an unknown id.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid

from limit_graph.core.errors import InvalidInput, NotFound
from limit_graph.core.models import ProvenanceEntry, Session
from limit_graph.governance.auth import Principal
from limit_graph.storage.base import Storage
from limit_graph.storage.paging import Page

__all__ = ["decode_entry_cursor", "encode_entry_cursor", "session_provenance"]

_CURSOR_KIND = "ledger"


def encode_entry_cursor(index: int) -> str:
    """An opaque cursor: the next page starts after ledger entry ``index``.

    >>> decode_entry_cursor(encode_entry_cursor(41))
    41
    """
    raw = json.dumps([_CURSOR_KIND, index]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_entry_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, index = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if kind != _CURSOR_KIND or type(index) is not int or index < 0:
            raise ValueError("not a ledger cursor")
        return index
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput(
            "cursor is not one this server issued",
            [{"loc": ["query", "cursor"], "msg": "malformed cursor", "type": "value_error"}],
        ) from None


def _owned(session: Session | None, principal: Principal) -> bool:
    """The session exists, in any state, and is the caller's tenant's (or the caller is admin)."""
    return session is not None and (principal.is_admin or session.tenant == principal.tenant)


async def session_provenance(
    storage: Storage,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> Page[ProvenanceEntry]:
    """Up to ``limit`` of the session's ledger entries after ``cursor``, in ledger order."""
    after = decode_entry_cursor(cursor) if cursor else -1
    if not _owned(await storage.get_session(session_id), principal):
        raise NotFound(f"no session {session_id}")
    entries = await storage.list_entries(session_id=session_id, after=after, limit=limit + 1)
    chosen = entries[:limit]
    more = len(entries) > limit
    return Page(chosen, encode_entry_cursor(chosen[-1].index) if more else None)
