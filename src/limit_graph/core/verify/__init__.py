"""Verify the ledger offline: an entry, its inclusion proof, a signed checkpoint and the
ledger's public key are enough -- no database, no platform, no network.

Give it what the API serves -- an entry from ``GET /audit``, ``GET
/sessions/{id}/provenance`` or an archive bundle; the proof from ``GET
/audit/proof/inclusion`` (or the provenance entry's own ``proof``); the ``note`` of ``GET
/audit/checkpoint``; and the ledger's verifier key, exported once and kept where the
operator cannot change it:

- :func:`verify_entry` checks the note's signature (and the log's origin, if given), the
  entry's leaf hash recomputed from its fields, its payload against ``payload_sha256``
  when the payload is there, that the proof is the entry's and of the checkpoint's tree
  size, and the audit path up to the signed root;
- :func:`verify_consistency_proof` checks that the log only grew between two signed
  checkpoints (``GET /audit/proof/consistency``);
- :func:`verify_checkpoint` checks one signed note.

Each answers a small frozen dataclass, or raises the :class:`VerificationError` subclass
of the check that failed (:mod:`limit_graph.core.verify.errors` draws the tree).  From a
shell: ``python -m limit_graph.core.verify entry.json proof.json checkpoint.note --key
KEY`` (``KEY``: the verifier key or a file holding it) exits 0, or 1 saying why.

Importing it imports nothing of the platform but :mod:`limit_graph.core`'s canonical
JSON, Merkle trees and signed notes (standard library and ``cryptography``).

>>> from limit_graph.core import ledger_leaf, notes
>>> signer = notes.Signer.from_private_bytes("example.org/log", bytes(32))
>>> entry = {
...     "index": 0, "timestamp": "2026-03-01T12:00:00Z", "actor": "alice",
...     "tenant": None, "action": "session.created", "resource_type": "session",
...     "resource_id": "s-1", "session_id": None, "payload_sha256": "0" * 64,
...     "erasable": False,
... }
>>> leaf = ledger_leaf.entry_leaf_hash(entry)
>>> entry["leaf_hash"] = ledger_leaf.encode_hash(leaf)
>>> note = notes.sign_note(notes.Checkpoint("example.org/log", 1, leaf).text(), signer)
>>> proof = {"index": 0, "tree_size": 1, "leaf_hash": entry["leaf_hash"], "hashes": []}
>>> key = signer.verifier_key()
>>> verify_entry(entry, proof, note, key).tree_size
1
>>> verify_entry({**entry, "actor": "mallory"}, proof, note, key)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
limit_graph.core.verify.errors.LeafMismatch: entry 0: its fields hash to ...
"""

from __future__ import annotations

from limit_graph.core.verify.checks import (
    VerifiedCheckpoint,
    VerifiedConsistency,
    VerifiedEntry,
    verify_checkpoint,
    verify_consistency_proof,
    verify_entry,
)
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
    VerificationError,
)

__all__ = [
    "ConsistencyFailed",
    "InclusionFailed",
    "LeafMismatch",
    "MalformedInput",
    "OriginMismatch",
    "PayloadMismatch",
    "ProofMismatch",
    "SignatureInvalid",
    "TreeSizeMismatch",
    "VerificationError",
    "VerifiedCheckpoint",
    "VerifiedConsistency",
    "VerifiedEntry",
    "verify_checkpoint",
    "verify_consistency_proof",
    "verify_entry",
]
