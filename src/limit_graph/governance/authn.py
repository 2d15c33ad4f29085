"""Authentication: who sent this credential.

A credential is one of

* an API key ``lgk_<id>_<secret>`` of the identity store: found by its public id,
  checked against the HMAC-SHA256 digest of the whole key under the server secret;
* a JWT: the platform's own (``/auth/token``) or, when ``[auth.oidc]`` is set, one of
  the external issuer's, chosen by its ``iss``;
* a key of the settings (the platform admin's and the runners'), held here as digests.

What a key or a principal looked like is cached until the identity epoch moves
(:class:`~limit_graph.governance.watch.IdentityWatch` calls :meth:`Authenticator.forget`),
so a revoked key or a deleted principal is refused on every process within the watch's
period.  A key's last use is written in batches, not on every request.

>>> parse_api_key("lgk_0123456789ab_c2VjcmV0LXNlY3JldC1zZWNyZXQ")
('0123456789ab', 'c2VjcmV0LXNlY3JldC1zZWNyZXQ')
>>> parse_api_key("not-a-key") is None
True
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime

from limit_graph.core.errors import AuthenticationRequired
from limit_graph.core.identity import ROLES, ApiKeyRecord, PrincipalRecord
from limit_graph.core.models import utcnow
from limit_graph.core.stopping import Stopper
from limit_graph.governance.auth import Principal
from limit_graph.governance.jwt_claims import TokenClaims, peek_issuer
from limit_graph.governance.oidc import OidcVerifier
from limit_graph.governance.secrets import ServerSecret
from limit_graph.governance.tokens import TokenService
from limit_graph.storage.identity import IdentityStore

__all__ = [
    "API_KEY_PURPOSE",
    "Authenticator",
    "make_api_key",
    "parse_api_key",
    "principal_of",
]

log = logging.getLogger(__name__)

API_KEY_PURPOSE = "api-key"
KEY_PREFIX = "lgk"
_KEY = re.compile(r"^lgk_([0-9a-f]{12})_([A-Za-z0-9_-]{16,128})$")
_UNKNOWN = "unknown API key"
TOUCH_EVERY_S = 30.0


def make_api_key() -> tuple[str, str]:
    """A new key's public id and the whole key (256 random bits after the id)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def parse_api_key(key: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a key in the store's format, else ``None``."""
    match = _KEY.fullmatch(key)
    return (match.group(1), match.group(2)) if match else None


def principal_of(
    record: PrincipalRecord,
    *,
    via: str,
    scopes: frozenset[str] = frozenset(),
    credential_id: str | None = None,
    roles: frozenset[str] | None = None,
) -> Principal:
    """The caller a principal record signs in as (``roles`` narrows its roles)."""
    held = frozenset(role.value for role in record.roles)
    return Principal(
        name=record.name,
        tenant=record.tenant,
        roles=held if roles is None else held & roles,
        id=record.id,
        kind=record.kind.value,
        groups=frozenset(record.groups),
        platform_admin=record.platform_admin,
        pools=frozenset(record.pools) if record.pools is not None else None,
        scopes=scopes,
        via=via,
        credential_id=credential_id,
    )


class Authenticator:
    """Maps a credential to a :class:`Principal`, or raises :class:`AuthenticationRequired`."""

    def __init__(
        self,
        identity: IdentityStore,
        secret: ServerSecret,
        tokens: TokenService,
        oidc: OidcVerifier | None = None,
        *,
        issuer: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.identity = identity
        self.secret = secret
        self.tokens = tokens
        self.oidc = oidc
        self.issuer = issuer
        self.clock = clock
        self._static: dict[str, Principal] = {}
        self._keys: dict[str, tuple[ApiKeyRecord, Principal | None]] = {}
        self._principals: dict[uuid.UUID, PrincipalRecord | None] = {}
        self._tenants: dict[str, bool] = {}
        self._used: dict[str, datetime] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._stopper = Stopper()

    def add_static(self, key: str, principal: Principal) -> None:
        """Accept ``key`` (a key of the settings) as ``principal``."""
        self._static[self.secret.digest(key, purpose=API_KEY_PURPOSE)] = principal

    def forget(self) -> None:
        """Drop every cached key, principal and tenant (the identity epoch moved)."""
        self._keys.clear()
        self._principals.clear()
        self._tenants.clear()

    async def authenticate(self, credential: str | None) -> Principal:
        if not credential:
            raise AuthenticationRequired(
                "send an API key or a token as 'Authorization: Bearer <credential>' "
                "or an API key as 'X-API-Key: <key>'"
            )
        if credential.count(".") == 2 and not credential.startswith(KEY_PREFIX + "_"):
            return await self._token(credential)
        digest = self.secret.digest(credential, purpose=API_KEY_PURPOSE)
        parsed = parse_api_key(credential)
        if parsed is not None:
            found = await self._api_key(parsed[0], digest)
            if found is not None:
                return found
        static = self._static.get(digest)
        if static is None:
            raise AuthenticationRequired(_UNKNOWN)
        return static

    async def _api_key(self, key_id: str, digest: str) -> Principal | None:
        """The key's principal; ``None`` when the store has no key of that id."""
        cached = self._keys.get(key_id)
        if cached is None:
            record = await self.identity.get_api_key(key_id)
            if record is None:
                return None
            owner = await self._principal(record.principal_id)
            signed_in = None
            if owner is not None:
                scopes = frozenset(record.scopes)
                signed_in = principal_of(owner, via="key", scopes=scopes, credential_id=key_id)
            cached = self._keys[key_id] = (record, signed_in)
        record, principal = cached
        if not hmac.compare_digest(digest.encode("ascii"), record.digest.encode("ascii")):
            raise AuthenticationRequired(_UNKNOWN)
        now = self.clock()
        if record.revoked_at is not None:
            raise AuthenticationRequired(f"API key {key_id} was revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise AuthenticationRequired(f"API key {key_id} expired")
        if principal is None:
            raise AuthenticationRequired(f"the principal of API key {key_id} was deleted")
        self._used[key_id] = now
        return principal

    async def _principal(self, principal_id: uuid.UUID) -> PrincipalRecord | None:
        if principal_id not in self._principals:
            found = await self.identity.get_principal(principal_id)
            self._principals[principal_id] = (
                found if found is not None and found.deleted_at is None else None
            )
        return self._principals[principal_id]

    async def _token(self, token: str) -> Principal:
        issuer = peek_issuer(token)
        if issuer == self.issuer:
            claims = await self.tokens.verify(token)
            return await self._own_token(claims)
        if self.oidc is not None and issuer == self.oidc.issuer:
            return await self._oidc_token(await self.oidc.verify(token))
        raise AuthenticationRequired("the token's issuer is not one this platform trusts")

    async def _own_token(self, claims: TokenClaims) -> Principal:
        try:
            principal_id = uuid.UUID(claims.subject)
        except ValueError:
            raise AuthenticationRequired("the token's subject is not a principal") from None
        record = await self._principal(principal_id)
        if record is None:
            raise AuthenticationRequired("the token's principal was deleted")
        return principal_of(record, via="token", credential_id=claims.jti, roles=claims.roles)

    async def _oidc_token(self, claims: TokenClaims) -> Principal:
        if claims.tenant not in self._tenants:
            found = await self.identity.find_tenant(claims.tenant)
            self._tenants[claims.tenant] = found is not None
        if not self._tenants[claims.tenant]:
            raise AuthenticationRequired(f"the token's tenant {claims.tenant!r} does not exist")
        issuer = claims.issuer
        return Principal(
            name=claims.name,
            tenant=claims.tenant,
            roles=claims.roles & {role.value for role in ROLES},
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer}#{claims.subject}"),
            kind="user",
            groups=claims.groups,
            via="oidc",
            credential_id=claims.jti,
        )

    def start(self) -> None:
        """Write keys' last use every ``TOUCH_EVERY_S`` seconds, in the background."""
        self._stopper = Stopper()
        self._flusher = asyncio.create_task(self._flush_every(TOUCH_EVERY_S))

    async def _flush_every(self, period_s: float) -> None:
        while await self._stopper.wait(period_s):
            try:
                await self.flush()
            except Exception:  # the next round tries again; a lost touch is harmless
                log.warning("could not record API keys' last use", exc_info=True)

    async def flush(self) -> None:
        """Record when each key used since the last flush was last used."""
        used, self._used = self._used, {}
        if used:
            await self.identity.touch_api_keys(used)

    async def close(self) -> None:
        await self._stopper.stop(self._flusher)
        self._flusher = None
        await self.flush()
