"""The lineage store of the file backend: the memory store's state, kept in a batch log.

Each :class:`~limit_graph.storage.lineage.LineageBatch` -- its nodes, its edges and the
cursor it moves -- is one line of ``lineage/batches.log``, appended and fsynced before it
is applied: ``<sha256 of the JSON> <JSON>``.  A crash while appending leaves at most the
last line torn, which the checksum shows; loading drops it (that batch was never
applied, so its follower derives it again) and truncates the file there.  A bad line
anywhere else is damage, and loading refuses to go on, naming it.

Replaying the log applies the batches again, which is what the store's upserts are made
for.  When the log has grown past :data:`COMPACT_LINES`, loading writes the state it
read as one line to a new log and renames it into place, so a start reads a log about
the size of the graph, not of its history.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from limit_graph.core.durable import append_durably, fsync_dir
from limit_graph.storage.file_errors import writes_under
from limit_graph.storage.lineage import LineageBatch, LineageEdge, LineageNode
from limit_graph.storage.memory_lineage import LineageState, MemoryLineageStore

__all__ = ["COMPACT_LINES", "LOG_NAME", "FileLineageStore"]

LOG_NAME = "batches.log"
COMPACT_LINES = 1000


def _node_doc(node: LineageNode) -> dict[str, Any]:
    return {
        "session_id": str(node.session_id),
        "id": node.id,
        "kind": node.kind,
        "hash": node.hash,
        "tenant": node.tenant,
        "label": node.label,
        "attributes": dict(node.attributes),
        "entry": node.entry,
    }


def _edge_doc(edge: LineageEdge) -> dict[str, Any]:
    return {
        "session_id": str(edge.session_id),
        "source": edge.source,
        "target": edge.target,
        "kind": edge.kind,
        "tenant": edge.tenant,
        "attributes": dict(edge.attributes),
    }


def _node(doc: dict[str, Any]) -> LineageNode:
    return LineageNode(
        uuid.UUID(doc["session_id"]),
        doc["id"],
        doc["kind"],
        doc["hash"],
        doc["tenant"],
        doc["label"],
        doc["attributes"],
        entry=int(doc["entry"]),
    )


def _edge(doc: dict[str, Any]) -> LineageEdge:
    return LineageEdge(
        uuid.UUID(doc["session_id"]),
        doc["source"],
        doc["target"],
        doc["kind"],
        doc["tenant"],
        doc["attributes"],
    )


def _line(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]], cursors: dict[str, int]
) -> bytes:
    body = json.dumps({"nodes": nodes, "edges": edges, "cursors": cursors}, sort_keys=True)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return f"{digest} {body}\n".encode()


def _batches(doc: dict[str, Any]) -> list[LineageBatch]:
    """A logged line as batches to apply: its nodes and edges, then each cursor."""
    nodes = [_node(n) for n in doc["nodes"]]
    edges = [_edge(e) for e in doc["edges"]]
    cursors = list(doc["cursors"].items()) or [("", -1)]
    first_name, first_index = cursors[0]
    batches = [LineageBatch(nodes, edges, int(first_index), first_name)]
    batches += [LineageBatch((), (), int(index), name) for name, index in cursors[1:]]
    return batches


class FileLineageStore(MemoryLineageStore):
    """Lineage under ``folder`` (the backend's ``<root>/lineage``), loaded on first use."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = Path(folder)
        self._log = self.folder / LOG_NAME
        self._loaded = False
        self._loading = asyncio.Lock()

    async def _ready(self) -> LineageState:
        if not self._loaded:
            async with self._loading:
                if not self._loaded:
                    self._state = await asyncio.to_thread(self._load)
                    self._loaded = True
        return self._state

    def _load(self) -> LineageState:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = LineageState()
        if not self._log.exists():
            return state
        data = self._log.read_bytes()
        good = 0
        lines = 0
        for raw in data.splitlines(keepends=True):
            doc = self._verified(raw)
            if doc is None:
                if good + len(raw) < len(data):
                    raise OSError(
                        f"lineage log {self._log} is damaged at byte {good}: a batch whose "
                        "checksum does not match is followed by others"
                    )
                break  # the torn tail of a crashed append: that batch never applied
            for batch in _batches(doc):
                state.apply(batch)
            good += len(raw)
            lines += 1
        if good < len(data):
            with open(self._log, "r+b") as fh:
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())
        if lines > COMPACT_LINES:
            self._compact(state)
        return state

    @staticmethod
    def _verified(raw: bytes) -> dict[str, Any] | None:
        if not raw.endswith(b"\n"):
            return None
        digest, _, body = raw.rstrip(b"\n").partition(b" ")
        if hashlib.sha256(body).hexdigest().encode() != digest:
            return None
        doc: dict[str, Any] = json.loads(body)
        return doc

    def _compact(self, state: LineageState) -> None:
        line = _line(
            [_node_doc(n) for n in state.nodes.values()],
            [_edge_doc(e) for e in state.edges.values()],
            dict(state.cursors),
        )
        fresh = self._log.with_name(LOG_NAME + ".new")
        with open(fresh, "wb") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(fresh, self._log)
        fsync_dir(self.folder)

    async def _persist(self, batch: LineageBatch) -> None:
        line = _line(
            [_node_doc(n) for n in batch.nodes],
            [_edge_doc(e) for e in batch.edges],
            {batch.cursor_name: batch.cursor},
        )
        with writes_under(self.folder):
            await asyncio.to_thread(self._append, line)

    def _append(self, line: bytes) -> None:
        append_durably(self._log, line, 0o600)
