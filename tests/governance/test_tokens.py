"""The platform's own JWTs: issue, verify, every broken token refused, JWKS, rotation
across processes, and client credentials that do not tell unknown from wrong."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from limit_graph.core.auth_settings import AuthSettings
from limit_graph.core.errors import AuthenticationRequired, ConfigError
from limit_graph.core.identity import PrincipalKind, PrincipalRecord, Role, Tenant
from limit_graph.governance.secrets import ServerSecret
from limit_graph.governance.tokens import (
    SIGNING_KEY_PURPOSE,
    TokenService,
    new_client_credentials,
    peek_issuer,
)
from limit_graph.storage.base import Storage
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.memory import MemoryStorage
from tests.fixtures.clock import FakeUtcClock
from tests.fixtures.forged_tokens import b64url, hs256_signed, replace_payload, unsigned

SECRET = ServerSecret("the test server secret, long enough")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store: Storage
    if request.param == "memory":
        store = MemoryStorage()
    elif request.param == "sqlite":
        store = DatabaseStorage(f"sqlite+aiosqlite:///{tmp_path / 'limit.db'}")
    else:
        store = DatabaseStorage(request.getfixturevalue("postgres_url"))
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def clock() -> FakeUtcClock:
    return FakeUtcClock(START)


async def started(
    storage: Storage, clock: FakeUtcClock, secret: ServerSecret = SECRET, **auth: Any
) -> TokenService:
    service = TokenService(storage.identity, secret, AuthSettings(**auth), clock=clock)
    await service.start()
    return service


def principal(**changes: Any) -> PrincipalRecord:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": "ci-bot",
        "tenant": "team-a",
        "kind": PrincipalKind.SERVICE,
        "roles": [Role.AUTHOR],
        "groups": ["builders"],
        "created_at": START,
    }
    return PrincipalRecord(**(fields | changes))


def entry(action: str) -> EntryDraft:
    return EntryDraft("admin", action, "principal", "-", None, {})


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(header), decode(payload)


async def sign_as_platform(storage: Storage, claims: dict[str, Any], **header: Any) -> str:
    """Sign ``claims`` with the platform's current key, as only a holder of the server
    secret could: the tokens the verifier must refuse for their claims alone."""
    record = (await storage.identity.list_signing_keys())[0]
    pem = SECRET.decrypt(record.private_key, purpose=SIGNING_KEY_PURPOSE)
    private = serialization.load_pem_private_key(pem, password=None)
    headers = {"kid": record.kid, **header}
    return jwt.encode(claims, private, algorithm=record.algorithm, headers=headers)  # type: ignore[arg-type]


def good_claims(clock: FakeUtcClock, **changes: Any) -> dict[str, Any]:
    now = int(clock().timestamp())
    claims = {
        "iss": "limit-graph",
        "aud": "limit-graph",
        "sub": str(uuid.uuid4()),
        "tenant": "team-a",
        "roles": ["viewer"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j1",
    }
    return {k: v for k, v in (claims | changes).items() if v is not None}


@pytest.mark.parametrize("algorithm", ["EdDSA", "RS256"])
async def test_an_issued_token_says_who_and_verifies(
    storage: Storage, clock: FakeUtcClock, algorithm: str
) -> None:
    service = await started(storage, clock, signing_algorithm=algorithm, token_ttl_s=600)
    bot = principal()
    issued = await service.issue(bot)
    assert issued.token_type == "Bearer" and issued.expires_in == 600
    header, claims = parts(issued.access_token)
    [key] = await storage.identity.list_signing_keys()
    assert header == {"alg": algorithm, "kid": key.kid, "typ": "JWT"}
    assert claims["iss"] == "limit-graph" and claims["aud"] == "limit-graph"
    assert claims["sub"] == str(bot.id) and claims["tenant"] == "team-a"
    assert claims["roles"] == ["author"] and claims["groups"] == ["builders"]
    assert claims["name"] == "ci-bot" and claims["jti"] == issued.jti
    assert claims["iat"] == claims["nbf"] == int(START.timestamp())
    assert claims["exp"] - claims["iat"] == 600
    verified = await service.verify(issued.access_token)
    assert verified.subject == str(bot.id) and verified.tenant == "team-a"
    assert verified.roles == {"author"} and verified.groups == {"builders"}
    assert verified.expires_at == START + timedelta(seconds=600) == issued.expires_at
    assert (await service.issue(bot)).jti != issued.jti


async def test_start_makes_one_key_recorded_in_the_ledger_and_encrypted(
    storage: Storage, clock: FakeUtcClock
) -> None:
    await started(storage, clock)
    await started(storage, clock)
    [key] = await storage.identity.list_signing_keys()
    assert key.algorithm == "EdDSA" and key.retired_at is None
    assert key.private_key.startswith("lgs1.") and "PRIVATE" not in key.private_key
    assert b"PRIVATE KEY" in SECRET.decrypt(key.private_key, purpose=SIGNING_KEY_PURPOSE)
    entries = [e for e in await storage.list_entries() if e.resource_type == "signing_key"]
    assert [(e.action, e.resource_id) for e in entries] == [("signing_key.created", key.kid)]
    assert key.private_key not in json.dumps([e.payload for e in entries])


async def test_another_server_secret_cannot_start_on_the_keys(
    storage: Storage, clock: FakeUtcClock
) -> None:
    await started(storage, clock)
    with pytest.raises(ConfigError, match="another server secret"):
        await started(storage, clock, ServerSecret("a different secret of enough length"))


async def test_a_stored_key_whose_halves_differ_is_refused_at_start(
    storage: Storage, clock: FakeUtcClock
) -> None:
    await started(storage, clock)
    [genuine] = await storage.identity.list_signing_keys()
    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    clock.advance(1)
    swapped = genuine.model_copy(
        update={
            "kid": "swapped",
            "private_key": SECRET.encrypt(other, purpose=SIGNING_KEY_PURPOSE),
            "public_jwk": {**genuine.public_jwk, "kid": "swapped"},
            "created_at": clock(),
        }
    )
    retire = {genuine.kid: (clock(), clock() + timedelta(hours=1))}
    await storage.identity.add_signing_key(swapped, retire=retire, entry=entry("signing_key"))
    with pytest.raises(ConfigError, match="^signing key swapped: its private key does not match"):
        await started(storage, clock)


async def test_a_changed_signing_algorithm_rotates_at_start(
    storage: Storage, clock: FakeUtcClock
) -> None:
    first = await started(storage, clock)
    old = await first.issue(principal())
    clock.advance(1)
    second = await started(storage, clock, signing_algorithm="RS256")
    new, old_key = await storage.identity.list_signing_keys()
    assert new.algorithm == "RS256" and old_key.retired_at == clock()
    assert parts((await second.issue(principal())).access_token)[0]["alg"] == "RS256"
    assert (await second.verify(old.access_token)).name == "ci-bot"


async def test_the_jwks_serves_public_parts_only(storage: Storage, clock: FakeUtcClock) -> None:
    service = await started(storage, clock, signing_algorithm="RS256")
    await service.rotate("admin")
    jwks = await service.jwks()
    assert [set(k) for k in jwks["keys"]] == [{"kty", "n", "e", "kid", "alg", "use"}] * 2
    assert all(k["use"] == "sig" and k["alg"] == "RS256" for k in jwks["keys"])
    for key in jwks["keys"]:
        assert jwt.PyJWK(key).key_id == key["kid"]


async def forged(storage: Storage, service: TokenService, case: str) -> str:
    """Each way an attacker might present a token the platform did not issue as is."""
    token = (await service.issue(principal())).access_token
    header, claims = parts(token)
    record = (await storage.identity.list_signing_keys())[0]
    public = jwt.PyJWK(record.public_jwk).key
    if case == "alg-none":
        return unsigned(header, claims)
    if case == "hs256-public-pem":
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hs256_signed(header, claims, pem)
    if case == "hs256-public-raw":
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hs256_signed(header, claims, raw)
    if case == "hs256-jwk-x":
        return hs256_signed(header, claims, record.public_jwk["x"].encode())
    if case == "tampered":
        return replace_payload(token, tenant="team-b")
    if case == "tampered-roles":
        return replace_payload(token, roles=["admin"])
    if case == "foreign-key":
        other = ed25519.Ed25519PrivateKey.generate()
        return jwt.encode(claims, other, algorithm="EdDSA", headers={"kid": header["kid"]})
    if case == "unknown-kid":
        other = ed25519.Ed25519PrivateKey.generate()
        return jwt.encode(claims, other, algorithm="EdDSA", headers={"kid": "made-up"})
    if case == "no-kid":
        return jwt.encode(claims, ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA")
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("alg-none", "token algorithm must be EdDSA"),
        ("hs256-public-pem", "token algorithm must be EdDSA"),
        ("hs256-public-raw", "token algorithm must be EdDSA"),
        ("hs256-jwk-x", "token algorithm must be EdDSA"),
        ("tampered", "token signature does not verify"),
        ("tampered-roles", "token signature does not verify"),
        ("foreign-key", "token signature does not verify"),
        ("unknown-kid", "unknown signing key"),
        ("no-kid", "token has no kid"),
    ],
)
async def test_forged_tokens_are_refused(
    storage: Storage, clock: FakeUtcClock, case: str, message: str
) -> None:
    service = await started(storage, clock)
    token = await forged(storage, service, case)
    with pytest.raises(AuthenticationRequired) as caught:
        await service.verify(token)
    assert caught.value.detail == message
    assert token not in caught.value.detail


async def test_hs256_with_the_rsa_public_key_is_refused(
    storage: Storage, clock: FakeUtcClock
) -> None:
    service = await started(storage, clock, signing_algorithm="RS256")
    token = (await service.issue(principal())).access_token
    header, claims = parts(token)
    public = jwt.PyJWK((await storage.identity.list_signing_keys())[0].public_jwk).key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(AuthenticationRequired, match="^token algorithm must be RS256$"):
        await service.verify(hs256_signed(header, claims, pem))
    with pytest.raises(AuthenticationRequired, match="^token algorithm must be RS256$"):
        await service.verify(await sign_as_platform(storage, claims, alg="RS512"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"aud": "another-service"}, "token audience is not limit-graph"),
        ({"aud": ["a", "b"]}, "token audience is not limit-graph"),
        ({"iss": "https://evil.example"}, "token issuer is not limit-graph"),
        ({"exp": "later"}, "token exp must be a number of seconds"),
        ({"tenant": "../other"}, "token tenant claim is not a tenant name"),
        ({"roles": [1, 2]}, "token roles claim must be a list of names"),
        ({"sub": 42}, "token sub and jti must be strings"),
    ],
)
async def test_signed_tokens_with_wrong_claims_are_refused(
    storage: Storage, clock: FakeUtcClock, changes: dict[str, Any], message: str
) -> None:
    service = await started(storage, clock)
    token = await sign_as_platform(storage, good_claims(clock, **changes))
    with pytest.raises(AuthenticationRequired, match=message):
        await service.verify(token)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"])
async def test_every_required_claim_is_required(
    storage: Storage, clock: FakeUtcClock, claim: str
) -> None:
    service = await started(storage, clock)
    token = await sign_as_platform(storage, good_claims(clock, **{claim: None}))
    with pytest.raises(AuthenticationRequired, match=f"^token has no {claim} claim$"):
        await service.verify(token)


async def test_times_are_checked_with_the_leeway(storage: Storage, clock: FakeUtcClock) -> None:
    service = await started(storage, clock, token_ttl_s=300, leeway_s=30)
    token = (await service.issue(principal())).access_token
    clock.advance(300 + 29)
    assert (await service.verify(token)).name == "ci-bot"
    clock.advance(1)
    with pytest.raises(AuthenticationRequired, match="^token expired$"):
        await service.verify(token)
    now = int(clock().timestamp())
    later = await sign_as_platform(storage, good_claims(clock, nbf=now + 31, exp=now + 900))
    with pytest.raises(AuthenticationRequired, match="^token is not valid yet$"):
        await service.verify(later)
    future = await sign_as_platform(storage, good_claims(clock, iat=now + 31, exp=now + 900))
    with pytest.raises(AuthenticationRequired, match="^token was issued in the future$"):
        await service.verify(future)
    soon = await sign_as_platform(storage, good_claims(clock, nbf=now + 29))
    assert (await service.verify(soon)).tenant == "team-a"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "three dot-separated parts"),
        ("abc", "three dot-separated parts"),
        ("a.b", "three dot-separated parts"),
        ("a.b.c.d", "three dot-separated parts"),
        ("..sig", "three dot-separated parts"),
        ("ab!c.def.ghi", "must be base64url"),
        ("a b.c.d", "must be base64url"),
        (f"{b64url(b'nope')}.{b64url({})}.", "header is not base64url JSON"),
        (f"{b64url(b'[1]')}.{b64url({})}.", "header is not base64url JSON"),
        ("e.e.e", "header is not base64url JSON"),
    ],
)
async def test_malformed_tokens(
    storage: Storage, clock: FakeUtcClock, token: str, message: str
) -> None:
    service = await started(storage, clock)
    with pytest.raises(AuthenticationRequired, match=f"^token is malformed: .*{message}"):
        await service.verify(token)


async def test_a_signed_payload_that_is_not_json(storage: Storage, clock: FakeUtcClock) -> None:
    service = await started(storage, clock)
    record = (await storage.identity.list_signing_keys())[0]
    pem = SECRET.decrypt(record.private_key, purpose=SIGNING_KEY_PURPOSE)
    private = serialization.load_pem_private_key(pem, password=None)
    token = jwt.api_jws.encode(b"not json", private, algorithm="EdDSA", headers={"kid": record.kid})  # type: ignore[arg-type]
    with pytest.raises(AuthenticationRequired, match="payload is not base64url JSON"):
        await service.verify(token)
    with pytest.raises(AuthenticationRequired, match="payload is not base64url JSON"):
        await service.verify(token.split(".")[0] + ".abcde." + token.split(".")[2])


async def test_rotation_serves_the_old_key_until_its_tokens_expire(
    storage: Storage, clock: FakeUtcClock
) -> None:
    service = await started(storage, clock, token_ttl_s=600, leeway_s=30)
    [old] = await storage.identity.list_signing_keys()
    before = (await service.issue(principal())).access_token
    clock.advance(60)
    new = await service.rotate("alice")
    after = (await service.issue(principal())).access_token
    assert parts(before)[0]["kid"] == old.kid and parts(after)[0]["kid"] == new.kid
    assert [k["kid"] for k in (await service.jwks())["keys"]] == [new.kid, old.kid]
    retired = next(k for k in await storage.identity.list_signing_keys() if k.kid == old.kid)
    assert retired.retired_at == clock() and retired.expires_at == clock() + timedelta(seconds=630)
    assert (await service.verify(before)).name == (await service.verify(after)).name
    rotated = [e for e in await storage.list_entries() if e.action == "signing_key.rotated"]
    assert [(e.actor, e.resource_id, e.payload["retired"]) for e in rotated] == [
        ("alice", new.kid, [old.kid])
    ]
    clock.advance(630)
    assert [k["kid"] for k in (await service.jwks())["keys"]] == [new.kid]
    with pytest.raises(AuthenticationRequired):
        await service.verify(before)
    fresh = (await service.issue(principal())).access_token
    assert (await service.verify(fresh)).tenant == "team-a"


async def test_a_second_process_sees_a_rotation_by_the_first(
    storage: Storage, clock: FakeUtcClock
) -> None:
    first = await started(storage, clock)
    second = await started(storage, clock)
    new = await first.rotate("alice")
    token = (await first.issue(principal())).access_token
    assert parts(token)[0]["kid"] == new.kid
    assert (await second.verify(token)).name == "ci-bot"
    assert parts((await second.issue(principal())).access_token)[0]["kid"] == new.kid
    assert new.kid in [k["kid"] for k in (await second.jwks())["keys"]]


class CountingIdentity:
    """The real identity store, counting how often the signing keys are read."""

    def __init__(self, identity: Any) -> None:
        self.identity = identity
        self.key_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.identity, name)

    async def list_signing_keys(self) -> Any:
        self.key_reads += 1
        return await self.identity.list_signing_keys()


async def test_an_unknown_kid_reloads_only_when_the_store_changed(
    storage: Storage, clock: FakeUtcClock
) -> None:
    identity = CountingIdentity(storage.identity)
    service = TokenService(identity, SECRET, AuthSettings(), clock=clock)  # type: ignore[arg-type]
    await service.start()
    other = await started(storage, clock)
    reads = identity.key_reads
    for _ in range(3):
        with pytest.raises(AuthenticationRequired, match="unknown signing key"):
            await service.verify(await forged(storage, service, "unknown-kid"))
    assert identity.key_reads == reads
    await other.rotate("alice")
    with pytest.raises(AuthenticationRequired, match="unknown signing key"):
        await service.verify(await forged(storage, service, "unknown-kid"))
    assert identity.key_reads == reads + 1


async def test_issue_refuses_a_deleted_principal(storage: Storage, clock: FakeUtcClock) -> None:
    service = await started(storage, clock)
    with pytest.raises(AuthenticationRequired, match="deleted"):
        await service.issue(principal(deleted_at=START))


def test_peek_issuer_reads_iss_without_verifying() -> None:
    token = unsigned({"typ": "JWT"}, {"iss": "https://id.example.org"})
    assert peek_issuer(token) == "https://id.example.org"
    assert peek_issuer(unsigned({}, {"iss": 5})) is None
    assert peek_issuer(f"{b64url({})}.{b64url(b'[1]')}.") is None
    for garbage in ("", "a.b", "a.b.c", "a.!.c"):
        assert peek_issuer(garbage) is None


async def service_account(storage: Storage, **changes: Any) -> tuple[PrincipalRecord, str]:
    made = new_client_credentials(SECRET)
    record = principal(
        client_id=made.client_id, client_secret_digest=made.client_secret_digest, **changes
    )
    if await storage.identity.find_tenant(record.tenant) is None:
        tenant = Tenant(id=uuid.uuid4(), name=record.tenant, created_at=START)
        await storage.identity.create_tenant(tenant, entry=entry("tenant.created"))
    await storage.identity.create_principal(record, entry=entry("principal.created"))
    return record, made.client_secret


async def test_client_credentials_authenticate_a_service_account(
    storage: Storage, clock: FakeUtcClock
) -> None:
    service = await started(storage, clock)
    bot, client_secret = await service_account(storage)
    assert bot.client_id is not None and bot.client_id.startswith("lgc_")
    assert client_secret not in (bot.client_secret_digest or "")
    found = await service.authenticate_client(bot.client_id, client_secret)
    assert found.id == bot.id
    assert (await service.verify((await service.issue(found)).access_token)).subject == str(bot.id)


async def test_every_client_failure_is_the_same_error(
    storage: Storage, clock: FakeUtcClock
) -> None:
    service = await started(storage, clock)
    bot, client_secret = await service_account(storage)
    user, user_secret = await service_account(storage, name="a-person", kind=PrincipalKind.USER)
    gone, gone_secret = await service_account(storage, name="gone")
    await storage.identity.delete_principal(gone.id, at=START, entry=entry("principal.deleted"))
    assert bot.client_id and user.client_id and gone.client_id
    attempts = [
        (bot.client_id, client_secret + "x"),
        (bot.client_id, ""),
        ("lgc_unknown", client_secret),
        ("not-a-client-id", client_secret),
        ("lgc_" + "x" * 200, client_secret),
        (user.client_id, user_secret),
        (gone.client_id, gone_secret),
    ]
    for client_id, given in attempts:
        with pytest.raises(AuthenticationRequired) as caught:
            await service.authenticate_client(client_id, given)
        assert caught.value.detail == "invalid client credentials"
