"""What a ledger entry's leaf is, from the entry as a document: the one definition that
the platform's store and a verifier outside the platform both use.

An entry document is the entry as ``GET /audit``, ``GET /sessions/{id}/provenance``,
archive bundles and exports show it: timestamps as RFC 3339 text in UTC with ``Z``,
hashes in base64, ``payload_sha256`` in hex.  Of its members, the leaf covers the ten
of :data:`LEAF_FIELDS`; the payload counts through its hash, so ``payload``,
``payload_salt`` and ``leaf_hash`` itself are left out (any other member, such as a
provenance entry's ``proof``, is not the entry's and is ignored):

- the **leaf bytes** are the RFC 8785 canonical JSON of those ten fields;
- the **leaf hash** is ``SHA-256(0x00 || leaf bytes)`` (RFC 6962 §2.1), shown in base64;
- ``payload_sha256`` is the SHA-256, in hex, of the payload's canonical JSON; for an
  *erasable* entry, of its 16-byte salt (``payload_salt``, base64url) followed by it.

Standard library and :mod:`limit_graph.core.canonical` only, so that
:mod:`limit_graph.core.verify` runs without the platform.

>>> entry = {
...     "index": 0, "timestamp": "2026-03-01T12:00:00Z", "actor": "alice",
...     "tenant": "acme", "action": "session.created", "resource_type": "session",
...     "resource_id": "s-1", "session_id": None, "payload": {"name": "demo"},
...     "payload_sha256": payload_digest({"name": "demo"}, None), "erasable": False,
... }
>>> leaf_bytes(entry)[:44]
b'{"action":"session.created","actor":"alice",'
>>> payload_problem(entry) is None
True
>>> payload_problem({**entry, "payload": {"name": "other"}})
'entry 0: payload does not match payload_sha256'
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from limit_graph.core import merkle
from limit_graph.core.canonical import canonical_json

__all__ = [
    "LEAF_FIELDS",
    "UNHASHED_FIELDS",
    "EntryFieldsMissing",
    "decode_hash",
    "encode_hash",
    "entry_leaf_hash",
    "leaf_bytes",
    "leaf_document",
    "payload_digest",
    "payload_problem",
    "text_digest",
]

LEAF_FIELDS = (
    "index",
    "timestamp",
    "actor",
    "tenant",
    "action",
    "resource_type",
    "resource_id",
    "session_id",
    "payload_sha256",
    "erasable",
)
"""The fields an entry's leaf hashes, every one of them always present."""

UNHASHED_FIELDS = ("payload", "payload_salt", "leaf_hash")
"""The entry's own fields its leaf does not hash (the payload counts by its hash)."""


class EntryFieldsMissing(ValueError):
    """An entry document lacks some of the fields its leaf hashes."""


def encode_hash(digest: bytes) -> str:
    """A hash as the ledger's documents and the API show it: standard base64."""
    return base64.b64encode(digest).decode("ascii")


def decode_hash(text: str) -> bytes:
    """The bytes of a base64 hash; :class:`ValueError` unless it is 32 of them."""
    try:
        digest = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not base64") from None
    if len(digest) != merkle.HASH_SIZE:
        raise ValueError(f"a hash is {merkle.HASH_SIZE} bytes, not {len(digest)}")
    return digest


def text_digest(text: bytes, salt: str | None) -> str:
    """``payload_sha256`` of a payload's canonical JSON as stored: after the salt if any."""
    if salt is None:
        return hashlib.sha256(text).hexdigest()
    raw = base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4))
    return hashlib.sha256(raw + text).hexdigest()


def payload_digest(payload: Any, salt: str | None) -> str:
    """``payload_sha256`` of a payload: of its canonical JSON, after the salt if any."""
    return text_digest(canonical_json(payload).encode("utf-8"), salt)


def leaf_document(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The ten fields of :data:`LEAF_FIELDS` that an entry's leaf hashes, as given."""
    try:
        return {name: entry[name] for name in LEAF_FIELDS}
    except KeyError:
        missing = ", ".join(name for name in LEAF_FIELDS if name not in entry)
        raise EntryFieldsMissing(f"the entry has no {missing}") from None


def leaf_bytes(entry: Mapping[str, Any]) -> bytes:
    """The bytes whose RFC 6962 leaf hash is the entry's leaf: the canonical JSON of its
    :func:`leaf_document`."""
    return canonical_json(leaf_document(entry)).encode("utf-8")


def entry_leaf_hash(entry: Mapping[str, Any]) -> bytes:
    """``SHA-256(0x00 || leaf_bytes(entry))``."""
    return merkle.leaf_hash(leaf_bytes(entry))


def payload_problem(entry: Mapping[str, Any]) -> str | None:
    """Why the entry's payload does not match its ``payload_sha256``, or ``None``.

    An entry shown without a ``payload`` member (``/audit``, provenance pages) has
    nothing to check.  An erased payload (``None``) is right only on an erasable entry;
    a payload that is there needs its salt if, and only if, the entry is erasable.
    """
    if "payload" not in entry:
        return None
    index = entry.get("index")
    payload, salt = entry["payload"], entry.get("payload_salt")
    erasable = entry.get("erasable") is True
    if payload is None:
        return (
            None if erasable else f"entry {index}: its payload is missing and it was not erasable"
        )
    if erasable != (salt is not None):
        return f"entry {index}: an erasable payload needs its salt, and only it"
    if payload_digest(payload, salt) != entry.get("payload_sha256"):
        return f"entry {index}: payload does not match payload_sha256"
    return None
