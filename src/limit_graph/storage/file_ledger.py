"""The file store's ledger: checkpoints and erased entries as files, each replaced
atomically and durably before it counts (one file per checkpoint, named by its tree
size; an erased entry rewrites its own entry file)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

from limit_graph.core.durable import replace_durably
from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.file_errors import writes_under
from limit_graph.storage.ledger import decode_hash, encode_hash
from limit_graph.storage.ledger_store import StoredCheckpoint
from limit_graph.storage.memory_ledger import MemoryLedger

__all__ = ["CHECKPOINTS_FOLDER", "FileLedger", "load_checkpoints"]

CHECKPOINTS_FOLDER = "checkpoints"


def _checkpoint_bytes(checkpoint: StoredCheckpoint) -> bytes:
    return json.dumps(
        {
            "tree_size": checkpoint.tree_size,
            "root_hash": encode_hash(checkpoint.root_hash),
            "timestamp": checkpoint.timestamp.isoformat(),
            "key_id": checkpoint.key_id,
            "note": checkpoint.note,
        }
    ).encode()


def load_checkpoints(root: Path) -> list[StoredCheckpoint]:
    """The checkpoints kept under ``root``."""
    found = []
    for path in sorted((root / CHECKPOINTS_FOLDER).glob("*.json")):
        item = json.loads(path.read_bytes())
        found.append(
            StoredCheckpoint(
                tree_size=item["tree_size"],
                root_hash=decode_hash(item["root_hash"]),
                timestamp=datetime.fromisoformat(item["timestamp"]),
                key_id=item["key_id"],
                note=item["note"],
            )
        )
    return found


class FileLedger(MemoryLedger):
    def __init__(
        self,
        entries: list[ProvenanceEntry],
        lock: asyncio.Lock,
        root: Path,
    ) -> None:
        super().__init__(entries, lock)
        self._root = root

    async def persist_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        path = self._root / CHECKPOINTS_FOLDER / f"{checkpoint.tree_size:012d}.json"
        with writes_under(self._root):
            await asyncio.to_thread(replace_durably, path, _checkpoint_bytes(checkpoint))

    async def persist_entry(self, entry: ProvenanceEntry) -> None:
        path = self._root / "ledger" / f"{entry.index:012d}.json"
        with writes_under(self._root):
            await asyncio.to_thread(replace_durably, path, entry.model_dump_json().encode())
