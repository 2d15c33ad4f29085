"""The audit trail and the ledger's proofs, as the API serves them.

The trail (``GET /audit``) is one tenant's entries for its auditors and admins; the
platform admin, whom the authorizer allows ``audit.read_all`` on the platform, reads
every tenant's and the platform's own.  Checkpoints and proofs are over the one tree
every tenant's entries are leaves of: they are hashes, readable by everyone who reads,
and what lets a tenant check offline that its entries are in the log everybody sees.
A checkpoint asked for covers the ledger as it is: when entries came after the latest
one, it is signed there and then.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from limit_graph.core import merkle
from limit_graph.core.errors import NotFound
from limit_graph.core.models import ProvenanceEntry
from limit_graph.governance.auth import Principal
from limit_graph.governance.authorizer import Authorizer
from limit_graph.governance.policy.schema import Action
from limit_graph.orchestration.checkpoints import Checkpointer
from limit_graph.orchestration.provenance import session_provenance
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger_store import (
    EntryFilter,
    StoredCheckpoint,
    consistency_proof,
    proven_leaf,
)
from limit_graph.storage.paging import Page, decode_index_cursor, encode_index_cursor

__all__ = ["AuditService", "InclusionProof", "ProvenWith"]


@dataclass(frozen=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]


@dataclass(frozen=True)
class ProvenWith:
    """A page of entries, each with its inclusion proof in the checkpoint's tree."""

    entries: list[tuple[ProvenanceEntry, list[bytes]]]
    checkpoint: StoredCheckpoint | None
    next_cursor: str | None


class AuditService:
    def __init__(self, storage: Storage, authorizer: Authorizer, checkpoints: Checkpointer) -> None:
        self.storage = storage
        self.authorizer = authorizer
        self.checkpoints = checkpoints

    def scope(self, principal: Principal, where: EntryFilter) -> EntryFilter:
        """``where`` narrowed to the caller's tenant unless it may read the whole trail."""
        if self.authorizer.allows_on_platform(principal, Action.AUDIT_READ_ALL):
            return where
        return EntryFilter(
            tenant=principal.tenant,
            actor=where.actor,
            action=where.action,
            session_id=where.session_id,
            since=where.since,
            until=where.until,
        )

    async def trail(
        self, principal: Principal, where: EntryFilter, *, limit: int, cursor: str | None
    ) -> Page[ProvenanceEntry]:
        """Up to ``limit`` entries the caller may read, after ``cursor``, in ledger order."""
        after = decode_index_cursor(cursor) if cursor else -1
        found = await self.storage.ledger.entries(
            self.scope(principal, where), after=after, limit=limit + 1
        )
        chosen = found[:limit]
        more = len(found) > limit
        return Page(chosen, encode_index_cursor(chosen[-1].index) if more else None)

    async def checkpoint(self) -> StoredCheckpoint:
        """The signed checkpoint of the ledger as it is now."""
        made = await self.checkpoints.checkpoint()
        if made is None:
            raise NotFound("the ledger is empty: there is no checkpoint yet")
        return made

    async def inclusion(self, index: int, size: int) -> InclusionProof:
        leaf, hashes = await proven_leaf(self.storage.ledger, index, size)
        return InclusionProof(index, size, leaf, hashes)

    async def consistency(self, first: int, second: int) -> list[bytes]:
        return await consistency_proof(self.storage.ledger, first, second)

    async def session_entries(
        self, principal: Principal, session_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> ProvenWith:
        """A page of the session's entries with their proofs in the current checkpoint."""
        page = await session_provenance(
            self.storage, principal, session_id, limit=limit, cursor=cursor
        )
        if not page.items:
            return ProvenWith([], None, page.next_cursor)
        checkpoint = await self.checkpoint()  # signed after the entries were read: has them
        size = checkpoint.tree_size
        wanted = {i for e in page.items for i in merkle.inclusion_node_ids(e.index, size)}
        nodes = await self.storage.ledger.nodes(sorted(wanted))  # one read for the page
        proven = [(e, merkle.inclusion_proof(e.index, size, nodes)) for e in page.items]
        return ProvenWith(proven, checkpoint, page.next_cursor)
