"""Access tokens of an external OpenID Connect issuer (``[auth.oidc]``).

The issuer's discovery document (``<issuer>/.well-known/openid-configuration``) must
name the configured issuer exactly; its ``jwks_uri`` gives the keys.  Both are kept for
``jwks_cache_s``.  A token under a ``kid`` not in the set makes the verifier fetch the
set again, at most once every 10 s, so a flood of made-up tokens cannot make it hammer
the issuer; a failed fetch is not retried for 10 s either.  Each key is pinned to one
algorithm (its ``alg``, or the one its ``kty``/``crv`` imply), which must be one of
``algorithms``; the token's header chooses nothing.  Fetches are asynchronous httpx
calls with a timeout: the event loop never waits on the issuer.

>>> # verifier = OidcVerifier(settings.auth.oidc)
>>> # claims = await verifier.verify(token)     # TokenClaims, or AuthenticationRequired
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt

from limit_graph.core.auth_settings import OidcSettings
from limit_graph.core.errors import AuthenticationRequired
from limit_graph.core.models import utcnow
from limit_graph.governance.jwt_claims import (
    ClaimNames,
    TokenClaims,
    check_times,
    decode_token,
    read_header,
    token_claims,
)

__all__ = ["REFETCH_INTERVAL_S", "OidcVerifier", "jwk_algorithm"]

log = logging.getLogger(__name__)

REFETCH_INTERVAL_S = 10.0
"""The least time between two fetches of the issuer's keys (or after a failed one)."""

_REQUIRED = ("exp", "iat", "iss", "aud", "sub")
_IMPLIED: dict[tuple[str, str | None], str] = {
    ("RSA", None): "RS256",
    ("EC", "P-256"): "ES256",
    ("EC", "P-384"): "ES384",
    ("EC", "P-521"): "ES512",
    ("OKP", "Ed25519"): "EdDSA",
    ("OKP", "Ed448"): "EdDSA",
}


def jwk_algorithm(jwk: Mapping[str, Any]) -> str | None:
    """The algorithm a JWK is for: its ``alg``, else the one its key type implies.

    >>> jwk_algorithm({"kty": "OKP", "crv": "Ed25519", "x": "..."})
    'EdDSA'
    >>> jwk_algorithm({"kty": "RSA", "alg": "PS256"})
    'PS256'
    """
    alg = jwk.get("alg")
    if isinstance(alg, str):
        return alg
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if not isinstance(kty, str):
        return None
    return _IMPLIED.get((kty, None if kty == "RSA" else crv if isinstance(crv, str) else ""))


def _within(moment: datetime | None, now: datetime) -> bool:
    """Whether ``moment`` is less than :data:`REFETCH_INTERVAL_S` before ``now``."""
    return moment is not None and now - moment < timedelta(seconds=REFETCH_INTERVAL_S)


@dataclass(frozen=True)
class _Key:
    algorithm: str
    public: Any = None
    refusal: str | None = None


