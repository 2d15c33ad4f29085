"""Reading what a verifier is given -- an entry, a proof, a public key -- as the API
serves them, strictly: JSON text or the decoded value, every field of the right type,
every hash 32 bytes of canonical base64; anything else is a :class:`MalformedInput`
naming the field."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limit_graph.core import ledger_leaf, notes
from limit_graph.core.verify.errors import MalformedInput

__all__ = [
    "InclusionInput",
    "as_text",
    "load_json",
    "read_consistency_proof",
    "read_entry",
    "read_hash",
    "read_inclusion_proof",
    "read_key",
]

_HEX_DIGEST = re.compile("[0-9a-f]{64}")
_SALT = re.compile("[A-Za-z0-9_-]+")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_TEXT_FIELDS = ("actor", "action", "resource_type", "resource_id")
_OPTIONAL_TEXT_FIELDS = ("tenant", "session_id")


@dataclass(frozen=True)
class InclusionInput:
    """An inclusion proof as given: ``index``, ``tree_size`` and ``leaf_hash`` are
    ``None`` when only the audit path was (a provenance entry's ``proof`` member)."""

    hashes: tuple[bytes, ...]
    index: int | None = None
    tree_size: int | None = None
    leaf_hash: bytes | None = None


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for key, value in pairs:
        if key in made:
            raise ValueError(f"the member {key!r} appears twice")
        made[key] = value
    return made


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(value: Any, what: str) -> Any:
    """``value`` itself, or the JSON it is the text (or UTF-8 bytes) of: I-JSON only,
    no repeated member names, no NaN or infinities."""
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedInput(f"{what} is not UTF-8 (byte {exc.start})") from None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(
            value, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except ValueError as exc:
        raise MalformedInput(f"{what} is not JSON: {exc}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value: Any, what: str) -> int:
    if not _is_int(value) or value < 0:
        raise MalformedInput(f"{what} is a whole number from 0, not {value!r}")
    result: int = value
    return result


def read_hash(value: Any, what: str) -> bytes:
    """A 32-byte hash from its canonical standard base64."""
    if not isinstance(value, str):
        raise MalformedInput(f"{what} is base64 text, not {type(value).__name__}")
    try:
        digest = ledger_leaf.decode_hash(value)
    except ValueError as exc:
        raise MalformedInput(f"{what}: {exc}") from None
    if base64.b64encode(digest).decode("ascii") != value:
        raise MalformedInput(f"{what} is not canonical base64: {value!r}")
    return digest


def _hashes(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise MalformedInput(f"{what} is a list of base64 hashes, not {type(value).__name__}")
    return tuple(read_hash(item, f"{what}[{n}]") for n, item in enumerate(value))


def _check_entry_fields(entry: Mapping[str, Any]) -> None:
    missing = [name for name in (*ledger_leaf.LEAF_FIELDS, "leaf_hash") if name not in entry]
    if missing:
        raise MalformedInput(f"the entry has no {', '.join(missing)}")
    _count(entry["index"], "the entry's index")
    stamp = entry["timestamp"]
    if not isinstance(stamp, str) or not _RFC3339.fullmatch(stamp):
        raise MalformedInput(f"the entry's timestamp is RFC 3339 text, not {stamp!r}")
    for name in _TEXT_FIELDS:
        if not isinstance(entry[name], str):
            raise MalformedInput(f"the entry's {name} is text, not {entry[name]!r}")
    for name in _OPTIONAL_TEXT_FIELDS:
        if entry[name] is not None and not isinstance(entry[name], str):
            raise MalformedInput(f"the entry's {name} is text or null, not {entry[name]!r}")
    digest = entry["payload_sha256"]
    if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest):
        raise MalformedInput(f"the entry's payload_sha256 is 64 lower-case hex digits: {digest!r}")
    if not isinstance(entry["erasable"], bool):
        raise MalformedInput(f"the entry's erasable is true or false, not {entry['erasable']!r}")
    read_hash(entry["leaf_hash"], "the entry's leaf_hash")
    if "payload" in entry and not (entry["payload"] is None or isinstance(entry["payload"], dict)):
        raise MalformedInput("the entry's payload is an object or null")
    salt = entry.get("payload_salt")
    if salt is not None and not (isinstance(salt, str) and _SALT.fullmatch(salt)):
        raise MalformedInput(f"the entry's payload_salt is unpadded base64url, not {salt!r}")


def read_entry(value: Any) -> dict[str, Any]:
    """An entry document (a dict, or its JSON text), its fields checked."""
    entry = load_json(value, "the entry")
    if not isinstance(entry, dict):
        raise MalformedInput(f"the entry is a JSON object, not {type(entry).__name__}")
    _check_entry_fields(entry)
    return entry


def read_inclusion_proof(value: Any) -> InclusionInput:
    """``{"index", "tree_size", "leaf_hash", "hashes"}`` (``/audit/proof/inclusion``) or
    a bare list of hashes (a provenance entry's ``proof``), as a value or JSON text."""
    proof = load_json(value, "the inclusion proof")
    if isinstance(proof, list):
        return InclusionInput(_hashes(proof, "the inclusion proof"))
    if not isinstance(proof, dict):
        raise MalformedInput(
            "the inclusion proof is {index, tree_size, leaf_hash, hashes} or a list of hashes"
        )
    missing = [k for k in ("index", "tree_size", "leaf_hash", "hashes") if k not in proof]
    if missing:
        raise MalformedInput(f"the inclusion proof has no {', '.join(missing)}")
    return InclusionInput(
        _hashes(proof["hashes"], "the inclusion proof's hashes"),
        _count(proof["index"], "the inclusion proof's index"),
        _count(proof["tree_size"], "the inclusion proof's tree_size"),
        read_hash(proof["leaf_hash"], "the inclusion proof's leaf_hash"),
    )


def read_consistency_proof(value: Any) -> tuple[int | None, int | None, tuple[bytes, ...]]:
    """``{"first", "second", "hashes"}`` (``/audit/proof/consistency``) or a bare list of
    hashes, as a value or JSON text: the two sizes (``None`` if not given), the hashes."""
    proof = load_json(value, "the consistency proof")
    if isinstance(proof, list):
        return None, None, _hashes(proof, "the consistency proof")
    if not isinstance(proof, dict):
        raise MalformedInput("the consistency proof is {first, second, hashes} or a list")
    missing = [k for k in ("first", "second", "hashes") if k not in proof]
    if missing:
        raise MalformedInput(f"the consistency proof has no {', '.join(missing)}")
    return (
        _count(proof["first"], "the consistency proof's first"),
        _count(proof["second"], "the consistency proof's second"),
        _hashes(proof["hashes"], "the consistency proof's hashes"),
    )


def read_key(value: str | notes.Verifier) -> notes.Verifier:
    """The note verifier key ``<name>+<key id>+<base64 key>`` (surrounding white space
    is dropped), or a :class:`~limit_graph.core.notes.Verifier` as it is."""
    if isinstance(value, notes.Verifier):
        return value
    if not isinstance(value, str):
        raise MalformedInput(f"the public key is verifier-key text, not {type(value).__name__}")
    try:
        return notes.Verifier.from_verifier_key(value.strip())
    except notes.NoteError as exc:
        raise MalformedInput(f"the public key: {exc}") from None


def as_text(value: str | bytes, what: str) -> str:
    """A note as text: ``str`` as it is, ``bytes`` decoded as UTF-8 (nothing else)."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedInput(f"{what} is not UTF-8 (byte {exc.start})") from None
    if not isinstance(value, str):
        raise MalformedInput(f"{what} is the signed note's text, not {type(value).__name__}")
    return value
