"""The ledger's first format, a hash chain, frozen: what migration ``0007`` checks before
it moves a ledger into the Merkle tree, and what its downgrade writes back.

An entry of that format was its pydantic JSON document with ``prev_hash`` (the entry
before's ``entry_hash``; 64 zeros for the first) and ``entry_hash``, the SHA-256 of the
document without ``entry_hash`` as ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` wrote it, which is also how ``payload_sha256`` hashed the payload.
That serialisation is kept here as it was, whatever the platform's canonical JSON
becomes, so that a chain written then still verifies.

>>> first = chain_document(0, GENESIS_HASH, {"index": 0, "payload": {"a": 1.0}})
>>> first["payload_sha256"][:12], verify_chain_document(first, 0, GENESIS_HASH)
('c29a44abc114', None)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["GENESIS_HASH", "chain_document", "legacy_sha256", "verify_chain_document"]

GENESIS_HASH = "0" * 64


def legacy_sha256(document: Any) -> str:
    """SHA-256 of ``document`` as the chained format serialised it."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_document(index: int, prev_hash: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The chained document of an entry: ``fields`` (all but the hashes) at ``index``,
    linked to ``prev_hash``."""
    document = {**fields, "index": index, "prev_hash": prev_hash}
    document["payload_sha256"] = legacy_sha256(document["payload"])
    document.pop("entry_hash", None)
    document["entry_hash"] = legacy_sha256(document)
    return document


def verify_chain_document(document: dict[str, Any], index: int, prev_hash: str) -> str | None:
    """Why a chained document is not entry ``index`` following ``prev_hash``, or ``None``."""
    if document.get("index") != index:
        return f"entry {index}: the ledger holds entry {document.get('index')} in its place"
    if document.get("prev_hash") != prev_hash:
        return f"entry {index}: does not link to the entry before it"
    if legacy_sha256(document.get("payload")) != document.get("payload_sha256"):
        return f"entry {index}: payload does not match payload_sha256"
    unhashed = {k: v for k, v in document.items() if k != "entry_hash"}
    if legacy_sha256(unhashed) != document.get("entry_hash"):
        return f"entry {index}: entry_hash does not match the entry's fields"
    return None
