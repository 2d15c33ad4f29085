"""Broken authentication, over real HTTP: every bad credential is a 401 problem that
says what is wrong with it and never repeats it.

Forged tokens are made the way an attacker would (``tests/fixtures/forged_tokens.py``)
or, where only one thing should be wrong with them, signed with the platform's real
private key read back from its store, so that the one wrong claim is what is refused;
a token re-signed unchanged is accepted, which shows the forging itself is sound.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from limit_graph.core.settings import Settings
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.forged_tokens import hs256_signed, replace_payload, unsigned
from tests.fixtures.live import LiveServer, live_server
from tests.security.cast import PLATFORM_ADMIN, Caller, make_member
from tests.security.conftest import security_settings
from tests.security.stored import SigningKey, read_stored_of


@dataclass
class Cast:
    http: httpx.Client
    user: Caller
    token: str
    claims: dict[str, Any]
    key: SigningKey
    revoked: Caller
    deleted_key: Caller
    deleted_token: str

    def bearer(self, credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


def _token_of(http: httpx.Client, service: dict[str, Any]) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": service["client_id"],
        "client_secret": service["client_secret"],
    }
    issued = http.post("/auth/token", data=form)
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["access_token"]
    return token


def make_cast(http: httpx.Client, settings: Settings) -> Cast:
    """In tenant team-a: a user with a key, a service account with a token, a user whose
    key was revoked, and a service account deleted after it got a key and a token."""
    admin = Caller(PLATFORM_ADMIN, {"X-API-Key": ADMIN_KEY})
    assert http.post("/tenants", json={"name": "team-a"}, headers=admin.headers).status_code == 201
    user, _ = make_member(http, admin, "team-a", "author")
    _, service = make_member(http, admin, "team-a", "author", kind="service")
    revoked, _ = make_member(http, admin, "team-a", "author")
    assert http.delete(f"/keys/{_key_id(revoked)}", headers=admin.headers).status_code == 204
    doomed, doomed_service = make_member(http, admin, "team-a", "author", kind="service")
    doomed_token = _token_of(http, doomed_service)
    assert http.delete(f"/principals/{doomed.id}", headers=admin.headers).status_code == 204
    token = _token_of(http, service)
    kid = jwt.get_unverified_header(token)["kid"]
    (key,) = [k for k in asyncio.run(read_stored_of(settings)).signing if k.kid == kid]
    return Cast(http, user, token, _claims(token), key, revoked, doomed, doomed_token)


def _key_id(caller: Caller) -> str:
    assert caller.key is not None
    return caller.key.split("_")[1]


@pytest.fixture(scope="module")
def cast(http: httpx.Client, settings: Settings) -> Cast:
    return make_cast(http, settings)


def sign(key: SigningKey, claims: dict[str, Any], **header: Any) -> str:
    return jwt.encode(
        claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid, **header}
    )


def assert_refused(answer: httpx.Response, credential: str, because: str) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer"), answer.headers
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert because in problem["detail"], problem
    echoed = answer.text + "".join(f"{k}: {v}" for k, v in answer.headers.items())
    assert credential.strip() not in echoed, "the answer repeats the credential"


def test_a_token_re_signed_unchanged_is_accepted(cast: Cast) -> None:
    again = sign(cast.key, cast.claims, typ="JWT")
    assert cast.http.get("/sessions", headers=cast.bearer(again)).status_code == 200


FORGED: dict[str, tuple[Callable[[Cast], str], str]] = {
    "alg none": (
        lambda c: unsigned({"kid": c.key.kid, "typ": "JWT"}, c.claims),
        "token algorithm must be EdDSA",
    ),
    "HS256 keyed with the Ed25519 public key (PEM)": (
        lambda c: hs256_signed({"kid": c.key.kid}, c.claims, _public_pem(c.key)),
        "token algorithm must be EdDSA",
    ),
    "HS256 keyed with the Ed25519 public key (raw)": (
        lambda c: hs256_signed({"kid": c.key.kid}, c.claims, _public_raw(c.key)),
        "token algorithm must be EdDSA",
    ),
    "expired": (
        lambda c: sign(c.key, {**c.claims, "exp": int(time.time()) - 3600}),
        "token expired",
    ),
    "not yet valid": (
        lambda c: sign(c.key, {**c.claims, "nbf": int(time.time()) + 3600}),
        "token is not valid yet",
    ),
    "wrong aud": (
        lambda c: sign(c.key, {**c.claims, "aud": "someone-else"}),
        "token audience is not limit-graph",
    ),
    "wrong iss": (
        lambda c: sign(c.key, {**c.claims, "iss": "https://evil.example.org"}),
        "issuer is not one this platform trusts",
    ),
    "unknown kid": (
        lambda c: sign(c.key, c.claims, kid="20260101-0000000000000000"),
        "unknown signing key",
    ),
    "tampered payload": (
        lambda c: replace_payload(c.token, tenant="team-b", roles=["admin"]),
        "token signature does not verify",
    ),
}


def _public_pem(key: SigningKey) -> bytes:
    pem: bytes = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def _public_raw(key: SigningKey) -> bytes:
    raw: bytes = key.private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return raw


@pytest.mark.parametrize("case", sorted(FORGED))
def test_a_forged_token_is_refused(case: str, cast: Cast) -> None:
    forge, because = FORGED[case]
    token = forge(cast)
    assert_refused(cast.http.get("/sessions", headers=cast.bearer(token)), token, because)


def test_a_revoked_key_and_a_deleted_principals_credentials_are_refused(cast: Cast) -> None:
    for credential, because in (
        (cast.revoked.key, "was revoked"),
        (cast.deleted_key.key, "was revoked"),  # deleting a principal revokes its keys
        (cast.deleted_token, "the token's principal was deleted"),
    ):
        assert credential is not None
        for headers in (cast.bearer(credential), {"X-API-Key": credential}):
            assert_refused(cast.http.get("/sessions", headers=headers), credential, because)


BEARER_MUST = "the Authorization header must be 'Bearer <credential>'"


def test_malformed_authorization_headers_are_refused(cast: Cast) -> None:
    key = cast.user.key
    assert key is not None
    long = "lgk_" + "a" * 8_000
    cases = {  # the header, what of it must not come back, what the refusal says
        "no scheme": (key, key, BEARER_MUST),
        "Basic": ("Basic " + base64.b64encode(f"{key}:x".encode()).decode(), key, BEARER_MUST),
        "empty": ("", key, BEARER_MUST),
        "a scheme and no credential": ("Bearer", key, BEARER_MUST),
        "two credentials": (f"Bearer {key} {key}", key, "unknown API key"),
        "a key with spaces": (f"Bearer {key[:20]} {key[20:]}", key[20:], "unknown API key"),
        "absurdly long": (f"Bearer {long}", long, "unknown API key"),
    }
    for case, (header, secret, because) in cases.items():
        answer = cast.http.get("/sessions", headers={"Authorization": header})
        try:
            assert_refused(answer, secret, because)
        except AssertionError as failed:
            raise AssertionError(f"{case}: {failed}") from None


def test_two_spaces_before_a_valid_credential_are_allowed(cast: Cast) -> None:
    """RFC 6750 §2.1: ``credentials = "Bearer" 1*SP b64token`` -- one or more spaces."""
    assert cast.user.key is not None
    answer = cast.http.get("/sessions", headers={"Authorization": f"Bearer  {cast.user.key}"})
    assert answer.status_code == 200, answer.text


def test_two_credentials_naming_different_callers_are_refused(cast: Cast) -> None:
    assert cast.user.key is not None
    headers = {"X-API-Key": cast.user.key, **cast.bearer(cast.token)}
    answer = cast.http.get("/sessions", headers=headers)
    assert_refused(answer, cast.token, "Authorization and X-API-Key name different callers")
    assert cast.user.key not in answer.text


@pytest.fixture(scope="module")
def rsa_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Settings]]:
    """A second platform, signing its tokens with RS256."""
    settings = security_settings(tmp_path_factory.mktemp("rsa"), auth__signing_algorithm="RS256")
    with live_server(settings) as running:
        yield running, settings


def test_hs256_keyed_with_the_rsa_public_key_is_refused(
    rsa_platform: tuple[LiveServer, Settings],
) -> None:
    live, settings = rsa_platform
    with httpx.Client(base_url=live.url, timeout=60) as http:
        cast = make_cast(http, settings)
        assert cast.key.algorithm == "RS256"
        assert http.get("/sessions", headers=cast.bearer(cast.token)).status_code == 200
        for secret in (_public_pem(cast.key), json.dumps(cast.key.public_jwk).encode()):
            token = hs256_signed({"kid": cast.key.kid}, cast.claims, secret)
            answer = http.get("/sessions", headers=cast.bearer(token))
            assert_refused(answer, token, "token algorithm must be RS256")
