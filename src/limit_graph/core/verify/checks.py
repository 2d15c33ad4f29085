"""The checks: a signed checkpoint, an entry in it, two checkpoints consistent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limit_graph.core import ledger_leaf, merkle, notes
from limit_graph.core.errors import InvalidInput
from limit_graph.core.verify.errors import (
    ConsistencyFailed,
    InclusionFailed,
    LeafMismatch,
    MalformedInput,
    OriginMismatch,
    PayloadMismatch,
    ProofMismatch,
    SignatureInvalid,
    TreeSizeMismatch,
)
from limit_graph.core.verify.inputs import (
    as_text,
    read_consistency_proof,
    read_entry,
    read_hash,
    read_inclusion_proof,
    read_key,
)

__all__ = [
    "VerifiedCheckpoint",
    "VerifiedConsistency",
    "VerifiedEntry",
    "verify_checkpoint",
    "verify_consistency_proof",
    "verify_entry",
]

Key = str | notes.Verifier


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose signature verified: the log's origin, tree size and root."""

    origin: str
    tree_size: int
    root: bytes


@dataclass(frozen=True)
class VerifiedEntry:
    """An entry shown to be leaf ``index`` of the signed tree of ``tree_size`` entries
    of the log ``origin``, whose root is ``root``."""

    index: int
    tree_size: int
    origin: str
    root: bytes


@dataclass(frozen=True)
class VerifiedConsistency:
    """The signed tree of ``first`` entries shown to be a prefix of that of ``second``."""

    origin: str
    first: int
    second: int
    first_root: bytes
    second_root: bytes


def verify_checkpoint(
    note: str | bytes, public_key: Key, *, origin: str | None = None
) -> VerifiedCheckpoint:
    """Check a checkpoint's signed note (C2SP ``signed-note`` of a ``tlog-checkpoint``):
    exactly one note, a well-formed checkpoint, a valid signature by ``public_key`` (the
    note verifier-key text) and, when given, the log's ``origin``."""
    verifier = read_key(public_key)
    text = as_text(note, "the checkpoint note")
    try:
        parsed = notes.parse_note(text)
        checkpoint = notes.parse_checkpoint(parsed.text)
    except notes.NoteError as exc:
        raise MalformedInput(f"the checkpoint note: {exc}") from None
    try:
        signed = notes.verified_signatures(parsed, [verifier])
    except notes.NoteError as exc:
        raise SignatureInvalid(f"the checkpoint note: {exc}") from None
    if not signed:
        keys = ", ".join(sorted({sig.key for sig in parsed.signatures}))
        raise SignatureInvalid(
            f"the checkpoint note is not signed by {verifier.name}+{verifier.key_id.hex()} "
            f"(it is signed by {keys})"
        )
    if origin is not None and checkpoint.origin != origin:
        raise OriginMismatch(f"the checkpoint is of the log {checkpoint.origin!r}, not {origin!r}")
    return VerifiedCheckpoint(checkpoint.origin, checkpoint.size, checkpoint.root_hash)


def _leaf_of(entry: Mapping[str, Any]) -> bytes:
    """The entry's leaf hash recomputed from its fields; it must be its ``leaf_hash``."""
    try:
        computed = ledger_leaf.entry_leaf_hash(entry)
    except InvalidInput as exc:
        raise MalformedInput(f"entry {entry['index']}: {exc.detail}") from None
    stated = read_hash(entry["leaf_hash"], "the entry's leaf_hash")
    if computed != stated:
        raise LeafMismatch(
            f"entry {entry['index']}: its fields hash to {ledger_leaf.encode_hash(computed)}, "
            f"not to its leaf_hash {entry['leaf_hash']}: a field was changed"
        )
    return computed


