"""The ledger of the memory and file stores: the entries list the store commits to, the
whole tree in memory beside it, and the checkpoints.

The file store keeps entries and checkpoints as files and builds the tree again from
the leaves when it starts (an O(n) pass; the file store is for small ledgers), through
the :meth:`MemoryLedger.persist_checkpoint` and :meth:`MemoryLedger.persist_entry` hooks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from limit_graph.core import merkle
from limit_graph.core.canonical import canonical_json
from limit_graph.core.errors import NotFound, StateDenied
from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.ledger import decode_hash, leaf_bytes
from limit_graph.storage.ledger_store import EntryFilter, LeafRow, StoredCheckpoint, TreeHead

__all__ = ["MemoryLedger"]


class MemoryLedger:
    """:class:`~limit_graph.storage.ledger_store.LedgerStore` over the store's entries.

    ``entries`` is the store's own list, extended by its commits under ``lock``, which
    are followed by :meth:`extend`; ``lock`` is also what erasure takes.
    """

    def __init__(self, entries: list[ProvenanceEntry], lock: asyncio.Lock) -> None:
        self._entries = entries
        self._lock = lock
        self._tree = merkle.MerkleTree()
        self._checkpoints: dict[int, StoredCheckpoint] = {}

    def extend(self, entries: Iterable[ProvenanceEntry]) -> None:
        """Add the leaves of newly committed entries to the tree."""
        self._tree.extend(decode_hash(e.leaf_hash) for e in entries)

    def load_checkpoints(self, checkpoints: Iterable[StoredCheckpoint]) -> None:
        self._checkpoints.update((c.tree_size, c) for c in checkpoints)

    async def persist_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Make a new checkpoint durable before it is kept; memory has nothing to do."""

    async def persist_entry(self, entry: ProvenanceEntry) -> None:
        """Make a changed (erased) entry durable; memory has nothing to do."""

    async def head(self) -> TreeHead:
        size = self._tree.size
        return TreeHead(size, self._tree.root(size))

    async def nodes(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        try:
            return {(level, idx): self._tree.node(level, idx) for level, idx in ids}
        except KeyError as missing:
            raise NotFound(f"the ledger holds no node {missing.args[0]}") from None

    async def entries(
        self, where: EntryFilter, *, after: int = -1, limit: int = 1000
    ) -> list[ProvenanceEntry]:
        found: list[ProvenanceEntry] = []
        for entry in self._entries[after + 1 :]:
            if where.matches(entry):
                found.append(entry)
                if len(found) == limit:
                    break
        return found

    async def scan(self, *, after: int = -1, limit: int = 1000) -> list[LeafRow]:
        return [
            LeafRow(
                e.index,
                leaf_bytes(e),
                decode_hash(e.leaf_hash),
                canonical_json(e.payload).encode("utf-8") if e.payload is not None else None,
                e.payload_salt,
            )
            for e in self._entries[after + 1 : after + 1 + limit]
        ]

    async def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        async with self._lock:
            if checkpoint.tree_size in self._checkpoints:
                return False
            await self.persist_checkpoint(checkpoint)
            self._checkpoints[checkpoint.tree_size] = checkpoint
            return True

    async def checkpoints(
        self, *, after_size: int = -1, limit: int = 1000
    ) -> list[StoredCheckpoint]:
        sizes = sorted(s for s in self._checkpoints if s > after_size)[:limit]
        return [self._checkpoints[s] for s in sizes]

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        return self._checkpoints[max(self._checkpoints)] if self._checkpoints else None

    async def erase_payload(self, index: int) -> ProvenanceEntry:
        async with self._lock:
            if not 0 <= index < len(self._entries):
                raise NotFound(f"the ledger has no entry {index}")
            entry = self._entries[index]
            if not entry.erasable:
                raise StateDenied(
                    f"entry {index} is not erasable: its payload is part of the record",
                    ["ledger-append-only"],
                )
            erased = entry.model_copy(update={"payload": None, "payload_salt": None})
            await self.persist_entry(erased)
            self._entries[index] = erased
            return erased