class OidcVerifier:
    """Verifies the access tokens of one OIDC issuer against its published keys.

    ``http`` is the client to fetch with (one is made, and closed by :meth:`aclose`,
    when none is given); ``clock`` gives the time of every check and cache.
    """

    def __init__(
        self,
        settings: OidcSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self._names = ClaimNames(
            tenant=settings.claims.tenant,
            roles=settings.claims.roles,
            name=settings.claims.name,
            groups=settings.claims.groups,
            default_tenant=settings.default_tenant,
        )
        self._lock = asyncio.Lock()
        self._jwks_uri: str | None = None
        self._keys: dict[str, _Key] = {}
        self._fetched_at: datetime | None = None
        self._failed_at: datetime | None = None
        self._failing = False

    @property
    def issuer(self) -> str:
        return self._settings.issuer

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def verify(self, token: str) -> TokenClaims:
        """The claims of a token of this issuer; :class:`AuthenticationRequired` saying
        why not."""
        header = read_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationRequired("token has no kid")
        key = await self._key(kid)
        if key.refusal is not None:
            raise AuthenticationRequired(key.refusal)
        if header.get("alg") != key.algorithm:
            raise AuthenticationRequired(f"token algorithm must be {key.algorithm}")
        settings = self._settings
        payload = decode_token(
            token,
            key.public,
            key.algorithm,
            issuer=settings.issuer,
            audience=settings.audience,
            required=_REQUIRED,
        )
        check_times(payload, self._clock(), settings.leeway_s)
        return token_claims(payload, audience=settings.audience, names=self._names)

    async def _key(self, kid: str) -> _Key:
        async with self._lock:
            now = self._clock()
            cache = timedelta(seconds=self._settings.jwks_cache_s)
            if self._fetched_at is None or now - self._fetched_at >= cache:
                await self._fetch(discover=True)
            elif kid not in self._keys and self._may_fetch(now):
                await self._fetch(discover=False)
        key = self._keys.get(kid)
        if key is None:
            raise AuthenticationRequired("unknown signing key")
        return key

    def _may_fetch(self, now: datetime) -> bool:
        """Whether the keys may be fetched again for an unknown ``kid``."""
        return not (_within(self._fetched_at, now) or _within(self._failed_at, now))

    async def _fetch(self, *, discover: bool) -> None:
        """Fetch the keys (and, with ``discover``, the discovery document first).  A
        failed refresh of both forgets the keys (fail closed); a failed refetch for an
        unknown ``kid`` keeps those still in their cache time."""
        now = self._clock()
        if _within(self._failed_at, now):
            raise AuthenticationRequired("the OIDC issuer could not be reached")
        try:
            if discover or self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            self._keys = self._read_jwks(await self._get_json(self._jwks_uri, "JWKS"))
        except AuthenticationRequired:
            self._failed_at = now
            if discover:
                self._keys, self._fetched_at = {}, None
            raise
        self._fetched_at, self._failed_at, self._failing = now, None, False

    async def _discover(self) -> str:
        url = self._settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(url, "discovery document")
        named = document.get("issuer")
        if named != self._settings.issuer:
            self._log_failure(f"its discovery document names the issuer {named!r}")
            raise AuthenticationRequired(
                f"the OIDC discovery document names another issuer than {self._settings.issuer}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            self._log_failure("its discovery document has no jwks_uri")
            raise AuthenticationRequired("the OIDC discovery document has no jwks_uri")
        return jwks_uri

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self._http.get(
                url,
                timeout=self._settings.http_timeout_s,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            self._log_failure(f"fetching its {what} failed: {type(exc).__name__}")
            raise AuthenticationRequired("the OIDC issuer could not be reached") from None
        if response.status_code != 200:
            self._log_failure(f"its {what} answered HTTP {response.status_code}")
            raise AuthenticationRequired(
                f"the OIDC issuer could not be reached: its {what} answered "
                f"HTTP {response.status_code}"
            )
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            self._log_failure(f"its {what} is not a JSON object")
            raise AuthenticationRequired(f"the OIDC issuer's {what} is not a JSON object")
        return document

    def _read_jwks(self, document: Mapping[str, Any]) -> dict[str, _Key]:
        listed = document.get("keys")
        if not isinstance(listed, list):
            self._log_failure("its JWKS has no keys list")
            raise AuthenticationRequired("the OIDC issuer's JWKS has no keys list")
        keys: dict[str, _Key] = {}
        for jwk in listed:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            if jwk.get("use", "sig") != "sig":
                continue
            keys[jwk["kid"]] = self._pinned(jwk)
        return keys

    def _pinned(self, jwk: dict[str, Any]) -> _Key:
        if jwk.get("kty") == "oct":
            return _Key("", refusal="symmetric signing keys are not accepted")
        algorithm = jwk_algorithm(jwk)
        if algorithm is None:
            return _Key("", refusal="the signing key names no algorithm it is for")
        if algorithm not in self._settings.algorithms:
            return _Key(algorithm, refusal=f"signing key algorithm {algorithm} is not allowed")
        try:
            public = jwt.PyJWK(jwk, algorithm=algorithm).key
        except jwt.PyJWKError:
            return _Key(algorithm, refusal="the issuer's signing key is not a valid JWK")
        return _Key(algorithm, public)

    def _log_failure(self, what: str) -> None:
        """Say it once per outage: every token until the issuer answers again fails alike."""
        if not self._failing:
            self._failing = True
            log.warning("OIDC issuer %s: %s", self._settings.issuer, what)
