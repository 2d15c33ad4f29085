"""What the platform keeps of its secrets, read back from its storage.

The tests that forge tokens need the real signing keys (to sign a token that is
expired, or has the wrong audience, and nothing else wrong); the test that scans for
leaks needs to know what each secret looks like at rest (the HMAC digests of keys and
client secrets, the sealed private keys) as well as in the clear.  Both read them
from the store the way the platform does, with its key ring.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization

from limit_graph.core.sealing import is_sealed
from limit_graph.core.settings import Settings
from limit_graph.governance.secrets import ServerSecret
from limit_graph.governance.tokens import SIGNING_KEY_PURPOSE
from limit_graph.storage.base import Storage
from limit_graph.storage.factory import open_storage
from limit_graph.storage.sealed import signing_key_place

__all__ = [
    "SigningKey",
    "Stored",
    "data_key_forms",
    "read_stored",
    "read_stored_of",
    "signing_keys",
]


@dataclass(frozen=True)
class SigningKey:
    """A token-signing key as stored, decrypted: its private half signs forged tokens."""

    kid: str
    algorithm: str
    encrypted: str = field(repr=False)
    pem: bytes = field(repr=False)
    private: Any = field(repr=False)
    public_jwk: dict[str, Any]

    def private_forms(self) -> list[str]:
        """Every text form of the private key a leak could take: the PEM, its base64
        body, the encrypted form, and the JWK private members (``d``, RSA's ``p``...)."""
        body = "".join(self.pem.decode().strip().splitlines()[1:-1])
        forms = [self.pem.decode().strip(), body, self.encrypted]
        numbers = getattr(self.private, "private_numbers", None)
        if numbers is not None:  # RSA
            made = numbers()
            forms += [_b64_int(value) for value in (made.d, made.p, made.q)]
        else:  # Ed25519: d is the raw private key
            raw = self.private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            forms.append(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
        return forms


def _b64_int(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def signing_keys(storage: Storage, secret: ServerSecret) -> list[SigningKey]:
    """Every signing key of ``storage``, opened with its key ring (or, for one made
    under the server secret, with ``secret``), newest first."""
    keys = []
    for record in await storage.identity.list_signing_keys():
        if is_sealed(record.private_key):
            place = signing_key_place(record.kid)
            pem = await storage.keyring.open_bytes(record.private_key, place)
        else:
            pem = secret.decrypt(record.private_key, purpose=SIGNING_KEY_PURPOSE)
        keys.append(
            SigningKey(
                kid=record.kid,
                algorithm=record.algorithm,
                encrypted=record.private_key,
                pem=pem,
                private=serialization.load_pem_private_key(pem, password=None),
                public_jwk=dict(record.public_jwk),
            )
        )
    return keys


@dataclass(frozen=True)
class Stored:
    """The secrets at rest: signing keys, the digests of API keys and client secrets, and
    the data keys of encryption at rest with the key-encryption key wrapping them."""

    signing: list[SigningKey]
    key_digests: list[str] = field(repr=False)
    client_secret_digests: list[str] = field(repr=False)
    data_keys: dict[str, list[str]] = field(default_factory=dict, repr=False)
    """Each data key's (and the KEK's) id → the text forms its bytes could leak in."""


def _key_forms(material: bytes) -> list[str]:
    return [
        base64.b64encode(material).decode(),
        base64.urlsafe_b64encode(material).rstrip(b"=").decode(),
        material.hex(),
    ]


def data_key_forms(storage: Storage) -> dict[str, list[str]]:
    """The forms of every data key the store's ring holds, and of its current KEK."""
    ring = storage.keyring
    forms: dict[str, list[str]] = {}
    if ring.keks is not None:
        forms[ring.keks.current.kid] = _key_forms(ring.keks.current.material)
        for record in ring.records():
            key = ring.key(record.kid)
            if key is not None:
                forms[record.kid] = _key_forms(key.material)
    return forms


async def read_stored(storage: Storage, secret: ServerSecret) -> Stored:
    """The signing keys, and the digests of live principals' client secrets and of every
    API key (revoked ones included)."""
    identity = storage.identity
    digests: list[str] = []
    client_digests: list[str] = []
    cursor: str | None = None
    while True:
        page = await identity.list_principals(None, limit=500, cursor=cursor)
        client_digests += [p.client_secret_digest for p in page.items if p.client_secret_digest]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    cursor = None
    while True:
        keys = await identity.list_api_keys(None, limit=500, cursor=cursor)
        digests += [key.digest for key in keys.items]
        if keys.next_cursor is None:
            break
        cursor = keys.next_cursor
    return Stored(
        await signing_keys(storage, secret), digests, client_digests, data_key_forms(storage)
    )


async def read_stored_of(settings: Settings) -> Stored:
    """:func:`read_stored` of the platform ``settings`` name, through a store of its own
    (for a platform served in another thread)."""
    storage = open_storage(settings)
    await storage.start()
    try:
        return await read_stored(storage, ServerSecret.from_settings(settings))
    finally:
        await storage.close()
