"""Tokens of an external OpenID Connect issuer, over HTTP at both ends.

The platform is served on loopback with ``[auth.oidc]`` naming a small issuer that is
served on loopback too (``tests/fixtures/oidc.py``: discovery and JWKS, real keys), and
that maps the issuer's own claims (``org``, ``lg_roles``) to the tenant and the roles.
Its tokens are accepted for tenants that exist, with the roles they carry; another
issuer's are refused; and when the issuer rotates to a key the platform has not seen,
the one refetch of its JWKS picks it up.  That last test gives the platform's verifier
a fake clock (it refetches at most every 10 s), so that no test waits on real time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from limit_graph.core.settings import Settings
from limit_graph.governance.oidc import REFETCH_INTERVAL_S, OidcVerifier
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.clock import FakeUtcClock
from tests.fixtures.live import LiveServer
from tests.fixtures.oidc import IssuerKey, LoopbackIssuer, served_issuer
from tests.security.conftest import security_settings

ADMIN = {"X-API-Key": ADMIN_KEY}


@pytest.fixture(scope="module")
def issuer() -> Iterator[LoopbackIssuer]:
    with served_issuer() as served:
        served.reset([IssuerKey.rsa("k1")])
        yield served


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, issuer: LoopbackIssuer) -> Settings:
    oidc = {
        "issuer": issuer.url,
        "audience": "limit-graph",
        "claims": {"tenant": "org", "roles": "lg_roles"},
    }
    return security_settings(tmp_path_factory.mktemp("oidc"), auth__oidc=oidc)


@pytest.fixture(scope="module")
def team(http: httpx.Client) -> str:
    assert http.post("/tenants", json={"name": "team-a"}, headers=ADMIN).status_code == 201
    return "team-a"


def token(issuer: LoopbackIssuer, clock: FakeUtcClock | None = None, **claims: Any) -> str:
    now = (clock or FakeUtcClock())()
    mapped = {"tenant": None, "roles": None, "org": "team-a", "lg_roles": ["author"]}
    return issuer.token(issuer.keys[0], issuer.claims(now, **(mapped | claims)))


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def refused(answer: httpx.Response, because: str) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert because in answer.json()["detail"], answer.text


def test_the_issuers_tokens_are_accepted_with_the_mapped_tenant_and_roles(
    http: httpx.Client, issuer: LoopbackIssuer, team: str
) -> None:
    author = bearer(token(issuer))
    made = http.post("/sessions", json={}, headers=author)
    assert made.status_code == 201, made.text
    assert made.json()["tenant"] == team and made.json()["owner"] == "ada"
    listed = http.get("/sessions", headers=author).json()["items"]
    assert [s["id"] for s in listed] == [made.json()["id"]]
    viewer = bearer(token(issuer, lg_roles=["viewer"]))
    assert http.get(f"/sessions/{made.json()['id']}", headers=viewer).status_code == 200
    denied = http.post("/sessions", json={}, headers=viewer)
    assert denied.status_code == 403 and denied.json()["policy_ids"], denied.text
    # A role the platform does not know is no role at all.
    stranger = bearer(token(issuer, lg_roles=["superuser"]))
    assert http.get("/sessions", headers=stranger).status_code == 403
    assert issuer.hits["discovery"] == 1 and issuer.hits["jwks"] == 1  # fetched once, cached


@pytest.mark.usefixtures("team")
def test_a_token_for_a_tenant_that_does_not_exist_is_refused(
    http: httpx.Client, issuer: LoopbackIssuer
) -> None:
    refused(
        http.get("/sessions", headers=bearer(token(issuer, org="no-such-team"))), "does not exist"
    )
    refused(http.get("/sessions", headers=bearer(token(issuer, org=None))), "no org claim")


def test_another_issuers_tokens_are_refused(
    http: httpx.Client, issuer: LoopbackIssuer, team: str
) -> None:
    with served_issuer() as other:
        other.reset([IssuerKey.rsa("k1")])  # the same kid, another key
        theirs = token(other)
        refused(http.get("/sessions", headers=bearer(theirs)), "not one this platform trusts")
        # Their key, our issuer's name: the signature gives it away.
        posing = other.token(other.keys[0], issuer.claims(FakeUtcClock()(), org=team))
        refused(http.get("/sessions", headers=bearer(posing)), "signature does not verify")
        assert other.hits["discovery"] == other.hits["jwks"] == 0  # never asked


@pytest.mark.usefixtures("team")
def test_a_key_the_issuer_rotated_to_is_picked_up_by_one_refetch(
    http: httpx.Client, issuer: LoopbackIssuer, live: LiveServer, settings: Settings
) -> None:
    assert settings.auth.oidc is not None
    clock = FakeUtcClock()
    platform: Any = live.app_state.platform  # type: ignore[attr-defined]
    verifier = OidcVerifier(settings.auth.oidc, clock=clock)
    platform.authenticator.oidc = platform.oidc = verifier  # closed with the platform
    assert http.get("/sessions", headers=bearer(token(issuer, clock))).status_code == 200
    fetched = issuer.hits.copy()

    issuer.keys = [IssuerKey.ed25519("k2")]  # the issuer rotates; k1 is gone
    clock.advance(REFETCH_INTERVAL_S + 1)  # past the refetch interval, within the cache time
    rotated = token(issuer, clock)
    assert http.get("/sessions", headers=bearer(rotated)).status_code == 200
    assert issuer.hits["jwks"] == fetched["jwks"] + 1
    assert issuer.hits["discovery"] == fetched["discovery"]

    # A made-up kid right after is refused without asking the issuer again.
    issuer.keys = [IssuerKey.ed25519("k3"), *issuer.keys]
    refused(http.get("/sessions", headers=bearer(token(issuer, clock))), "unknown signing key")
    assert issuer.hits["jwks"] == fetched["jwks"] + 1
    assert http.get("/sessions", headers=bearer(rotated)).status_code == 200
