"""The provenance ledger's entries: how they are built, hashed into leaves and verified.

Every storage backend appends entries through :func:`make_entry` (or
:func:`build_entry`, which also keeps the texts it hashed for the row); the leaf and payload
hashes are those of :mod:`limit_graph.core.ledger_leaf`, the one definition a verifier
outside the platform uses too (``docs/provenance.md`` says the same in prose):

- ``payload_sha256`` is the SHA-256 of the payload's canonical JSON (RFC 8785); for an
  *erasable* entry (one whose payload may hold personal data) it is the SHA-256 of a
  random 16-byte salt followed by that JSON, the salt kept (base64url) beside the
  payload, so that erasing both later leaves a commitment nobody can test a guess
  against;
- the **leaf** of entry ``i`` in the RFC 6962 Merkle tree is ``SHA-256(0x00 || L)``,
  where ``L`` is the canonical JSON of the entry's :func:`leaf_document`: every field
  but the payload, its salt and the leaf hash itself.  The payload is covered through
  its hash, which is why erasing it does not change the tree.

The tree over the leaves (:mod:`limit_graph.core.merkle`) is kept by the backends:
:class:`LedgerHead` is the right edge a writer extends, and the perfect-subtree nodes
each append completes are what a backend stores for its proofs.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from limit_graph.core import ledger_leaf, merkle
from limit_graph.core.canonical import canonical_json
from limit_graph.core.errors import InvalidInput
from limit_graph.core.ledger_leaf import decode_hash, encode_hash, payload_digest, text_digest
from limit_graph.core.models import ProvenanceEntry, utcnow

__all__ = [
    "BuiltEntry",
    "EntryDraft",
    "LedgerHead",
    "NodeRow",
    "decode_hash",
    "encode_hash",
    "entry_leaf_hash",
    "leaf_bytes",
    "leaf_document",
    "build_entry",
    "make_entry",
    "payload_digest",
    "text_digest",
    "verify_entries",
    "verify_entry",
]

_SALT_BYTES = 16
_TIMESTAMP = TypeAdapter(datetime)
"""A timestamp as an entry's document writes it (pydantic's JSON form)."""

NodeRow = tuple[merkle.NodeId, bytes]
"""A perfect subtree's id and hash, as an append completes it."""


@dataclass(frozen=True)
class EntryDraft:
    """What a writer knows of an entry before it takes its place in the ledger.

    ``tenant`` is whose trail the entry belongs to; a backend fills it from the
    session when the draft names a session and no tenant (``None`` with no session:
    the platform's own, seen by admins only).  ``erasable`` commits the payload by a
    salted hash, so that it can be erased later without breaking the tree.
    """

    actor: str
    action: str
    resource_type: str
    resource_id: str
    session_id: uuid.UUID | None
    payload: dict[str, Any]
    tenant: str | None = None
    erasable: bool = False


def leaf_document(entry: ProvenanceEntry) -> dict[str, Any]:
    """The fields an entry's leaf hashes: all but the payload, its salt and the leaf
    (:func:`limit_graph.core.ledger_leaf.leaf_document` of its document)."""
    return ledger_leaf.leaf_document(entry.document())


def leaf_bytes(entry: ProvenanceEntry) -> bytes:
    """The bytes whose RFC 6962 leaf hash is the entry's leaf: its leaf document's
    canonical JSON."""
    return ledger_leaf.leaf_bytes(entry.document())


def entry_leaf_hash(entry: ProvenanceEntry) -> bytes:
    """``SHA-256(0x00 || leaf_bytes(entry))``."""
    return ledger_leaf.entry_leaf_hash(entry.document())


@dataclass(frozen=True, slots=True)
class BuiltEntry:
    """An entry with the exact texts its two hashes cover, as a store writes its row:
    ``leaf`` (the leaf bytes, as text), ``payload`` (the payload's canonical JSON) and
    ``leaf_hash`` (raw)."""

    entry: ProvenanceEntry
    leaf: str
    payload: str | None
    leaf_hash: bytes

    @property
    def index(self) -> int:
        return self.entry.index


def build_entry(
    index: int,
    draft: EntryDraft,
    *,
    tenant: str | None = None,
    timestamp: datetime | None = None,
) -> BuiltEntry:
    """The entry for ``draft`` at ``index``, its payload hash and leaf hash set, with the
    texts they hash.

    The entry's tenant is the draft's, else ``tenant`` (the one the backend found for
    the draft's session), else the payload's ``tenant`` (identity and policy changes
    name the tenant they change).  Each text is made once, and the entry validated once,
    with its hashes, strictly (no value converted): so the leaf, written from the same
    values (:func:`_leaf_text`), is exactly that of the entry's document
    (:func:`limit_graph.core.ledger_leaf.leaf_bytes`), without dumping it.
    """
    if draft.tenant is not None:
        tenant = draft.tenant
    elif tenant is None and isinstance(named := draft.payload.get("tenant"), str):
        tenant = named
    salt = (
        base64.urlsafe_b64encode(os.urandom(_SALT_BYTES)).rstrip(b"=").decode("ascii")
        if draft.erasable
        else None
    )
    payload = canonical_json(draft.payload)
    payload_sha256 = text_digest(payload.encode("utf-8"), salt)
    when = timestamp or utcnow()
    fields = {
        "index": index,
        "timestamp": _TIMESTAMP.dump_python(when, mode="json"),
        "actor": draft.actor,
        "tenant": tenant,
        "action": draft.action,
        "resource_type": draft.resource_type,
        "resource_id": draft.resource_id,
        "session_id": str(draft.session_id) if draft.session_id is not None else None,
        "payload_sha256": payload_sha256,
        "erasable": draft.erasable,
    }
    leaf = _leaf_text(fields)
    digest = merkle.leaf_hash(leaf.encode("utf-8"))
    entry = ProvenanceEntry.model_validate(
        {
            "index": index,
            "timestamp": when,
            "actor": draft.actor,
            "tenant": tenant,
            "action": draft.action,
            "resource_type": draft.resource_type,
            "resource_id": draft.resource_id,
            "session_id": draft.session_id,
            "payload": draft.payload,
            "payload_sha256": payload_sha256,
            "erasable": draft.erasable,
            "payload_salt": salt,
            "leaf_hash": encode_hash(digest),
        },
        strict=True,  # no value converted: the entry's fields are the leaf's
    )
    return BuiltEntry(entry, leaf, payload, digest)


