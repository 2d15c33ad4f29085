"""What a verified JWT says, and the checks the platform's own and OIDC tokens share.

PyJWT checks the signature, ``iss``, ``aud`` and that the required claims are there;
the times (``exp``, ``nbf``, ``iat``) are checked here, against the caller's clock,
because PyJWT reads the system clock and tests cannot move that one.  Every failure is
an :class:`AuthenticationRequired` whose detail names what is wrong and never holds the
token, a key or a secret.

>>> peek_issuer("not a token") is None
True
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from limit_graph.core.errors import AuthenticationRequired
from limit_graph.core.identity import check_name

__all__ = [
    "ClaimNames",
    "TokenClaims",
    "check_times",
    "decode_token",
    "peek_issuer",
    "read_header",
    "token_claims",
]

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class TokenClaims:
    """Who a verified token says the caller is; ``claims`` is the whole payload."""

    subject: str
    tenant: str
    roles: frozenset[str]
    groups: frozenset[str]
    name: str
    issuer: str
    audience: str
    jti: str | None
    issued_at: datetime
    expires_at: datetime
    claims: Mapping[str, Any] = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class ClaimNames:
    """Which claims hold the tenant, roles, name (``sub`` when absent) and groups."""

    tenant: str = "tenant"
    roles: str = "roles"
    name: str = "name"
    groups: str = "groups"
    default_tenant: str | None = None


def _parts(token: str) -> list[str]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise AuthenticationRequired("token is malformed: it must be three dot-separated parts")
    if not all(_SEGMENT.fullmatch(part) for part in parts):
        raise AuthenticationRequired("token is malformed: its parts must be base64url")
    return parts


def read_header(token: str) -> dict[str, Any]:
    """The unverified JOSE header, to pick the key: ``kid`` and ``alg`` are read, trusted
    for nothing else."""
    header = _json_part(_parts(token)[0])
    if header is None:
        raise AuthenticationRequired("token is malformed: its header is not base64url JSON")
    return header


def _json_part(part: str) -> dict[str, Any] | None:
    try:
        document = json.loads(jwt.utils.base64url_decode(part))
    except (binascii.Error, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def peek_issuer(token: str) -> str | None:
    """The unverified ``iss`` of ``token``, to choose the verifier that will check it
    (``None`` for anything that is not a JWT with a string ``iss``)."""
    try:
        payload = _json_part(_parts(token)[1])
    except AuthenticationRequired:
        return None
    issuer = payload.get("iss") if payload is not None else None
    return issuer if isinstance(issuer, str) else None


def decode_token(
    token: str,
    key: Any,
    algorithm: str,
    *,
    issuer: str,
    audience: str,
    required: Sequence[str],
) -> dict[str, Any]:
    """The payload of ``token`` once its signature (``algorithm`` only, with ``key``),
    ``iss``, ``aud`` and required claims check out; times are :func:`check_times`'."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            options={
                "require": list(required),
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise AuthenticationRequired("token signature does not verify") from None
    except jwt.InvalidAlgorithmError:
        raise AuthenticationRequired(f"token algorithm must be {algorithm}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthenticationRequired(f"token has no {exc.claim} claim") from None
    except jwt.InvalidAudienceError:
        raise AuthenticationRequired(f"token audience is not {audience}") from None
    except jwt.InvalidIssuerError:
        raise AuthenticationRequired(f"token issuer is not {issuer}") from None
    except (InvalidSubjectError, InvalidJTIError):
        raise AuthenticationRequired("token sub and jti must be strings") from None
    except jwt.DecodeError:
        raise AuthenticationRequired(
            "token is malformed: its payload is not base64url JSON"
        ) from None
    except jwt.PyJWTError:
        raise AuthenticationRequired("token does not verify") from None


def _numeric_date(payload: Mapping[str, Any], claim: str) -> float | None:
    value = payload.get(claim)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationRequired(f"token {claim} must be a number of seconds")
    return float(value)


def check_times(payload: Mapping[str, Any], now: datetime, leeway_s: float) -> None:
    """``exp`` in the future, ``nbf`` and ``iat`` not, each give or take ``leeway_s``."""
    at = now.timestamp()
    expires = _numeric_date(payload, "exp")
    if expires is not None and expires <= at - leeway_s:
        raise AuthenticationRequired("token expired")
    not_before = _numeric_date(payload, "nbf")
    if not_before is not None and not_before > at + leeway_s:
        raise AuthenticationRequired("token is not valid yet")
    issued = _numeric_date(payload, "iat")
    if issued is not None and issued > at + leeway_s:
        raise AuthenticationRequired("token was issued in the future")


def _names(value: Any, claim: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise AuthenticationRequired(
        f"token {claim} claim must be a list of names or a space-separated string"
    )


def _timestamp(value: float | None) -> datetime:
    return datetime.fromtimestamp(value if value is not None else 0, UTC)


def token_claims(payload: dict[str, Any], *, audience: str, names: ClaimNames) -> TokenClaims:
    """The :class:`TokenClaims` of a verified ``payload``, read through ``names``."""
    subject = payload.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthenticationRequired("token has no sub claim")
    tenant = payload.get(names.tenant, names.default_tenant)
    if tenant is None:
        raise AuthenticationRequired(f"token has no {names.tenant} claim")
    try:
        check_name(tenant if isinstance(tenant, str) else "", "tenant")
    except ValueError:
        raise AuthenticationRequired(f"token {names.tenant} claim is not a tenant name") from None
    name = payload.get(names.name, subject)
    if not isinstance(name, str) or not name:
        raise AuthenticationRequired(f"token {names.name} claim must be a string")
    jti = payload.get("jti")
    return TokenClaims(
        subject=subject,
        tenant=tenant,
        roles=_names(payload.get(names.roles), names.roles),
        groups=_names(payload.get(names.groups), names.groups),
        name=name,
        issuer=str(payload.get("iss", "")),
        audience=audience,
        jti=jti if isinstance(jti, str) else None,
        issued_at=_timestamp(_numeric_date(payload, "iat")),
        expires_at=_timestamp(_numeric_date(payload, "exp")),
        claims=payload,
    )
