"""The provenance hash chain: building, hashing and verifying ledger entries.

Every storage backend appends entries through :func:`chain_entry`, so the entry
format and its hashes are defined here and nowhere else.  Each entry carries the
SHA-256 of its payload and of itself (which covers ``prev_hash``), so altering,
dropping or reordering an entry breaks the chain.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from limit_graph.core.canonical import sha256_hex
from limit_graph.core.models import ProvenanceEntry, utcnow

__all__ = [
    "GENESIS_HASH",
    "EntryDraft",
    "LedgerHead",
    "chain_entry",
    "compute_entry_hash",
    "verify_chain",
    "verify_entry",
]

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class EntryDraft:
    """What a writer knows of an entry before it takes its place in the chain."""

    actor: str
    action: str
    resource_type: str
    resource_id: str
    session_id: uuid.UUID | None
    payload: dict[str, Any]


class LedgerHead(NamedTuple):
    """Where the ledger ends: how many entries it holds and the last one's hash."""

    size: int
    last_hash: str

    @classmethod
    def after(cls, entry: ProvenanceEntry | None) -> LedgerHead:
        if entry is None:
            return cls(0, GENESIS_HASH)
        return cls(entry.index + 1, entry.entry_hash)


def compute_entry_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over every field of an entry's JSON document but ``entry_hash`` itself.

    The document is the entry's pydantic JSON form, so timestamps hash as they are
    stored and exported (RFC 3339, ``Z``).
    """
    return sha256_hex({k: v for k, v in fields.items() if k != "entry_hash"})


def chain_entry(
    head: LedgerHead, draft: EntryDraft, timestamp: datetime | None = None
) -> ProvenanceEntry:
    """The entry for ``draft`` that follows ``head``, the current end of the ledger."""
    unhashed = ProvenanceEntry(
        index=head.size,
        timestamp=timestamp or utcnow(),
        actor=draft.actor,
        action=draft.action,
        resource_type=draft.resource_type,
        resource_id=draft.resource_id,
        session_id=draft.session_id,
        payload=draft.payload,
        payload_sha256=sha256_hex(draft.payload),
        prev_hash=head.last_hash,
        entry_hash="",
    )
    return unhashed.model_copy(update={"entry_hash": compute_entry_hash(unhashed.document())})


def verify_entry(entry: ProvenanceEntry) -> str | None:
    """Why ``entry`` does not verify on its own, or ``None`` when it does."""
    if sha256_hex(entry.payload) != entry.payload_sha256:
        return f"entry {entry.index}: payload does not match payload_sha256"
    if compute_entry_hash(entry.document()) != entry.entry_hash:
        return f"entry {entry.index}: entry_hash does not match the entry's fields"
    return None


def verify_chain(entries: Iterable[ProvenanceEntry], *, contiguous: bool = True) -> str | None:
    """Why a run of entries does not verify, or ``None``.

    With ``contiguous`` the entries must be consecutive ledger indexes, each linked
    to the one before; without it (a session's entries, interleaved with others in
    the ledger) each entry must verify and indexes must only increase.
    """
    prev: ProvenanceEntry | None = None
    for entry in entries:
        problem = verify_entry(entry)
        if problem:
            return problem
        if prev is not None:
            if entry.index <= prev.index:
                return f"entry {entry.index}: out of order after entry {prev.index}"
            if contiguous and (entry.index != prev.index + 1 or entry.prev_hash != prev.entry_hash):
                return f"entry {entry.index}: does not link to entry {prev.index}"
        elif contiguous and entry.index == 0 and entry.prev_hash != GENESIS_HASH:
            return "entry 0: does not start from the genesis hash"
        prev = entry
    return None
