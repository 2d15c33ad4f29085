"""The platform's own JWTs: signing keys that rotate, issue, verify, JWKS, and the
OAuth2 client credentials (RFC 6749 §4.4) that service accounts trade for a token.

Each signing key has one algorithm (EdDSA or RS256, ``[auth] signing_algorithm``), kept
with the key and the only one a token under its ``kid`` may claim: the header's ``alg``
picks nothing.  Private keys are stored sealed under the store's data keys (AES-256-GCM
bound to ``limit_signing_keys``/``private_key``/kid, :mod:`limit_graph.storage.sealed`),
so data-key rotation re-encrypts them; where the store has no key-encryption key (a
memory store) they are encrypted under the server secret, and keys made that way before
are still read so, until a signing-key rotation replaces them.  The public ones are
served as a JWK set.  A rotated key stops signing at once and is served until
every token it signed has expired (``token_ttl_s`` + ``leeway_s``).  Several API
processes share the keys through the identity store: a token under a ``kid`` this one
has not seen makes it reload the keys, once, when the store's identity epoch moved.

>>> # tokens = TokenService(storage.identity, ServerSecret.from_settings(s), s.auth)
>>> # await tokens.start()
>>> # issued = await tokens.issue(await tokens.authenticate_client(client_id, secret))
>>> # (await tokens.verify(issued.access_token)).tenant
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from limit_graph.core.auth_settings import AuthSettings
from limit_graph.core.errors import AuthenticationRequired, ConfigError
from limit_graph.core.identity import PrincipalKind, PrincipalRecord, SigningKeyRecord
from limit_graph.core.models import utcnow
from limit_graph.core.sealing import SecretKey, is_sealed
from limit_graph.governance.jwt_claims import (
    ClaimNames,
    TokenClaims,
    check_times,
    decode_token,
    peek_issuer,
    read_header,
    token_claims,
)
from limit_graph.governance.secrets import ServerSecret
from limit_graph.storage.identity import IdentityStore
from limit_graph.storage.keyring import KeyRing, no_kek
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.sealed import signing_key_place

__all__ = [
    "CLIENT_SECRET_PURPOSE",
    "SIGNING_KEY_PURPOSE",
    "ClientCredentials",
    "IssuedToken",
    "TokenClaims",
    "TokenService",
    "new_client_credentials",
    "peek_issuer",
]

SIGNING_KEY_PURPOSE = "signing-key"
CLIENT_SECRET_PURPOSE = "client-secret"
_REQUIRED = ("exp", "iat", "nbf", "iss", "aud", "sub", "jti")
_PUBLIC_MEMBERS = frozenset({"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"})
_RSA_BITS = 3072
_INVALID_CLIENT = "invalid client credentials"


@dataclass(frozen=True)
class IssuedToken:
    """An OAuth2 access token response (RFC 6749 §5.1), and what the ledger may name."""

    access_token: str = field(repr=False)
    expires_in: int
    jti: str
    expires_at: datetime
    token_type: str = "Bearer"


@dataclass(frozen=True)
class ClientCredentials:
    """A new service account's client id and secret (shown once) and the secret's
    digest (what the principal record keeps)."""

    client_id: str
    client_secret: str = field(repr=False)
    client_secret_digest: str = field(repr=False)


def new_client_credentials(secret: ServerSecret) -> ClientCredentials:
    """A client id ``lgc_<random>`` and a 256-bit random secret, with its digest.

    >>> made = new_client_credentials(ServerSecret("a server secret of some length"))
    >>> made.client_id.startswith("lgc_"), len(made.client_secret)
    (True, 43)
    """
    client_secret = secrets.token_urlsafe(32)
    return ClientCredentials(
        client_id="lgc_" + secrets.token_urlsafe(12),
        client_secret=client_secret,
        client_secret_digest=secret.digest(client_secret, purpose=CLIENT_SECRET_PURPOSE),
    )


@dataclass(frozen=True)
class _Key:
    record: SigningKeyRecord
    public: Any

    def served_at(self, now: datetime) -> bool:
        return self.record.expires_at is None or self.record.expires_at > now


def _public_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in jwk.items() if name in _PUBLIC_MEMBERS}


def _make_key(
    algorithm: str, now: datetime, secret: ServerSecret, data_key: SecretKey | None
) -> SigningKeyRecord:
    """A new signing key (CPU work: an RSA key takes a moment, so run it in a thread),
    its private half sealed under ``data_key``, or without one under ``secret``."""
    private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    kid = f"{now:%Y%m%d}-{secrets.token_hex(8)}"
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sealed = (
        data_key.seal(pem, signing_key_place(kid))
        if data_key is not None
        else secret.encrypt(pem, purpose=SIGNING_KEY_PURPOSE)
    )
    return SigningKeyRecord(
        kid=kid,
        algorithm=algorithm,
        private_key=sealed,
        public_jwk={**_public_jwk(jwk), "kid": kid, "alg": algorithm, "use": "sig"},
        created_at=now,
    )


class TokenService:
    """Issues and verifies the platform's JWTs with keys kept in the identity store.

    ``clock`` gives the time of ``iat``/``exp`` and of every check, so tests move it.
    Call :meth:`start` once before anything else.
    """

    def __init__(
        self,
        identity: IdentityStore,
        secret: ServerSecret,
        settings: AuthSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        keyring: KeyRing | None = None,
    ) -> None:
        self._identity = identity
        self._secret = secret
        self._keyring = keyring
        self._settings = settings
        self._clock = clock
        self._names = ClaimNames()
        self._keys: dict[str, _Key] = {}
        self._signing: tuple[SigningKeyRecord, Any] | None = None
        self._epoch: int | None = None
        self._lock = asyncio.Lock()
        self._unknown_client = secret.digest(
            secrets.token_urlsafe(32), purpose=CLIENT_SECRET_PURPOSE
        )
        """Compared with when there is no client, for the same work as a wrong secret."""

    async def start(self) -> None:
        """Load the signing keys; make the first (or, when ``signing_algorithm`` changed,
        a new one of that algorithm) with a ledger entry."""
        async with self._lock:
            await self._load()
            signing = self._signing
            if signing is not None and signing[0].algorithm == self._settings.signing_algorithm:
                return
            if signing is None:
                await self._add_key("platform", "signing_key.created", {})
            else:
                await self._add_key("platform", "signing_key.rotated", self._retiring())

    async def _load(self) -> None:
        # The epoch is read first: a write that lands between the two reads moves it
        # past what is kept here, so the next check reloads.
        epoch = await self._identity.identity_epoch()
        records = await self._identity.list_signing_keys()
        now = self._clock()
        keys: dict[str, _Key] = {}
        for record in records:
            if record.expires_at is not None and record.expires_at <= now:
                continue
            try:
                jwk = jwt.PyJWK(_public_jwk(record.public_jwk), algorithm=record.algorithm)
            except jwt.PyJWKError:
                raise ConfigError(f"signing key {record.kid}: its public JWK is invalid") from None
            keys[record.kid] = _Key(record, jwk.key)
        active = [key.record for key in keys.values() if key.record.retired_at is None]
        newest = max(active, key=lambda record: record.created_at, default=None)
        if newest is not None and (self._signing is None or self._signing[0].kid != newest.kid):
            self._signing = (newest, await self._private_key(newest, keys[newest.kid].public))
        elif newest is None:
            self._signing = None
        self._keys, self._epoch = keys, epoch

    async def _private_key(self, record: SigningKeyRecord, public: Any) -> Any:
        if is_sealed(record.private_key):
            if self._keyring is None:
                raise no_kek()
            pem = await self._keyring.open_bytes(record.private_key, signing_key_place(record.kid))
        else:
            pem = self._secret.decrypt(record.private_key, purpose=SIGNING_KEY_PURPOSE)
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ConfigError(f"signing key {record.kid}: its private key is unreadable") from None
        raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if private.public_key().public_bytes(*raw) != public.public_bytes(*raw):
            raise ConfigError(f"signing key {record.kid}: its private key does not match its JWK")
        return private

    async def _refresh(self) -> bool:
        """Reload when another process changed the identity records; whether it did."""
        async with self._lock:
            if await self._identity.identity_epoch() == self._epoch:
                return False
            await self._load()
            return True

    def _retiring(self) -> dict[str, tuple[datetime, datetime]]:
        now = self._clock()
        served = timedelta(seconds=self._settings.token_ttl_s + self._settings.leeway_s)
        return {
            kid: (now, now + served)
            for kid, key in self._keys.items()
            if key.record.retired_at is None
        }

    async def _add_key(
        self, actor: str, action: str, retire: dict[str, tuple[datetime, datetime]]
    ) -> SigningKeyRecord:
        algorithm = self._settings.signing_algorithm
        ring = self._keyring
        data_key = await ring.active() if ring is not None and ring.available else None
        record = await asyncio.to_thread(
            _make_key, algorithm, self._clock(), self._secret, data_key
        )
        entry = EntryDraft(
            actor=actor,
            action=action,
            resource_type="signing_key",
            resource_id=record.kid,
            session_id=None,
            payload={"kid": record.kid, "algorithm": algorithm, "retired": sorted(retire)},
        )
        stored = await self._identity.add_signing_key(record, retire=retire, entry=entry)
        await self._load()
        return stored

    async def rotate(self, actor: str) -> SigningKeyRecord:
        """A new key signs from now on; every key signing until now is retired now and
        served until the tokens it signed have expired."""
        async with self._lock:
            await self._load()
            return await self._add_key(actor, "signing_key.rotated", self._retiring())

    async def issue(self, principal: PrincipalRecord) -> IssuedToken:
        """A token for ``principal`` (authenticated by the caller), valid ``token_ttl_s``."""
        if principal.deleted_at is not None:
            raise AuthenticationRequired(f"principal {principal.id} is deleted")
        await self._refresh()
        if self._signing is None:
            raise ConfigError("no signing key: start the token service first")
        record, private = self._signing
        now = self._clock()
        issued_at = int(now.timestamp())
        ttl = self._settings.token_ttl_s
        jti = secrets.token_urlsafe(16)
        claims = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": str(principal.id),
            "tenant": principal.tenant,
            "roles": sorted(role.value for role in principal.roles),
            "groups": sorted(principal.groups),
            "name": principal.name,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + ttl,
            "jti": jti,
        }
        headers = {"kid": record.kid, "typ": "JWT"}
        token = await asyncio.to_thread(
            jwt.encode, claims, private, algorithm=record.algorithm, headers=headers
        )
        expires_at = now.replace(microsecond=0) + timedelta(seconds=ttl)
        return IssuedToken(access_token=token, expires_in=ttl, jti=jti, expires_at=expires_at)

    async def jwks(self) -> dict[str, Any]:
        """The JWK set (RFC 7517) of every key whose tokens may still be presented."""
        await self._refresh()
        now = self._clock()
        keys = sorted(
            (key.record for key in self._keys.values() if key.served_at(now)),
            key=lambda record: record.created_at,
            reverse=True,
        )
        return {"keys": [_public_jwk(record.public_jwk) for record in keys]}

    async def verify(self, token: str) -> TokenClaims:
        """The claims of one of our tokens; :class:`AuthenticationRequired` saying why not."""
        header = read_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationRequired("token has no kid")
        now = self._clock()
        key = self._keys.get(kid)
        if (key is None or not key.served_at(now)) and await self._refresh():
            key = self._keys.get(kid)
        if key is None or not key.served_at(now):
            raise AuthenticationRequired("unknown signing key")
        algorithm = key.record.algorithm
        if header.get("alg") != algorithm:
            raise AuthenticationRequired(f"token algorithm must be {algorithm}")
        payload = decode_token(
            token,
            key.public,
            algorithm,
            issuer=self._settings.issuer,
            audience=self._settings.audience,
            required=_REQUIRED,
        )
        check_times(payload, now, self._settings.leeway_s)
        return token_claims(payload, audience=self._settings.audience, names=self._names)

    async def authenticate_client(self, client_id: str, client_secret: str) -> PrincipalRecord:
        """The service account whose client id and secret these are.

        Every failure is the same error after the same work (one lookup, one digest), so
        that a caller cannot tell an unknown client from a wrong secret.
        """
        plausible = client_id.startswith("lgc_") and len(client_id) <= 128
        found = await self._identity.find_principal_by_client_id(client_id) if plausible else None
        usable = (
            found is not None
            and found.kind is PrincipalKind.SERVICE
            and found.deleted_at is None
            and found.client_secret_digest is not None
        )
        expected = (
            found.client_secret_digest
            if usable and found is not None and found.client_secret_digest is not None
            else self._unknown_client
        )
        matches = self._secret.matches(client_secret, expected, purpose=CLIENT_SECRET_PURPOSE)
        if not (usable and matches) or found is None:
            raise AuthenticationRequired(_INVALID_CLIENT)
        return found