def verify_entry(
    entry: Mapping[str, Any] | str | bytes,
    proof: Mapping[str, Any] | list[str] | str | bytes | None,
    checkpoint_note: str | bytes,
    public_key: Key,
    *,
    origin: str | None = None,
) -> VerifiedEntry:
    """Check that ``entry`` is in the signed checkpoint's tree.

    ``entry`` is an entry document or its JSON text, as ``/audit``, provenance pages and
    archive bundles show it; ``proof`` the inclusion proof ``{"index", "tree_size",
    "leaf_hash", "hashes"}``, or a provenance entry's ``proof`` list (``None``: the
    entry's own ``proof`` member).  In order: the checkpoint's signature (and origin),
    the entry's leaf hash recomputed from its fields, its payload against
    ``payload_sha256`` when the payload is there, that the proof is the entry's and of
    the checkpoint's tree size, and the audit path up to the checkpoint's root.
    """
    checkpoint = verify_checkpoint(checkpoint_note, public_key, origin=origin)
    document = read_entry(entry)
    index: int = document["index"]
    leaf = _leaf_of(document)
    try:
        problem = ledger_leaf.payload_problem(document)
    except InvalidInput as exc:
        raise MalformedInput(f"entry {index}'s payload: {exc.detail}") from None
    if problem is not None:
        raise PayloadMismatch(problem)
    if proof is None:
        if "proof" not in document:
            raise MalformedInput(f"entry {index}: no inclusion proof given, and it has none")
        proof = document["proof"]
    given = read_inclusion_proof(proof)
    if given.index is not None and given.index != index:
        raise ProofMismatch(f"the inclusion proof is of entry {given.index}, not entry {index}")
    if given.leaf_hash is not None and given.leaf_hash != leaf:
        raise ProofMismatch(f"the inclusion proof's leaf_hash is not entry {index}'s")
    size = checkpoint.tree_size if given.tree_size is None else given.tree_size
    if size != checkpoint.tree_size:
        raise TreeSizeMismatch(
            f"the inclusion proof is in a tree of {size} entries, the checkpoint's holds "
            f"{checkpoint.tree_size}"
        )
    try:
        merkle.verify_inclusion(index, size, leaf, given.hashes, checkpoint.root)
    except merkle.ProofError as exc:
        raise InclusionFailed(
            f"entry {index} is not shown in the checkpoint's tree of {size} entries: {exc}"
        ) from None
    return VerifiedEntry(index, size, checkpoint.origin, checkpoint.root)


def verify_consistency_proof(
    old_note: str | bytes,
    new_note: str | bytes,
    proof: Mapping[str, Any] | list[str] | str | bytes,
    public_key: Key,
    *,
    origin: str | None = None,
) -> VerifiedConsistency:
    """Check that the log only grew between two signed checkpoints: both verify (by
    ``public_key``, of one origin), ``proof`` (``{"first", "second", "hashes"}`` or the
    list of hashes) is between their sizes, and it joins their roots (RFC 9162 §2.1.4)."""
    old = verify_checkpoint(old_note, public_key, origin=origin)
    new = verify_checkpoint(new_note, public_key, origin=origin)
    if old.origin != new.origin:
        raise OriginMismatch(f"the checkpoints are of two logs, {old.origin!r} and {new.origin!r}")
    first, second, hashes = read_consistency_proof(proof)
    if (first, second) != (None, None) and (first, second) != (old.tree_size, new.tree_size):
        raise TreeSizeMismatch(
            f"the consistency proof is from {first} to {second} entries, the checkpoints "
            f"hold {old.tree_size} and {new.tree_size}"
        )
    if old.tree_size > new.tree_size:
        raise ConsistencyFailed(
            f"the old checkpoint holds {old.tree_size} entries, more than the new one's "
            f"{new.tree_size}"
        )
    try:
        merkle.verify_consistency(old.tree_size, new.tree_size, old.root, new.root, hashes)
    except merkle.ProofError as exc:
        raise ConsistencyFailed(
            f"the tree of {old.tree_size} entries is not shown to be a prefix of the tree of "
            f"{new.tree_size}: {exc}"
        ) from None
    return VerifiedConsistency(old.origin, old.tree_size, new.tree_size, old.root, new.root)
