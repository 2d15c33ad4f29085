"""Why an entry, a checkpoint or a consistency proof does not verify: one error class
per check, all under :class:`VerificationError` (a :class:`ValueError`)::

    VerificationError
    ├── MalformedInput       the entry, proof, note or key cannot be read as one
    ├── SignatureInvalid     the note is not signed by the key, or its signature fails
    ├── OriginMismatch       the checkpoint is of another log than the one expected
    ├── LeafMismatch         the entry's fields do not hash to its leaf_hash
    ├── PayloadMismatch      the payload does not hash to payload_sha256
    ├── ProofMismatch        the inclusion proof is of another entry
    ├── TreeSizeMismatch     the proof is of a tree of another size than the checkpoint's
    ├── InclusionFailed      the audit path does not lead to the checkpoint's root
    └── ConsistencyFailed    the consistency proof does not join the two roots

The message names the entry, field or line that failed.
"""

from __future__ import annotations

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
]


class VerificationError(ValueError):
    """Something did not verify; the subclass says which check, the message what."""


class MalformedInput(VerificationError):
    """An entry, proof, checkpoint note or public key that cannot be read as one."""


class SignatureInvalid(VerificationError):
    """The checkpoint note carries no valid signature of the given key."""


class OriginMismatch(VerificationError):
    """The checkpoint is of another log (its origin line) than the one expected."""


class LeafMismatch(VerificationError):
    """The entry's fields, hashed again, are not its ``leaf_hash``: one was changed."""


class PayloadMismatch(VerificationError):
    """The entry's payload does not hash (after its salt) to its ``payload_sha256``."""


class ProofMismatch(VerificationError):
    """The inclusion proof is of another entry (its index or leaf hash)."""


class TreeSizeMismatch(VerificationError):
    """A proof's tree size is not the size of the checkpoint it is checked against."""


class InclusionFailed(VerificationError):
    """The audit path does not lead from the entry's leaf to the checkpoint's root."""


class ConsistencyFailed(VerificationError):
    """The consistency proof does not show the older tree as a prefix of the newer."""
