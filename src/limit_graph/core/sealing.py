"""Envelope encryption of fields at rest: AES-256-GCM under data keys that a
key-encryption key (KEK) wraps.

Each field is sealed on its own, with a fresh 96-bit nonce, and bound to where it lives:
its associated data (:class:`Aad`) is the canonical JSON of the tenant, table, column
and record id, so a ciphertext copied to another record, column or tenant does not open
(GCM's tag fails) and is refused with :class:`SealError`, never read as garbage.  A
sealed field is a self-describing text, ``lgenc:v1:<key id>:<base64url(nonce | ct)>``:
the key id names the data key (or, for values sealed straight under it, the KEK), so a
reader knows which key to fetch and a rotation knows what is left under an old one.

Data keys are wrapped (sealed) by the KEK in the same form, bound to their own id.  A
KEK has an id too, derived from its bytes (it reveals nothing of them), so several may
be configured while a rotation re-wraps: the current one wraps, every one unwraps.

A sealed value carries a random salt, and :func:`commitment` is the SHA-256 of the salt
and the value's canonical JSON: what the ledger keeps instead of the value, so that
verifying the ledger never needs a key, while a holder of the key (who can read the
salt) can still tie the value to its entry.  Every primitive comes from
``cryptography`` and ``hashlib``.

>>> kek = KeyEncryptionKeys(SecretKey("kek-test", bytes(32)))
>>> data_key = new_data_key()
>>> wrapped = kek.wrap(data_key)
>>> kek.unwrap(data_key.kid, wrapped) == data_key
True
>>> where = Aad("acme", "limit_executions", "inputs", "42")
>>> token = seal_value(data_key, {"ssn": "078-05-1120"}, where, new_salt())
>>> token.startswith(f"lgenc:v1:{data_key.kid}:")
True
>>> open_value(token, where, {data_key.kid: data_key}.get).value
{'ssn': '078-05-1120'}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from limit_graph.core.canonical import canonical_json
from limit_graph.core.errors import SealError

__all__ = [
    "COMMITMENT_PREFIX",
    "DATA_KEYS_TABLE",
    "TOKEN_PREFIX",
    "Aad",
    "KeyEncryptionKeys",
    "OpenedValue",
    "SecretKey",
    "commitment",
    "is_sealed",
    "kek_id",
    "new_data_key",
    "new_salt",
    "open_token",
    "open_value",
    "seal_value",
    "token_key_id",
]

TOKEN_PREFIX = "lgenc:v1:"
"""How every sealed text begins (format version 1)."""
COMMITMENT_PREFIX = "sealed:sha256:"
"""How a sealed field's commitment reads in the ledger."""
DATA_KEYS_TABLE = "limit_data_keys"
"""The table named in a wrapped data key's associated data."""

_NONCE_BYTES = 12
_KEY_BYTES = 32
_SALT_BYTES = 16
_TAG_BYTES = 16
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Aad:
    """Where a sealed field lives: its associated data.  ``tenant`` is ``None`` for the
    platform's own records (signing keys, data keys)."""

    tenant: str | None
    table: str
    column: str
    record_id: str

    def encode(self) -> bytes:
        """Canonical bytes: equal places give equal bytes whichever process seals."""
        parts = ["lgenc/v1", self.tenant, self.table, self.column, self.record_id]
        return canonical_json(parts).encode("utf-8")

    def __str__(self) -> str:
        tenant = f" of tenant {self.tenant}" if self.tenant is not None else ""
        return f"{self.table}.{self.column} of {self.record_id}{tenant}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


