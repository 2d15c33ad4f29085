"""Sensitive records at rest: which fields are sealed, how they are stored, and what the
ledger commits to instead.

A sensitive execution (``Execution.sensitive``) has three fields sealed on their own:
``inputs``, ``result`` and ``error.message`` (an error message may quote the inputs;
the error's ``type`` and ``retryable`` stay readable).  Each has a random salt
(``Execution.salts``), kept inside its ciphertext at rest, so that

- the record **as stored** (:func:`seal_execution`) holds ``lgenc:v1:`` texts in those
  fields, bound to (tenant, ``limit_executions``, field, execution id), and no salts;
- its **ledger entries** (:func:`ledger_document`) hold ``sealed:sha256:`` commitments,
  the SHA-256 of the salt and the value's canonical JSON, so verifying the ledger (or an
  archive bundle) never needs a key, and the plaintext never reaches it;
- the record **as read** (:func:`open_execution`) is the plaintext with its salts, from
  which anyone allowed to read it recomputes the commitments.

An archive bundle holding a sensitive execution is stored sealed whole
(:func:`seal_archive`); the bundle itself, as exported, carries the plaintext and the
salts, which is what lets it verify offline.  Token-signing keys are sealed by the token
service in the same form (:func:`signing_key_place`).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from limit_graph.core.errors import SealError
from limit_graph.core.models import Execution
from limit_graph.core.sealing import (
    TOKEN_PREFIX,
    Aad,
    SecretKey,
    commitment,
    is_sealed,
    new_salt,
    open_value,
    seal_value,
    token_key_id,
)

__all__ = [
    "ARCHIVES_TABLE",
    "EXECUTIONS_TABLE",
    "SEALED_FIELDS",
    "SIGNING_KEYS_TABLE",
    "KeyLookup",
    "Resealer",
    "SealedRecord",
    "archive_is_sensitive",
    "archive_place",
    "execution_key_ids",
    "ledger_document",
    "open_archive",
    "open_execution",
    "reseal_archive",
    "reseal_execution",
    "seal_archive",
    "seal_execution",
    "sealed_pattern",
    "signing_key_place",
    "with_salts",
]

EXECUTIONS_TABLE = "limit_executions"
ARCHIVES_TABLE = "limit_archives"
SIGNING_KEYS_TABLE = "limit_signing_keys"
SEALED_FIELDS = ("inputs", "result", "error.message")
"""The fields of a sensitive execution sealed at rest (dotted: a field of ``error``)."""

KeyLookup = Callable[[str], SecretKey | None]
"""Finds a data key by id (``None``: not held)."""
Resealer = Callable[[str, Aad], str]
"""Opens a sealed text for its place and seals the same bytes under the active key."""


@dataclass(frozen=True)
class SealedRecord:
    """A stored document read where no key can be fetched (the group-commit thread):
    its reader opens it."""

    document: dict[str, Any]


def _get(doc: Mapping[str, Any], name: str) -> Any:
    head, _, rest = name.partition(".")
    value = doc.get(head)
    if not rest:
        return value
    return value.get(rest) if isinstance(value, Mapping) else None


def _set(doc: dict[str, Any], name: str, value: Any) -> None:
    head, _, rest = name.partition(".")
    if rest:
        doc[head] = {**doc[head], rest: value}
    else:
        doc[head] = value


def _present(doc: Mapping[str, Any], name: str) -> bool:
    """Whether the field has a value to seal (``inputs`` always; the others once set)."""
    return name == "inputs" or _get(doc, name) is not None


def execution_place(tenant: str, execution_id: uuid.UUID | str, name: str) -> Aad:
    return Aad(tenant, EXECUTIONS_TABLE, name, str(execution_id))


def archive_place(tenant: str, session_id: uuid.UUID | str) -> Aad:
    return Aad(tenant, ARCHIVES_TABLE, "document", str(session_id))


def signing_key_place(kid: str) -> Aad:
    return Aad(None, SIGNING_KEYS_TABLE, "private_key", kid)


def with_salts(execution: Execution, like: Execution | None = None) -> Execution:
    """A sensitive ``execution`` with a salt for each field it has to seal: its own
    where it has one, else ``like``'s (the same execution written earlier), else new."""
    if not execution.sensitive:
        return execution
    doc = execution.model_dump(mode="json")
    salts = dict(execution.salts)
    for name in SEALED_FIELDS:
        if _present(doc, name) and name not in salts:
            salts[name] = (like.salts.get(name) if like is not None else None) or new_salt()
    if salts == execution.salts:
        return execution
    return execution.model_copy(update={"salts": salts})


