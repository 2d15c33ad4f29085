"""The ``[auth]`` and ``[auth.oidc]`` sections of the settings (re-exported there).

``[auth]`` is the platform's own tokens, issued to service accounts (OAuth2 client
credentials) and signed with keys that rotate, and the server secret that digests API
keys and client secrets and encrypts those keys (``governance/secrets.py``).
``[auth.oidc]``, when present, names an external OpenID Connect issuer whose access
tokens are accepted too, and which of their claims say the tenant, roles, name and groups.

>>> AuthSettings(oidc={"issuer": "https://id.example.org", "audience": "lg"}).oidc.claims.name
'preferred_username'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from limit_graph.core.identity import check_name

__all__ = ["AuthSettings", "JwtAlgorithm", "OidcClaims", "OidcSettings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
"""The asymmetric JWS algorithms a token may be signed with; ``HS*`` and ``none`` never."""


class OidcClaims(_Section):
    """Which claims of an external token say who the caller is."""

    tenant: str = Field(default="tenant", min_length=1, description="The tenant's claim.")
    roles: str = Field(default="roles", min_length=1, description="A list or a spaced string.")
    name: str = Field(
        default="preferred_username", min_length=1, description="Falls back to `sub`."
    )
    groups: str = Field(default="groups", min_length=1, description="The groups' claim.")


def _default_algorithms() -> list[JwtAlgorithm]:
    return ["RS256", "ES256", "EdDSA"]


class OidcSettings(_Section):
    """An external OpenID Connect issuer whose access tokens the platform accepts."""

    issuer: str = Field(pattern=r"^https?://\S+$", description="Exactly as its tokens' `iss`.")
    audience: str = Field(min_length=1, description="Exactly as its tokens' `aud`.")
    algorithms: list[JwtAlgorithm] = Field(
        default_factory=_default_algorithms,
        min_length=1,
        description="JWS algorithms its tokens may be signed with (never HS* or none).",
    )
    claims: OidcClaims = Field(default_factory=OidcClaims)
    jwks_cache_s: float = Field(
        default=300, ge=10, le=86_400, description="How long discovery and JWKS are kept."
    )
    default_tenant: str | None = Field(
        default=None, description="The tenant of a token without the tenant claim."
    )
    leeway_s: int = Field(default=30, ge=0, le=300, description="Clock skew allowed.")
    http_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of discovery and JWKS requests."
    )

    @field_validator("default_tenant")
    @classmethod
    def _tenant_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "tenant")


class AuthSettings(_Section):
    """The platform's own tokens (OAuth2 client credentials) and the server secret that
    digests API keys and client secrets and encrypts the signing keys."""

    secret: SecretStr | None = Field(
        default=None,
        description="The server secret that digests API keys and client secrets and "
        "encrypts the signing keys; made under home in dev mode.",
    )
    issuer: str = Field(
        default="limit-graph", min_length=1, description="`iss` of the platform's tokens."
    )
    audience: str = Field(
        default="limit-graph", min_length=1, description="`aud` of the platform's tokens."
    )
    token_ttl_s: int = Field(
        default=900, ge=60, le=3600, description="Lifetime of a token the platform issues."
    )
    signing_algorithm: Literal["EdDSA", "RS256"] = Field(
        default="EdDSA", description="How the platform signs its tokens."
    )
    leeway_s: int = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on the platform's tokens."
    )
    oidc: OidcSettings | None = Field(
        default=None, description="An external OpenID Connect issuer whose tokens count."
    )
