"""The checks an export makes of itself, and a reader makes of an export again: the
checkpoint's note against a key, each entry's hashes and inclusion proof against the
checkpoint, and the tally of what failed, said in one sentence.

>>> tally = Tally()
>>> tally.add(3, None); tally.add(4, "entry 4: payload does not match payload_sha256")
>>> tally.summary(None, "the export has entries but no checkpoint")
'not verified: the export has entries but no checkpoint'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from limit_graph.core import merkle, notes
from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.ledger import decode_hash, encode_hash, verify_entry
from limit_graph.storage.ledger_store import StoredCheckpoint

__all__ = [
    "LISTED_FAILURES",
    "Tally",
    "check_checkpoint",
    "check_entry",
    "checkpoint_document",
    "json_moment",
    "key_label",
]

LISTED_FAILURES = 100
"""At most this many failures are named in ``verification.failures``; all are counted."""
_MOMENT = TypeAdapter(datetime)


def json_moment(value: datetime) -> str:
    """A moment as the API writes it (RFC 3339, ``Z``)."""
    text: str = _MOMENT.dump_python(value, mode="json")
    return text


def checkpoint_document(checkpoint: StoredCheckpoint, public_key: str) -> dict[str, Any]:
    """The checkpoint as ``GET /audit/checkpoint`` answers it."""
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": encode_hash(checkpoint.root_hash),
        "timestamp": json_moment(checkpoint.timestamp),
        "note": checkpoint.note,
        "key_id": checkpoint.key_id,
        "public_key": public_key,
    }


def key_label(checkpoint: Mapping[str, Any]) -> str:
    """The signing key as people name it: ``<name>+<key id>`` (its verifier key without
    the public key itself)."""
    return f"{str(checkpoint['public_key']).split('+', 1)[0]}+{checkpoint['key_id']}"


def check_checkpoint(document: Mapping[str, Any], verifier: notes.Verifier) -> str | None:
    """Why a checkpoint document does not hold, or ``None``: its note must be signed by
    ``verifier``'s key and say the document's tree size and root."""
    try:
        opened = notes.parse_checkpoint(notes.open_note(document["note"], [verifier]).text)
    except (notes.NoteError, KeyError, TypeError) as exc:
        return f"the checkpoint's note does not verify: {exc}"
    if (opened.size, encode_hash(opened.root_hash)) != (
        document.get("tree_size"),
        document.get("root_hash"),
    ):
        return "the checkpoint's note says another tree size or root than the checkpoint"
    return None


def check_entry(
    entry: ProvenanceEntry, proof: Sequence[bytes], size: int, root: bytes
) -> str | None:
    """Why an exported entry does not verify against the checkpoint of ``size`` entries
    whose root is ``root``, or ``None``: its payload and leaf hashes, then its proof."""
    problem = verify_entry(entry)
    if problem:
        return problem
    if not 0 <= entry.index < size:
        return f"entry {entry.index}: not in the checkpoint's tree of {size} entries"
    try:
        merkle.verify_inclusion(entry.index, size, decode_hash(entry.leaf_hash), proof, root)
    except ValueError as exc:  # merkle.ProofError is one, and so is a bad base64 hash
        return f"entry {entry.index}: its inclusion proof does not verify: {exc}"
    return None


@dataclass
class Tally:
    """What checking an export found: entries seen, those that failed and why."""

    entries: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, index: int, problem: str | None) -> None:
        self.entries += 1
        if problem is not None:
            self.failed += 1
            if len(self.failures) < LISTED_FAILURES:
                self.failures.append({"index": index, "problem": problem})

    def summary(
        self, checkpoint: Mapping[str, Any] | None, signature: str | None, key: str | None = None
    ) -> str:
        """The result in one sentence, as the export and the report say it; ``key`` names
        the key the signature was checked with (default: the one the checkpoint names)."""
        if signature is not None:
            return f"not verified: {signature}"
        if checkpoint is None:
            return "nothing to verify: the ledger is empty"
        key = key or key_label(checkpoint)
        against = f"checkpoint size {checkpoint['tree_size']:,} signed by key {key}"
        if self.failed:
            first = self.failures[0]["problem"]
            bad = f"{self.failed:,} of {self.entries:,} entries"
            return f"not verified: {bad} do not verify against {against}; the first: {first}"
        return f"verified {self.entries:,} entries against {against}"

    def document(
        self, checkpoint: Mapping[str, Any] | None, signature: str | None
    ) -> dict[str, Any]:
        return {
            "ok": signature is None and not self.failed,
            "entries": self.entries,
            "verified": self.entries - self.failed,
            "failed": self.failed,
            "failures": self.failures,
            "checkpoint_signature": signature or "ok",
            "summary": self.summary(checkpoint, signature),
        }