def _leaf_text(fields: dict[str, Any]) -> str:
    """The canonical JSON of a leaf's fields.  Its names are ASCII and its values
    strings, integers (an index within 2**53), booleans and nulls, whose
    :func:`json.dumps` text with sorted keys is already RFC 8785's
    (:mod:`limit_graph.core.canonical`: only floats and names beyond ASCII are mended),
    so that text is taken as it is.  A lone surrogate, which has no canonical form, is
    refused by :func:`canonical_json`, naming where; a value of another type by name."""
    try:
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        return canonical_json(fields)
    except TypeError:
        name, value = next(
            (name, value)
            for name, value in fields.items()
            if not isinstance(value, str | int | bool | None)
        )
        raise InvalidInput(
            f"an entry's {name} is a {type(value).__name__}, which its leaf cannot hold"
        ) from None
    return text


def make_entry(
    index: int,
    draft: EntryDraft,
    *,
    tenant: str | None = None,
    timestamp: datetime | None = None,
) -> ProvenanceEntry:
    """The entry for ``draft`` at ``index``, its payload hash and leaf hash set
    (:func:`build_entry`'s entry)."""
    return build_entry(index, draft, tenant=tenant, timestamp=timestamp).entry


def verify_entry(entry: ProvenanceEntry) -> str | None:
    """Why ``entry`` does not verify on its own, or ``None`` when it does.

    An erased payload (``None``) verifies only on an erasable entry; there is nothing
    left to check it against but the leaf, which still covers its hash.
    """
    document = entry.document()
    problem = ledger_leaf.payload_problem(document)
    if problem is not None:
        return problem
    if encode_hash(ledger_leaf.entry_leaf_hash(document)) != entry.leaf_hash:
        return f"entry {entry.index}: leaf_hash does not match the entry's fields"
    return None


def verify_entries(entries: Iterable[ProvenanceEntry], *, contiguous: bool = True) -> str | None:
    """Why a run of entries does not verify, or ``None``.

    With ``contiguous`` the entries must be consecutive ledger indexes (from the first
    one's); without it (a session's entries, interleaved with others in the ledger)
    each entry must verify and indexes must only increase.  That they are the ledger's
    own is for the tree to show (:mod:`limit_graph.orchestration.audit`).
    """
    prev: ProvenanceEntry | None = None
    for entry in entries:
        problem = verify_entry(entry)
        if problem:
            return problem
        if prev is not None:
            if entry.index <= prev.index:
                return f"entry {entry.index}: out of order after entry {prev.index}"
            if contiguous and entry.index != prev.index + 1:
                return f"entry {prev.index + 1}: missing (entry {entry.index} follows {prev.index})"
        prev = entry
    return None


class LedgerHead:
    """The end of the ledger as a writer extends it: the tree's right edge
    (:class:`~limit_graph.core.merkle.CompactRange`), from which the next entry's
    index, the root, and the nodes each new leaf completes all follow."""

    __slots__ = ("edge",)

    def __init__(self, edge: merkle.CompactRange | None = None) -> None:
        self.edge = edge if edge is not None else merkle.CompactRange.empty()

    @classmethod
    def stored(cls, size: int, edge: bytes) -> LedgerHead:
        """The head as a store keeps it: the size and the edge's hashes."""
        return cls(merkle.CompactRange.from_bytes(size, edge))

    @property
    def size(self) -> int:
        return self.edge.size

    def root(self) -> bytes:
        return self.edge.root()

    def edge_bytes(self) -> bytes:
        return self.edge.to_bytes()

    def add(self, entries: Iterable[ProvenanceEntry | BuiltEntry]) -> list[NodeRow]:
        """Extend the tree by the entries' leaves (which must follow it); the perfect
        nodes they complete, leaves included."""
        nodes: list[NodeRow] = []
        for entry in entries:
            if entry.index != self.edge.size:
                raise ValueError(f"entry {entry.index} does not follow a ledger of {self.size}")
            leaf = (
                entry.leaf_hash if isinstance(entry, BuiltEntry) else decode_hash(entry.leaf_hash)
            )
            nodes.extend(self.edge.append(leaf))
        return nodes