@dataclass(frozen=True)
class SecretKey:
    """An AES-256 key and its id: a data key, or a KEK."""

    kid: str
    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.kid):
            raise ValueError(f"key id {self.kid!r} must be 1 to 64 of A-Z a-z 0-9 _ -")
        if len(self.material) != _KEY_BYTES:
            raise ValueError(f"key {self.kid} must be {_KEY_BYTES} bytes")

    def seal(self, plaintext: bytes, aad: Aad) -> str:
        """``plaintext`` sealed for the place ``aad`` names, as a self-describing text."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.material).encrypt(nonce, plaintext, aad.encode())
        return f"{TOKEN_PREFIX}{self.kid}:{_b64(nonce + sealed)}"

    def open(self, token: str, aad: Aad) -> bytes:
        """What :meth:`seal` sealed for ``aad``; :class:`SealError` if it was sealed under
        another key or for another place, or was altered."""
        kid, raw = _parse(token, aad)
        if kid != self.kid:
            raise SealError(f"{aad} is sealed under key {kid}, not {self.kid}")
        try:
            return AESGCM(self.material).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad.encode()
            )
        except InvalidTag:
            raise SealError(
                f"{aad} does not decrypt under key {kid}: the ciphertext was altered, or "
                "was moved there from another record, column or tenant"
            ) from None


def _parse(token: str, aad: Aad) -> tuple[str, bytes]:
    if not is_sealed(token):
        raise SealError(f"{aad} is not a sealed value (it must begin {TOKEN_PREFIX})")
    kid, _, body = token[len(TOKEN_PREFIX) :].partition(":")
    if not _KEY_ID.fullmatch(kid) or not body:
        raise SealError(f"{aad} is not of the form {TOKEN_PREFIX}<key id>:<data>")
    try:
        raw = _unb64(body)
    except (binascii.Error, ValueError):
        raise SealError(f"{aad}: its sealed data is not base64url") from None
    if len(raw) < _NONCE_BYTES + _TAG_BYTES:
        raise SealError(f"{aad}: its sealed data is truncated")
    return kid, raw


def is_sealed(value: Any) -> TypeGuard[str]:
    """Whether ``value`` is a sealed text (of any key).

    >>> is_sealed("lgenc:v1:dk-1:AAAA"), is_sealed({"x": 1})
    (True, False)
    """
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def token_key_id(token: str) -> str:
    """The id of the key that sealed ``token``.

    >>> token_key_id("lgenc:v1:dk-0123:AAAA")
    'dk-0123'
    """
    if not is_sealed(token):
        raise SealError(f"not a sealed value (it must begin {TOKEN_PREFIX})")
    return token[len(TOKEN_PREFIX) :].partition(":")[0]


def open_token(token: str, aad: Aad, key_for: Callable[[str], SecretKey | None]) -> bytes:
    """Open ``token`` with the key its id names, found by ``key_for``."""
    kid = token_key_id(token)
    key = key_for(kid)
    if key is None:
        raise SealError(f"{aad} is sealed under key {kid}, which this platform does not hold")
    return key.open(token, aad)


def new_data_key() -> SecretKey:
    """A random AES-256 data key with a random id ``dk-<16 hex>``."""
    return SecretKey(f"dk-{secrets.token_hex(8)}", os.urandom(_KEY_BYTES))


def kek_id(material: bytes) -> str:
    """The id of a KEK: a digest of its bytes, which names it without revealing it.

    >>> kek_id(bytes(32))
    'kek-e365de459d4a46b7'
    """
    return "kek-" + hashlib.sha256(b"limit-graph/kek-id\0" + material).hexdigest()[:16]


class KeyEncryptionKeys:
    """The current KEK, which wraps new data keys, and earlier ones, which still unwrap
    data keys wrapped before a KEK rotation.  Loaded by
    :func:`~limit_graph.core.kek.load_keks` (settings) or
    :func:`~limit_graph.core.kek.keks_from_environment`."""

    def __init__(self, current: SecretKey, previous: tuple[SecretKey, ...] = ()) -> None:
        self.current = current
        self._all: dict[str, SecretKey] = {k.kid: k for k in (*previous, current)}

    def __repr__(self) -> str:
        return f"KeyEncryptionKeys(current={self.current.kid!r}, ids={sorted(self._all)!r})"

    @property
    def ids(self) -> list[str]:
        return sorted(self._all)

    def get(self, kid: str) -> SecretKey | None:
        return self._all.get(kid)

    def wrap(self, data_key: SecretKey) -> str:
        """``data_key`` sealed under the current KEK, bound to its own id."""
        return self.current.seal(data_key.material, _data_key_place(data_key.kid))

    def unwrap(self, kid: str, wrapped: str) -> SecretKey:
        """The data key ``kid`` that :meth:`wrap` wrapped, under whichever KEK did."""
        place = _data_key_place(kid)
        wrapping = token_key_id(wrapped)
        if wrapping not in self._all:
            raise SealError(
                f"data key {kid} is wrapped by key-encryption key {wrapping}, which is not "
                f"configured (configured: {', '.join(self.ids)}): give it in "
                "LIMIT_DATA_KEK_PREVIOUS until a rotation re-wraps the data keys"
            )
        return SecretKey(kid, open_token(wrapped, place, self._all.get))


def _data_key_place(kid: str) -> Aad:
    return Aad(None, DATA_KEYS_TABLE, "material", kid)


# --- sealed values with their commitments ---------------------------------------------


class OpenedValue(NamedTuple):
    """A sealed value, opened: the value and the salt its commitment was made with."""

    value: Any
    salt: str


def new_salt() -> str:
    """A random 128-bit salt for one sealed field, base64url."""
    return _b64(os.urandom(_SALT_BYTES))


def commitment(value: Any, salt: str) -> str:
    """The salted SHA-256 of ``value``'s canonical JSON, as the ledger keeps it.

    >>> commitment({"a": 1}, "AAAAAAAAAAAAAAAAAAAAAA")[:22]
    'sealed:sha256:c5961791'
    """
    try:
        raw_salt = _unb64(salt)
    except (binascii.Error, ValueError):
        raise SealError("a sealed field's salt is not base64url") from None
    digest = hashlib.sha256(raw_salt + canonical_json(value).encode("utf-8")).hexdigest()
    return COMMITMENT_PREFIX + digest


def seal_value(key: SecretKey, value: Any, aad: Aad, salt: str) -> str:
    """``value`` (JSON) sealed with its salt under ``key`` for the place ``aad`` names."""
    return key.seal(canonical_json({"salt": salt, "value": value}).encode("utf-8"), aad)


def open_value(token: str, aad: Aad, key_for: Callable[[str], SecretKey | None]) -> OpenedValue:
    """What :func:`seal_value` sealed, with its salt."""
    raw = open_token(token, aad, key_for)
    try:
        held = json.loads(raw)
    except ValueError:
        raise SealError(f"{aad} opened to something that is not a sealed value") from None
    if not isinstance(held, Mapping) or set(held) != {"salt", "value"}:
        raise SealError(f"{aad} opened to something that is not a sealed value")
    if not isinstance(held["salt"], str):
        raise SealError(f"{aad}: its salt is not text")
    return OpenedValue(held["value"], held["salt"])
