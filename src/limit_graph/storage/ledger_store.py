"""What every backend's ledger offers beyond appending: the tree's head and nodes (for
proofs), filtered reads of the trail, signed checkpoints, and erasure of payloads.

A backend's ledger is reached as ``storage.ledger``; entries are still appended by the
record writes (:mod:`limit_graph.storage.base`), in the same transaction as the record
they describe.  Proofs are built from :meth:`LedgerStore.nodes` by
:mod:`limit_graph.core.merkle` (:func:`inclusion_proof`, :func:`consistency_proof`
below), so every backend answers the same proof for the same ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from limit_graph.core import merkle
from limit_graph.core.errors import InvalidInput, NotFound
from limit_graph.core.models import ProvenanceEntry

__all__ = [
    "EntryFilter",
    "LeafRow",
    "LedgerStore",
    "StoredCheckpoint",
    "TreeHead",
    "consistency_proof",
    "inclusion_proof",
    "proven_leaf",
]


@dataclass(frozen=True)
class TreeHead:
    """The tree over every committed entry."""

    size: int
    root: bytes


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as the ledger keeps it: ``note`` is the signed-note text."""

    tree_size: int
    root_hash: bytes
    timestamp: datetime
    key_id: str
    note: str


@dataclass(frozen=True, slots=True)
class LeafRow:
    """An entry as the bytes its hashes cover, for verifying a whole ledger quickly:
    ``leaf`` (whose RFC 6962 leaf hash ``leaf_hash`` claims to be), and the payload's
    canonical JSON (``None``: erased) with its salt."""

    index: int
    leaf: bytes
    leaf_hash: bytes
    payload: bytes | None
    salt: str | None


@dataclass(frozen=True)
class EntryFilter:
    """Which entries a trail read returns; ``None`` fields do not filter.

    ``tenant`` keeps one tenant's entries (a tenant's caller always reads with it set;
    the platform's own entries, with no tenant, are read only without it).
    """

    tenant: str | None = None
    actor: str | None = None
    action: str | None = None
    session_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: ProvenanceEntry) -> bool:
        return (
            (self.tenant is None or entry.tenant == self.tenant)
            and (self.actor is None or entry.actor == self.actor)
            and (self.action is None or entry.action == self.action)
            and (self.session_id is None or entry.session_id == self.session_id)
            and (self.since is None or entry.timestamp >= self.since)
            and (self.until is None or entry.timestamp < self.until)
        )


class LedgerStore(Protocol):
    async def head(self) -> TreeHead:
        """The size and root of the tree over every committed entry."""

    async def nodes(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        """The hashes of those perfect subtrees (level 0: leaves), each committed."""

    async def entries(
        self, where: EntryFilter, *, after: int = -1, limit: int = 1000
    ) -> list[ProvenanceEntry]:
        """Entries matching ``where`` with index > ``after``, in index order."""

    async def scan(self, *, after: int = -1, limit: int = 1000) -> list[LeafRow]:
        """Up to ``limit`` rows with index > ``after`` in index order, as stored (an
        entry whose row was altered comes back altered: this is what verification reads)."""

    async def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Keep a checkpoint; ``False`` when one of that tree size is already kept."""

    async def checkpoints(
        self, *, after_size: int = -1, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        """Checkpoints of tree size > ``after_size``, smallest first."""

    async def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    async def erase_payload(self, index: int) -> ProvenanceEntry:
        """Erase an erasable entry's payload and salt (its leaf keeps the payload's
        hash); :class:`~limit_graph.core.errors.StateDenied` for any other entry,
        :class:`~limit_graph.core.errors.NotFound` past the end."""


def _sizes(index: int, size: int, tree: int) -> None:
    if not 0 < size <= tree:
        raise InvalidInput(f"size {size} is not a tree size of this ledger (1..{tree})")
    if not 0 <= index < size:
        raise InvalidInput(f"index {index} is not an entry of a tree of size {size}")


async def inclusion_proof(ledger: LedgerStore, index: int, size: int) -> list[bytes]:
    """The RFC 6962 audit path of entry ``index`` in the tree of the first ``size``
    entries; :class:`InvalidInput` for an index or size the ledger does not have."""
    return (await proven_leaf(ledger, index, size))[1]


async def proven_leaf(ledger: LedgerStore, index: int, size: int) -> tuple[bytes, list[bytes]]:
    """Entry ``index``'s leaf hash and audit path in the tree of ``size`` entries, in one
    read of the tree's nodes.  The ledger's head is read only to explain a refusal: the
    nodes of a tree larger than the ledger are not all there, so a read that finds every
    one proves the size is the ledger's."""
    if not 0 <= index < size:
        raise InvalidInput(f"index {index} is not an entry of a tree of size {size}")
    path = merkle.inclusion_node_ids(index, size)
    try:
        nodes = await ledger.nodes([(0, index), *path])
    except NotFound:
        _sizes(index, size, (await ledger.head()).size)
        raise  # the sizes are the ledger's, yet a node is missing: a damaged store
    return nodes[(0, index)], merkle.inclusion_proof(index, size, nodes)


async def consistency_proof(ledger: LedgerStore, first: int, second: int) -> list[bytes]:
    """The RFC 6962 proof that the tree of ``first`` entries is a prefix of the tree of
    ``second``; :class:`InvalidInput` unless 0 < first <= second <= the ledger's size."""
    tree = (await ledger.head()).size
    if not 0 < second <= tree:
        raise InvalidInput(f"second {second} is not a tree size of this ledger (1..{tree})")
    if not 0 < first <= second:
        raise InvalidInput(f"first {first} must be a tree size from 1 to second ({second})")
    nodes = await ledger.nodes(merkle.consistency_node_ids(first, second))
    return merkle.consistency_proof(first, second, nodes)