def _salt(execution: Execution, name: str) -> str:
    salt = execution.salts.get(name)
    if salt is None:
        raise SealError(f"sensitive execution {execution.id} has no salt for {name}")
    return salt


def ledger_document(execution: Execution) -> dict[str, Any]:
    """The document its ledger entry holds: a sensitive execution's sealed fields as
    commitments, without the salts; any other execution's document as it is."""
    doc = execution.document()
    if not execution.sensitive:
        return doc
    doc.pop("salts", None)
    for name in SEALED_FIELDS:
        if _present(doc, name):
            _set(doc, name, commitment(_get(doc, name), _salt(execution, name)))
    return doc


def seal_execution(execution: Execution, *, tenant: str, key: SecretKey) -> dict[str, Any]:
    """The document stored for a sensitive ``execution`` (its salts set): each sealed
    field under ``key``, bound to its place; the salts only inside the ciphertexts."""
    doc = execution.document()
    doc.pop("salts", None)
    for name in SEALED_FIELDS:
        if _present(doc, name):
            place = execution_place(tenant, execution.id, name)
            _set(doc, name, seal_value(key, _get(doc, name), place, _salt(execution, name)))
    return doc


def open_execution(doc: Mapping[str, Any], *, tenant: str, key_for: KeyLookup) -> Execution:
    """The execution a stored document holds, its sealed fields opened."""
    if not doc.get("sensitive"):
        return Execution.model_validate(doc)
    opened = dict(doc)
    salts: dict[str, str] = {}
    for name in SEALED_FIELDS:
        if not _present(opened, name):
            continue
        token = _get(opened, name)
        place = execution_place(tenant, str(doc.get("id")), name)
        if not is_sealed(token):
            raise SealError(f"{place} is stored in the clear, though the record is sensitive")
        value, salts[name] = open_value(token, place, key_for)
        _set(opened, name, value)
    opened["salts"] = salts
    return Execution.model_validate(opened)


def execution_key_ids(doc: Mapping[str, Any]) -> set[str]:
    """The data keys a stored execution's fields are sealed under."""
    if not doc.get("sensitive"):
        return set()
    return {token_key_id(v) for name in SEALED_FIELDS if is_sealed(v := _get(doc, name))}


def reseal_execution(
    doc: Mapping[str, Any], *, tenant: str, kid: str, reseal: Resealer
) -> dict[str, Any] | None:
    """The stored document with each field sealed under ``kid`` sealed again by
    ``reseal``; ``None`` when none is under ``kid``."""
    changed = dict(doc)
    found = False
    for name in SEALED_FIELDS:
        token = _get(doc, name)
        if is_sealed(token) and token_key_id(token) == kid:
            _set(changed, name, reseal(token, execution_place(tenant, str(doc["id"]), name)))
            found = True
    return changed if found else None


def archive_is_sensitive(bundle: Mapping[str, Any]) -> bool:
    """Whether an archive bundle holds a sensitive execution (and is stored sealed)."""
    executions = bundle.get("executions")
    return isinstance(executions, list) and any(
        isinstance(e, Mapping) and e.get("sensitive") for e in executions
    )


def seal_archive(
    bundle: Mapping[str, Any], *, tenant: str, session_id: uuid.UUID, key: SecretKey
) -> dict[str, Any]:
    """The stored form of a bundle with sensitive executions: all of it, sealed."""
    return {"sealed": seal_value(key, bundle, archive_place(tenant, session_id), new_salt())}


def open_archive(
    doc: Mapping[str, Any], *, tenant: str, session_id: uuid.UUID, key_for: KeyLookup
) -> dict[str, Any]:
    """The bundle a stored archive document holds (sealed or not)."""
    token = doc.get("sealed")
    if set(doc) != {"sealed"} or not is_sealed(token):
        return copy.deepcopy(dict(doc))
    bundle = open_value(token, archive_place(tenant, session_id), key_for).value
    if not isinstance(bundle, dict):
        raise SealError(f"the archive of session {session_id} opened to something else")
    return bundle


def reseal_archive(
    doc: Mapping[str, Any], *, tenant: str, session_id: uuid.UUID, kid: str, reseal: Resealer
) -> dict[str, Any] | None:
    """A sealed archive document sealed again, when it is under ``kid``."""
    token = doc.get("sealed")
    if not is_sealed(token) or token_key_id(token) != kid:
        return None
    return {"sealed": reseal(token, archive_place(tenant, session_id))}


def sealed_pattern(kid: str) -> str:
    """A SQL ``LIKE`` pattern matching a stored document's text holding a field sealed
    under ``kid`` (a ``_`` in an id matches any character: a wider match, which the
    caller narrows by reading the key id of each field it finds)."""
    return f"%{TOKEN_PREFIX}{kid}:%"
