"""Lineage as the API serves it: a session's graph, and the executions that used or
produced content with a given hash.

The routes ask the governance authorizer first (``session.read`` on the session, which
must be visible to the caller, deleted or not: lineage is provenance; ``session.list``
on the caller's tenant for a search by hash).  A search by hash covers every session of
the caller's tenant -- of every tenant for the platform admin, whom the authorizer
allows ``audit.read_all`` -- and another tenant's executions are never in it.  Both
reads first let the follower catch up with the ledger (:meth:`~limit_graph.
orchestration.lineage.LineageFollower.catch_up`), so they answer with everything that
had finished when they arrived.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass

from limit_graph.core.errors import InvalidInput
from limit_graph.governance.auth import Principal
from limit_graph.governance.authorizer import Authorizer
from limit_graph.governance.policy.schema import Action
from limit_graph.orchestration.lineage import LineageFollower
from limit_graph.storage.base import Storage
from limit_graph.storage.lineage import HashUse, LineageGraph, UseKey, check_hash
from limit_graph.storage.paging import Page

__all__ = ["LineageReads", "SessionLineage", "decode_use_cursor", "encode_use_cursor"]

_USES = "uses"


def encode_use_cursor(key: UseKey) -> str:
    """The next page of uses starts after ``key``.

    >>> key = ("00000000-0000-0000-0000-000000000001", "execution:x", "used")
    >>> decode_use_cursor(encode_use_cursor(key)) == key
    True
    """
    text = json.dumps([_USES, *key]).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def decode_use_cursor(cursor: str) -> UseKey:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        kind, session, execution, edge = json.loads(raw)
        if kind != _USES or not all(isinstance(p, str) for p in (execution, edge)):
            raise ValueError("not a lineage cursor")
        return (str(uuid.UUID(session)), execution, edge)
    except (ValueError, TypeError, binascii.Error):
        msg = "cursor is not one this server issued"
        raise InvalidInput(
            msg, [{"loc": ["query", "cursor"], "msg": "malformed cursor", "type": "value_error"}]
        ) from None


@dataclass(frozen=True)
class SessionLineage:
    session_id: uuid.UUID
    graph: LineageGraph
    covered: int
    """Ledger entries the graph was derived from (the follower's cursor + 1)."""


class LineageReads:
    def __init__(self, storage: Storage, follower: LineageFollower, authorizer: Authorizer) -> None:
        self.storage = storage
        self.follower = follower
        self.authorizer = authorizer

    async def session_graph(self, session_id: uuid.UUID) -> SessionLineage:
        """The session's graph, once the follower has caught up (the route has decided
        that the caller may read the session)."""
        cursor = await self.follower.catch_up()
        graph = await self.storage.lineage.session_graph(session_id)
        return SessionLineage(session_id, graph, cursor + 1)

    async def uses(
        self, principal: Principal, content_hash: str, *, limit: int, cursor: str | None
    ) -> Page[HashUse]:
        """Up to ``limit`` uses of the content, after ``cursor``, that the caller may see."""
        hashed = check_hash(content_hash)
        after = decode_use_cursor(cursor) if cursor else None
        everyone = self.authorizer.allows_on_platform(principal, Action.AUDIT_READ_ALL)
        await self.follower.catch_up()
        found = await self.storage.lineage.uses_of(
            hashed, tenant=None if everyone else principal.tenant, limit=limit + 1, after=after
        )
        chosen = found[:limit]
        more = len(found) > limit
        return Page(chosen, encode_use_cursor(chosen[-1].key) if more else None)
