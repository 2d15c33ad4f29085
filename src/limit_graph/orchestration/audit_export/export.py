"""An export under way: the checkpoint taken, the caller's entries read page by page,
proved, checked and encoded as JSON or CSV (the package's docstring says how)."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from limit_graph.core import merkle
from limit_graph.core.canonical import canonical_json
from limit_graph.core.errors import NotFound
from limit_graph.core.ledger_leaf import LEAF_FIELDS
from limit_graph.core.models import ProvenanceEntry, utcnow
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.audit import AuditService
from limit_graph.orchestration.audit_export.checks import (
    Tally,
    check_checkpoint,
    check_entry,
    checkpoint_document,
    json_moment,
)
from limit_graph.storage.ledger import encode_hash
from limit_graph.storage.ledger_store import EntryFilter, LedgerStore, StoredCheckpoint

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FORMAT",
    "PAGE",
    "AuditExport",
    "ExportFormat",
    "spreadsheet_text",
    "start_export",
]

EXPORT_FORMAT = "limit-graph.audit-export/1"
PAGE = 256
"""Entries read (and proved, with one read of their nodes) at a time."""

CSV_COLUMNS = (
    *LEAF_FIELDS,
    "leaf_hash",
    "payload",
    "payload_salt",
    "proof",
    "verified",
    "problem",
)
_TEXT_COLUMNS = ("actor", "tenant", "action", "resource_type", "resource_id")
"""The columns holding text people chose, which may look like a formula."""
_FORMULA_START = ("=", "+", "-", "@", "'", "\t", "\r")


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def spreadsheet_text(text: str) -> str:
    """``text`` as a spreadsheet shows it as text: after a ``'`` when it would start a
    formula (or starts with ``'`` itself, so that one ``'`` is always the export's own).

    >>> spreadsheet_text("=HYPERLINK(1)"), spreadsheet_text("alice"), spreadsheet_text("'x")
    ("'=HYPERLINK(1)", 'alice', "''x")
    """
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclass(frozen=True)
class _Proven:
    entry: ProvenanceEntry
    proof: list[bytes]
    problem: str | None

    def document(self) -> dict[str, Any]:
        return {**self.entry.document(), "proof": [encode_hash(h) for h in self.proof]}

    def row(self) -> list[str]:
        doc = self.entry.document()
        cells = {
            **{k: "" if doc[k] is None else str(doc[k]) for k in CSV_COLUMNS if k in doc},
            "erasable": "true" if self.entry.erasable else "false",
            "payload": "" if self.entry.payload is None else canonical_json(self.entry.payload),
            "proof": " ".join(encode_hash(h) for h in self.proof),
            "verified": "false" if self.problem else "true",
            "problem": self.problem or "",
        }
        for name in _TEXT_COLUMNS:
            cells[name] = spreadsheet_text(cells[name])
        return [cells[k] for k in CSV_COLUMNS]


class AuditExport:
    """An export under way: its checkpoint taken, its entries read when it is streamed
    (:meth:`json_chunks` or :meth:`csv_chunks`, once)."""

    def __init__(
        self,
        ledger: LedgerStore,
        where: EntryFilter,
        checkpoint: StoredCheckpoint | None,
        public_key: str,
        signature: str | None,
        *,
        exported_at: datetime,
    ) -> None:
        self._ledger = ledger
        self.where = where
        self.checkpoint = checkpoint
        self.checkpoint_doc = checkpoint_document(checkpoint, public_key) if checkpoint else None
        self.signature = signature
        self.exported_at = exported_at
        self.tally = Tally()

    def filters(self) -> dict[str, Any]:
        """What was exported: ``tenant`` ``null`` is every tenant's and the platform's."""
        w = self.where
        return {
            "tenant": w.tenant,
            "actor": w.actor,
            "action": w.action,
            "session_id": str(w.session_id) if w.session_id else None,
            "since": json_moment(w.since) if w.since else None,
            "until": json_moment(w.until) if w.until else None,
        }

    def headers(self) -> dict[str, str]:
        """The checkpoint as response headers (the note base64, for its line breaks)."""
        doc = self.checkpoint_doc
        if doc is None:
            return {"X-Checkpoint-Size": "0"}
        return {
            "X-Checkpoint-Size": str(doc["tree_size"]),
            "X-Checkpoint-Root": doc["root_hash"],
            "X-Checkpoint-Timestamp": doc["timestamp"],
            "X-Checkpoint-Key-Id": doc["key_id"],
            "X-Checkpoint-Public-Key": doc["public_key"],
            "X-Checkpoint-Note": base64.b64encode(doc["note"].encode("utf-8")).decode("ascii"),
        }

    def filename(self, extension: str) -> str:
        """``audit-<tenant or all>-<tree size>.<extension>``, safe in a header."""
        scope = re.sub(r"[^A-Za-z0-9._-]+", "_", self.where.tenant or "all")[:64]
        return f"audit-{scope}-{self.checkpoint.tree_size if self.checkpoint else 0}.{extension}"

    async def _pages(self) -> AsyncIterator[list[ProvenanceEntry]]:
        if self.checkpoint is None:
            return
        size, after = self.checkpoint.tree_size, -1
        while after < size - 1:
            found = await self._ledger.entries(self.where, after=after, limit=PAGE)
            page = [e for e in found if e.index < size]
            if page:
                yield page
            if len(page) < len(found) or len(found) < PAGE:
                return
            after = found[-1].index

    def _prove(
        self,
        page: list[ProvenanceEntry],
        nodes: dict[merkle.NodeId, bytes],
        missing: dict[int, str],
        encode: Callable[[list[_Proven]], str],
    ) -> bytes:
        """The page's entries proved, checked and encoded (in a worker thread); an entry
        in ``missing`` (a node of its proof is not in the ledger) has no proof."""
        assert self.checkpoint is not None
        size, root = self.checkpoint.tree_size, self.checkpoint.root_hash
        proven = []
        for entry in page:
            if entry.index in missing:
                proof: list[bytes] = []
                problem: str | None = f"entry {entry.index}: no proof: {missing[entry.index]}"
            else:
                proof = merkle.inclusion_proof(entry.index, size, nodes)
                problem = check_entry(entry, proof, size, root)
            self.tally.add(entry.index, problem)
            proven.append(_Proven(entry, proof, problem))
        return encode(proven).encode("utf-8")

    async def _nodes(
        self, page: list[ProvenanceEntry], size: int
    ) -> tuple[dict[merkle.NodeId, bytes], dict[int, str]]:
        """The nodes of the page's proofs, in one read; when the ledger lacks one (a node
        deleted behind the triggers' back), entry by entry, to name those it breaks."""
        wanted = {i for e in page for i in merkle.inclusion_node_ids(e.index, size)}
        try:
            return await self._ledger.nodes(sorted(wanted)), {}
        except NotFound:
            pass
        nodes: dict[merkle.NodeId, bytes] = {}
        missing: dict[int, str] = {}
        for entry in page:
            try:
                nodes.update(await self._ledger.nodes(merkle.inclusion_node_ids(entry.index, size)))
            except NotFound as exc:
                missing[entry.index] = str(exc)
        return nodes, missing

    async def _encoded_pages(self, encode: Callable[[list[_Proven]], str]) -> AsyncIterator[bytes]:
        async for page in self._pages():
            assert self.checkpoint is not None
            nodes, missing = await self._nodes(page, self.checkpoint.tree_size)
            yield await asyncio.to_thread(self._prove, page, nodes, missing, encode)

    async def json_chunks(self) -> AsyncIterator[bytes]:
        """The JSON document, an entry a line, ``verification`` last."""
        head = {
            "format": EXPORT_FORMAT,
            "exported_at": json_moment(self.exported_at),
            "filters": self.filters(),
            "checkpoint": self.checkpoint_doc,
        }
        yield (_dumps(head)[:-1] + ',"entries":[\n').encode("utf-8")
        first = True
        async for text in self._encoded_pages(_json_lines):
            yield text if first else b",\n" + text
            first = False
        verification = self.tally.document(self.checkpoint_doc, self.signature)
        tail = f'],"verification":{_dumps(verification)}}}\n'
        yield (tail if first else "\n" + tail).encode("utf-8")

    async def csv_chunks(self) -> AsyncIterator[bytes]:
        """The CSV text: the header row, then a row per entry."""
        yield _csv_text([list(CSV_COLUMNS)]).encode("utf-8")
        async for text in self._encoded_pages(_csv_rows):
            yield text


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def _csv_rows(page: list[_Proven]) -> str:
    return _csv_text([p.row() for p in page])


def _json_lines(page: list[_Proven]) -> str:
    return ",\n".join(_dumps(p.document()) for p in page)


async def start_export(
    audit: AuditService, principal: Principal, where: EntryFilter
) -> AuditExport:
    """An export of what ``principal`` may read of the trail, filtered by ``where``,
    against the checkpoint of the ledger as it is now (signed now if need be)."""
    scoped = audit.scope(principal, where)
    try:
        checkpoint: StoredCheckpoint | None = await audit.checkpoint()
    except NotFound:  # an empty ledger: there is nothing to export, nor to sign
        checkpoint = None
    key = audit.checkpoints.key
    signature = None
    if checkpoint is not None:
        signature = check_checkpoint(
            checkpoint_document(checkpoint, key.verifier_key), key.verifier
        )
    return AuditExport(
        audit.storage.ledger,
        scoped,
        checkpoint,
        key.verifier_key,
        signature,
        exported_at=utcnow(),
    )
