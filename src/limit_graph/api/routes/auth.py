"""The OAuth2 token endpoint (client credentials, RFC 6749 §4.4) and the signing keys.

``POST /auth/token`` takes ``application/x-www-form-urlencoded`` as the RFC says, with
the client's id and secret in the form or in HTTP Basic (§2.3.1); it needs no other
credential.  Errors carry RFC 6749's ``error`` code beside the problem fields.
``GET /.well-known/jwks.json`` serves the public keys that verify the tokens;
``POST /auth/signing-keys/rotate`` (platform admin) starts signing with a new key.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from limit_graph.api.deps import CanRotateSigningKeys, CurrentPlatform
from limit_graph.api.identity_schemas import SigningKeyOut, TokenOut
from limit_graph.api.ijson import IJSONRoute
from limit_graph.core.errors import AuthenticationRequired, TokenRequestError

router = APIRouter(tags=["auth"], route_class=IJSONRoute)

FORM = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string", "format": "password"},
        "scope": {"type": "string"},
    },
}


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise TokenRequestError("the form must be ASCII (percent-encoded)") from None
    fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
    repeated = sorted(name for name, values in fields.items() if len(values) > 1)
    if repeated:  # RFC 6749 §3.2: parameters must not be included more than once
        raise TokenRequestError(f"parameters sent more than once: {', '.join(repeated)}")
    return {name: values[0] for name, values in fields.items()}


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationRequired(
            "the Basic credentials are not base64 of 'id:secret'", oauth_error="invalid_client"
        ) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise AuthenticationRequired(
            "the Basic credentials are not 'id:secret'", oauth_error="invalid_client"
        )
    return unquote_plus(client_id), unquote_plus(secret)


@router.post(
    "/auth/token",
    response_model=TokenOut,
    openapi_extra={
        "requestBody": {"required": True, "content": {FORM: {"schema": _FORM_SCHEMA}}},
    },
)
async def token(request: Request, platform: CurrentPlatform) -> JSONResponse:
    """A JWT for a service account, from its client id and secret."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != FORM:
        raise TokenRequestError(f"send the token request as {FORM}")
    form = _form(await request.body())
    if form.get("grant_type") != "client_credentials":
        if "grant_type" not in form:
            raise TokenRequestError("grant_type is missing")
        raise TokenRequestError(
            "only grant_type=client_credentials is supported", "unsupported_grant_type"
        )
    basic = _basic(request.headers.get("authorization", ""))
    in_form = (form.get("client_id"), form.get("client_secret"))
    if basic is not None and any(in_form):
        raise TokenRequestError("send the client's credentials one way: Basic or the form")
    client_id, secret = basic or in_form
    if not client_id or not secret:
        raise AuthenticationRequired(
            "send client_id and client_secret (form or HTTP Basic)", oauth_error="invalid_client"
        )
    await platform.rates.check("auth", key=client_id)  # before the secret: guesses count
    try:
        principal = await platform.tokens.authenticate_client(client_id, secret)
    except AuthenticationRequired as exc:
        raise AuthenticationRequired(exc.detail, oauth_error="invalid_client") from None
    await platform.rates.check("auth", principal=str(principal.id), tenant=principal.tenant)
    issued = await platform.tokens.issue(principal)
    out = TokenOut(
        access_token=issued.access_token,
        token_type=issued.token_type,
        expires_in=issued.expires_in,
    )
    return JSONResponse(out.model_dump(), headers=_NO_STORE)


@router.get("/.well-known/jwks.json", response_model=dict[str, Any])
async def jwks(platform: CurrentPlatform) -> dict[str, Any]:
    """The public keys that verify the platform's tokens (RFC 7517), the retiring ones
    included until their last token expires."""
    keys: dict[str, Any] = await platform.tokens.jwks()
    return keys


@router.post("/auth/signing-keys/rotate", response_model=SigningKeyOut)
async def rotate_signing_key(
    platform: CurrentPlatform, principal: CanRotateSigningKeys
) -> SigningKeyOut:
    """Sign new tokens with a new key; the old one is served until its tokens expire."""
    record = await platform.tokens.rotate(principal.name)
    return SigningKeyOut(kid=record.kid, algorithm=record.algorithm, created_at=record.created_at)
