"""Entries of the hash-chain format (:mod:`~limit_graph.storage.legacy_chain`) as leaves
of the Merkle ledger: what migration ``0007`` and the file store's upgrade write.

An entry keeps its index, time, actor, action, resource, session and payload; it gets
the tenant of its session (else the one its payload names), and its payload hash and
leaf hash as :mod:`~limit_graph.storage.ledger` computes them today.  Callers verify the
chain before they convert it: a tree built over a broken chain would certify it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.ledger import EntryDraft, make_entry

__all__ = ["leaf_of_chained"]


def _tenant(document: Mapping[str, Any], tenants: Mapping[uuid.UUID, str]) -> str | None:
    session_id = document.get("session_id")
    if session_id is not None and uuid.UUID(session_id) in tenants:
        return tenants[uuid.UUID(session_id)]
    payload = document.get("payload")
    found = payload.get("tenant") if isinstance(payload, dict) else None
    return found if isinstance(found, str) else None


def leaf_of_chained(
    document: Mapping[str, Any], tenants: Mapping[uuid.UUID, str]
) -> ProvenanceEntry:
    """The leaf entry of one chained entry; ``tenants`` are the sessions' tenants."""
    draft = EntryDraft(
        actor=document["actor"],
        action=document["action"],
        resource_type=document["resource_type"],
        resource_id=document["resource_id"],
        session_id=uuid.UUID(document["session_id"]) if document["session_id"] else None,
        payload=document["payload"],
        tenant=_tenant(document, tenants),
    )
    return make_entry(
        document["index"], draft, timestamp=datetime.fromisoformat(document["timestamp"])
    )
