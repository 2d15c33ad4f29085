"""External OIDC tokens, against an issuer served over real HTTP on loopback with real
RSA and Ed25519 keys: discovery, JWKS caching, the one refetch for a new ``kid`` (and
its rate limit), pinned algorithms, and an issuer that lies or cannot be reached."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from limit_graph.core.auth_settings import OidcSettings
from limit_graph.core.errors import AuthenticationRequired
from limit_graph.deployments.server import free_port
from limit_graph.governance.oidc import REFETCH_INTERVAL_S, OidcVerifier
from limit_graph.governance.tokens import peek_issuer
from tests.fixtures.clock import FakeUtcClock
from tests.fixtures.forged_tokens import hs256_signed, replace_payload, unsigned
from tests.fixtures.oidc import IssuerKey, LoopbackIssuer, served_issuer

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LOG = "limit_graph.governance.oidc"

Verifier = Callable[..., OidcVerifier]


@pytest.fixture(scope="module")
def _served() -> Iterator[LoopbackIssuer]:
    with served_issuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def _keys() -> list[IssuerKey]:
    return [IssuerKey.rsa("rsa-1"), IssuerKey.ed25519("ed-1")]


@pytest.fixture
def issuer(_served: LoopbackIssuer, _keys: list[IssuerKey]) -> LoopbackIssuer:
    """The issuer serving an RS256 and an EdDSA key, its request counts at zero."""
    _served.reset(_keys)
    return _served


@pytest.fixture
def clock() -> FakeUtcClock:
    return FakeUtcClock(START)


@pytest.fixture
async def verifier(issuer: LoopbackIssuer, clock: FakeUtcClock) -> AsyncIterator[Verifier]:
    made: list[OidcVerifier] = []

    def make(**settings: Any) -> OidcVerifier:
        fields = {"issuer": issuer.url, "audience": "limit-graph"} | settings
        made.append(OidcVerifier(OidcSettings(**fields), clock=clock))
        return made[-1]

    yield make
    for one in made:
        await one.aclose()


@pytest.mark.parametrize("index", [0, 1], ids=["rs256", "eddsa-without-alg"])
async def test_a_token_of_the_issuer_verifies_after_discovery(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock, index: int
) -> None:
    key = issuer.keys[index]
    token = issuer.token(key, issuer.claims(clock()))
    assert peek_issuer(token) == issuer.url
    claims = await verifier().verify(token)
    assert claims.subject == "f1c2-user" and claims.name == "ada"
    assert claims.tenant == "team-a" and claims.roles == {"author", "viewer"}
    assert claims.groups == {"physics"} and claims.issuer == issuer.url
    assert claims.expires_at == datetime.fromtimestamp(int(START.timestamp()) + 300, UTC)
    assert issuer.hits == {"discovery": 1, "jwks": 1}


async def test_claims_are_read_through_the_configured_names(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    check = verifier(
        claims={"tenant": "org", "roles": "scope", "name": "email", "groups": "teams"},
        default_tenant="fallback",
    )
    key = issuer.keys[0]
    mapped = issuer.claims(clock(), org="lab-b", scope="author viewer", email="ada@lab", teams=[])
    claims = await check.verify(issuer.token(key, mapped))
    assert (claims.tenant, claims.roles, claims.name, claims.groups) == (
        "lab-b",
        {"author", "viewer"},
        "ada@lab",
        frozenset(),
    )
    bare = await check.verify(issuer.token(key, issuer.claims(clock(), preferred_username=None)))
    assert bare.tenant == "fallback" and bare.name == "f1c2-user" and bare.roles == frozenset()


async def test_a_token_without_its_tenant_and_no_default_is_refused(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    token = issuer.token(issuer.keys[0], issuer.claims(clock(), tenant=None))
    with pytest.raises(AuthenticationRequired, match="^token has no tenant claim$"):
        await verifier().verify(token)


async def test_discovery_and_keys_are_cached_for_their_time(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    check = verifier(jwks_cache_s=120)
    for _ in range(3):
        await check.verify(issuer.token(issuer.keys[0], issuer.claims(clock())))
    assert issuer.hits == {"discovery": 1, "jwks": 1}
    clock.advance(119)
    await check.verify(issuer.token(issuer.keys[1], issuer.claims(clock())))
    assert issuer.hits == {"discovery": 1, "jwks": 1}
    clock.advance(1)
    await check.verify(issuer.token(issuer.keys[1], issuer.claims(clock())))
    assert issuer.hits == {"discovery": 2, "jwks": 2}


async def test_a_rotation_at_the_issuer_is_picked_up_by_one_refetch(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    check = verifier()
    await check.verify(issuer.token(issuer.keys[0], issuer.claims(clock())))
    new = IssuerKey.ed25519("ed-2")
    issuer.keys.append(new)
    clock.advance(REFETCH_INTERVAL_S)
    claims = await check.verify(issuer.token(new, issuer.claims(clock())))
    assert claims.name == "ada"
    assert issuer.hits == {"discovery": 1, "jwks": 2}


async def test_unknown_kids_refetch_at_most_once_per_interval(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    check = verifier()
    await check.verify(issuer.token(issuer.keys[0], issuer.claims(clock())))
    stranger = IssuerKey.ed25519("not-published")
    bad = issuer.token(stranger, issuer.claims(clock()))
    for _ in range(20):
        with pytest.raises(AuthenticationRequired, match="^unknown signing key$"):
            await check.verify(bad)
    assert issuer.hits["jwks"] == 1
    clock.advance(REFETCH_INTERVAL_S)
    for _ in range(20):
        with pytest.raises(AuthenticationRequired, match="^unknown signing key$"):
            await check.verify(bad)
    assert issuer.hits == {"discovery": 1, "jwks": 2}
    issuer.keys.append(stranger)
    with pytest.raises(AuthenticationRequired, match="^unknown signing key$"):
        await check.verify(bad)
    clock.advance(REFETCH_INTERVAL_S)
    assert (await check.verify(bad)).subject == "f1c2-user"


async def test_a_discovery_document_naming_another_issuer_is_refused(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    issuer.discovery_issuer = "https://evil.example"
    with pytest.raises(AuthenticationRequired, match="names another issuer than"):
        await verifier().verify(issuer.token(issuer.keys[0], issuer.claims(clock())))
    assert issuer.hits == {"discovery": 1}


async def test_an_unreachable_issuer_is_said_and_logged_once_without_the_token(
    clock: FakeUtcClock, caplog: pytest.LogCaptureFixture, _keys: list[IssuerKey]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/realms/gone"
    check = OidcVerifier(
        OidcSettings(issuer=url, audience="limit-graph", http_timeout_s=2), clock=clock
    )
    token = LoopbackIssuer(url, _keys).token(_keys[0], LoopbackIssuer(url, _keys).claims(clock()))
    try:
        with caplog.at_level(logging.WARNING, logger=LOG):
            for advance in (0, 1, REFETCH_INTERVAL_S, REFETCH_INTERVAL_S):
                clock.advance(advance)
                with pytest.raises(AuthenticationRequired) as caught:
                    await check.verify(token)
                assert caught.value.detail == "the OIDC issuer could not be reached"
    finally:
        await check.aclose()
    records = [r for r in caplog.records if r.name == LOG]
    assert len(records) == 1 and url in records[0].getMessage()
    assert token not in caplog.text and token.split(".")[1] not in caplog.text


async def test_a_failing_jwks_is_an_error_then_recovers(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    check = verifier()
    token = issuer.token(issuer.keys[0], issuer.claims(clock()))
    issuer.jwks_status = 503
    with pytest.raises(AuthenticationRequired, match="JWKS answered HTTP 503"):
        await check.verify(token)
    issuer.jwks_status = 200
    with pytest.raises(AuthenticationRequired, match="could not be reached"):
        await check.verify(token)
    assert issuer.hits == {"discovery": 1, "jwks": 1}
    clock.advance(REFETCH_INTERVAL_S)
    assert (await check.verify(token)).name == "ada"


async def test_the_algorithm_is_pinned_per_key(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    check = verifier()
    rsa_key, ed_key = issuer.keys
    claims = issuer.claims(clock())
    pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = {
        "alg-none": unsigned({"kid": rsa_key.kid}, claims),
        "hs256-rsa-pem": hs256_signed({"kid": rsa_key.kid}, claims, pem),
        "hs256-ed-x": hs256_signed({"kid": ed_key.kid}, claims, ed_key.jwk["x"].encode()),
        "rs512-same-key": issuer.token(rsa_key, claims, alg="RS512"),
        "ps256-same-key": issuer.token(rsa_key, claims, alg="PS256"),
    }
    expected = {
        "alg-none": "RS256",
        "hs256-rsa-pem": "RS256",
        "hs256-ed-x": "EdDSA",
        "rs512-same-key": "RS256",
        "ps256-same-key": "RS256",
    }
    for case, token in forged.items():
        with pytest.raises(AuthenticationRequired) as caught:
            await check.verify(token)
        assert caught.value.detail == f"token algorithm must be {expected[case]}", case


async def test_keys_of_algorithms_not_allowed_are_refused(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    issuer.extra_jwks = [{"kty": "oct", "kid": "shared", "k": "c2VjcmV0", "alg": "HS256"}]
    check = verifier(algorithms=["EdDSA"])
    with pytest.raises(AuthenticationRequired, match="^signing key algorithm RS256 is not allowed"):
        await check.verify(issuer.token(issuer.keys[0], issuer.claims(clock())))
    assert (await check.verify(issuer.token(issuer.keys[1], issuer.claims(clock())))).name
    hs = hs256_signed({"kid": "shared"}, issuer.claims(clock()), b"secret")
    with pytest.raises(AuthenticationRequired, match="^symmetric signing keys are not accepted$"):
        await check.verify(hs)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"aud": "another-api"}, "^token audience is not limit-graph$"),
        ({"iss": "https://evil.example"}, "^token issuer is not http"),
        ({"exp": None}, "^token has no exp claim$"),
        ({"iat": None}, "^token has no iat claim$"),
        ({"sub": None}, "^token has no sub claim$"),
        ({"roles": {"admin": True}}, "roles claim must be a list"),
    ],
)
async def test_claims_that_do_not_check_out(
    issuer: LoopbackIssuer,
    verifier: Verifier,
    clock: FakeUtcClock,
    changes: dict[str, Any],
    message: str,
) -> None:
    token = issuer.token(issuer.keys[0], issuer.claims(clock(), **changes))
    with pytest.raises(AuthenticationRequired, match=message):
        await verifier().verify(token)


async def test_times_tampering_and_malformed_tokens(
    issuer: LoopbackIssuer, verifier: Verifier, clock: FakeUtcClock
) -> None:
    check = verifier(leeway_s=10)
    token = issuer.token(issuer.keys[0], issuer.claims(clock()))
    with pytest.raises(AuthenticationRequired, match="^token signature does not verify$"):
        await check.verify(replace_payload(token, tenant="team-b"))
    with pytest.raises(AuthenticationRequired, match="^token is malformed"):
        await check.verify("not-a-token")
    at = int(clock().timestamp())
    early = issuer.token(issuer.keys[0], issuer.claims(clock(), nbf=at + 11))
    with pytest.raises(AuthenticationRequired, match="^token is not valid yet$"):
        await check.verify(early)
    clock.advance(300 + 9)
    assert (await check.verify(token)).name == "ada"
    clock.advance(1)
    with pytest.raises(AuthenticationRequired, match="^token expired$"):
        await check.verify(token)


async def test_a_given_http_client_is_used_and_left_open(
    issuer: LoopbackIssuer, clock: FakeUtcClock
) -> None:
    async with httpx.AsyncClient() as http:
        check = OidcVerifier(
            OidcSettings(issuer=issuer.url, audience="limit-graph"), clock=clock, http=http
        )
        await check.verify(issuer.token(issuer.keys[1], issuer.claims(clock())))
        await check.aclose()
        assert not http.is_closed
    assert issuer.hits == {"discovery": 1, "jwks": 1}
