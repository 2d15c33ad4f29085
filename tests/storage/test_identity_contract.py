"""The identity store contract: one suite, run against every backend's ``storage.identity``.

Each test gets a started, empty store of one kind (memory, file, SQLite, Postgres; the
fixtures are in ``tests/fixtures/backends.py``).  Every write must land with its ledger
entry and a new epoch, or (refused) leave the store, the ledger and the epoch as they
were; the last tests open two stores on one database, as two API processes do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from limit_graph.core.errors import Conflict, InvalidInput, NotFound
from limit_graph.core.identity import (
    ApiKeyRecord,
    Grant,
    GrantPermission,
    PolicyRecord,
    PrincipalKind,
    PrincipalRecord,
    Role,
    SigningKeyRecord,
    Tenant,
)
from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.base import Storage
from limit_graph.storage.identity import encode_key_cursor
from limit_graph.storage.ledger import EntryDraft, verify_entries
from limit_graph.storage.paging import encode_cursor
from tests.fixtures.backends import Backend
from tests.fixtures.records import T0

# --- records -------------------------------------------------------------------------


def entry(action: str, resource_id: str = "-", **payload: Any) -> EntryDraft:
    return EntryDraft(
        actor="admin",
        action=action,
        resource_type="identity",
        resource_id=resource_id,
        session_id=None,
        payload=payload or {"action": action},
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_tenant(name: str, *, created_at: datetime = T0) -> Tenant:
    return Tenant(id=uuid.uuid4(), name=name, created_at=created_at)


def make_principal(
    name: str,
    tenant: str = "acme",
    *,
    client_id: str | None = None,
    created_at: datetime = T0,
    groups: tuple[str, ...] = (),
) -> PrincipalRecord:
    return PrincipalRecord(
        id=uuid.uuid4(),
        name=name,
        tenant=tenant,
        kind=PrincipalKind.SERVICE if client_id else PrincipalKind.USER,
        roles=[Role.AUTHOR],
        groups=list(groups),
        client_id=client_id,
        client_secret_digest="d" * 64 if client_id else None,
        created_at=created_at,
    )


def make_key(
    principal: PrincipalRecord, key_id: str | None = None, *, created_at: datetime = T0
) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=key_id or uuid.uuid4().hex[:16],
        principal_id=principal.id,
        tenant=principal.tenant,
        digest="e" * 64,
        scopes=["sessions:read"],
        created_at=created_at,
    )


def make_signing_key(kid: str, *, created_at: datetime = T0) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=kid,
        algorithm="EdDSA",
        private_key="encrypted:" + kid,
        public_jwk={"kty": "OKP", "crv": "Ed25519", "x": kid, "kid": kid},
        created_at=created_at,
    )


def make_policy(
    policy_id: str, text: str = "permit(principal, action, resource);", **extra: Any
) -> PolicyRecord:
    fields: dict[str, Any] = {
        "id": policy_id,
        "version": 0,
        "tenant": "acme",
        "text": text,
        "updated_by": "admin",
        "updated_at": T0,
    }
    return PolicyRecord(**(fields | extra))


def make_grant(
    session_id: uuid.UUID,
    *,
    principal: PrincipalRecord | None = None,
    group: str | None = None,
    permission: GrantPermission = GrantPermission.READ,
    tenant: str = "acme",
    created_at: datetime = T0,
) -> Grant:
    return Grant(
        id=uuid.uuid4(),
        session_id=session_id,
        tenant=tenant,
        principal_id=principal.id if principal else None,
        group=group,
        permission=permission,
        created_by="admin",
        created_at=created_at,
    )


@dataclass(frozen=True)
class Mark:
    """The epoch and the ledger at one moment, to tell whether anything was written."""

    epoch: int
    entries: list[ProvenanceEntry]


async def mark(storage: Storage) -> Mark:
    return Mark(await storage.identity.identity_epoch(), await storage.list_entries())


async def assert_unchanged(storage: Storage, before: Mark) -> None:
    assert await mark(storage) == before


async def assert_one_write(storage: Storage, before: Mark, action: str) -> ProvenanceEntry:
    """Exactly one entry (``action``) was appended and the epoch moved on by one."""
    after = await mark(storage)
    assert after.epoch == before.epoch + 1
    assert after.entries[:-1] == before.entries
    assert len(after.entries) == len(before.entries) + 1
    assert after.entries[-1].action == action
    assert verify_entries(after.entries) is None
    return after.entries[-1]


async def add_principal(storage: Storage, principal: PrincipalRecord) -> PrincipalRecord:
    return await storage.identity.create_principal(principal, entry=entry("principal.created"))


# --- tenants -------------------------------------------------------------------------


async def test_tenants_are_created_found_and_listed(storage: Storage) -> None:
    ids = storage.identity
    before = await mark(storage)
    b = await ids.create_tenant(make_tenant("team-b"), entry=entry("tenant.created", "team-b"))
    stored = await assert_one_write(storage, before, "tenant.created")
    assert stored.resource_id == "team-b" and stored.session_id is None
    a = await ids.create_tenant(make_tenant("team-a", created_at=at(1)), entry=entry("t"))

    assert await ids.find_tenant("team-a") == a
    assert await ids.find_tenant(str(b.id)) == b
    assert await ids.find_tenant("team-c") is None
    assert await ids.find_tenant(str(uuid.uuid4())) is None
    assert await ids.find_tenant(str(b.id).upper()) is None
    assert await ids.list_tenants() == [a, b]


async def test_a_taken_tenant_name_or_id_is_a_conflict_that_writes_nothing(
    storage: Storage,
) -> None:
    ids = storage.identity
    first = await ids.create_tenant(make_tenant("acme"), entry=entry("tenant.created"))
    before = await mark(storage)
    with pytest.raises(Conflict, match="'acme' exists"):
        await ids.create_tenant(make_tenant("acme"), entry=entry("tenant.created"))
    clone = first.model_copy(update={"name": "other"})
    with pytest.raises(Conflict, match=str(first.id)):
        await ids.create_tenant(clone, entry=entry("tenant.created"))
    await assert_unchanged(storage, before)
    assert await ids.list_tenants() == [first]


async def test_a_tenant_named_like_another_tenants_id_is_found_by_name_first(
    storage: Storage,
) -> None:
    ids = storage.identity
    first = await ids.create_tenant(make_tenant("first"), entry=entry("t"))
    lookalike = await ids.create_tenant(make_tenant(str(first.id)), entry=entry("t"))
    assert await ids.find_tenant(str(first.id)) == lookalike


# --- principals ----------------------------------------------------------------------


async def test_principals_are_created_and_found(storage: Storage) -> None:
    ids = storage.identity
    user = make_principal("alice", groups=("physics",))
    service = make_principal("runner", client_id="svc-runner-1")
    before = await mark(storage)
    assert await add_principal(storage, user) == user
    await assert_one_write(storage, before, "principal.created")
    await add_principal(storage, service)

    assert await ids.get_principal(user.id) == user
    assert await ids.get_principal(uuid.uuid4()) is None
    assert await ids.find_principal("acme", "alice") == user
    assert await ids.find_principal("other", "alice") is None
    assert await ids.find_principal_by_client_id("svc-runner-1") == service
    assert await ids.find_principal_by_client_id("svc-unknown") is None


async def test_principal_conflicts_write_nothing(storage: Storage) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice", client_id="c-1"))
    before = await mark(storage)
    with pytest.raises(Conflict, match="'alice' exists in tenant 'acme'"):
        await add_principal(storage, make_principal("alice"))
    with pytest.raises(Conflict, match="client id 'c-1' is taken"):
        await add_principal(storage, make_principal("bob", "other", client_id="c-1"))
    with pytest.raises(Conflict, match=str(alice.id)):
        await add_principal(storage, alice.model_copy(update={"name": "carol", "client_id": None}))
    await assert_unchanged(storage, before)
    assert (await ids.list_principals(None, limit=10, cursor=None)).items == [alice]

    # The same name in another tenant is another principal.
    other = await add_principal(storage, make_principal("alice", "other"))
    assert await ids.find_principal("other", "alice") == other


async def test_list_principals_pages_in_time_and_id_order(storage: Storage) -> None:
    ids = storage.identity
    made = [
        make_principal(f"p{n}", "acme" if n % 3 else "other", created_at=at(n // 2))
        for n in range(9)
    ]
    for principal in reversed(made):
        await add_principal(storage, principal)
    gone = made[4]
    await ids.delete_principal(gone.id, at=at(100), entry=entry("principal.deleted"))

    def expected(tenant: str | None) -> list[PrincipalRecord]:
        live = [p for p in made if p is not gone and tenant in (None, p.tenant)]
        return sorted(live, key=lambda p: (p.created_at, p.id))

    for tenant in (None, "acme", "other"):
        seen: list[PrincipalRecord] = []
        cursor: str | None = None
        while True:
            page = await ids.list_principals(tenant, limit=2, cursor=cursor)
            seen += page.items
            if page.next_cursor is None:
                break
            assert len(page.items) == 2
            cursor = page.next_cursor
        assert seen == expected(tenant)

    everyone = expected(None)
    exact = await ids.list_principals(None, limit=len(everyone), cursor=None)
    assert exact.items == everyone and exact.next_cursor is None
    after = encode_cursor((everyone[2].created_at, everyone[2].id))
    assert (await ids.list_principals(None, limit=100, cursor=after)).items == everyone[3:]
    assert (await ids.list_principals("nobody", limit=5, cursor=None)).items == []


@pytest.mark.parametrize("cursor", ["not-a-cursor", encode_key_cursor((T0, "k"))])
async def test_a_malformed_principal_cursor_or_page_size_is_invalid_input(
    storage: Storage, cursor: str
) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        await storage.identity.list_principals(None, limit=5, cursor=cursor)
    with pytest.raises(InvalidInput, match="page size"):
        await storage.identity.list_principals(None, limit=0, cursor=None)


async def test_deleting_a_principal_revokes_its_keys_and_removes_its_grants(
    storage: Storage,
) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice", client_id="c-alice"))
    bob = await add_principal(storage, make_principal("bob"))
    session = uuid.uuid4()
    old_key = await ids.create_api_key(make_key(alice, "k-old"), entry=entry("key.created"))
    early = await ids.revoke_api_key(old_key.id, at=at(5), entry=entry("key.revoked"))
    live_key = await ids.create_api_key(make_key(alice, "k-live"), entry=entry("key.created"))
    bobs_key = await ids.create_api_key(make_key(bob, "k-bob"), entry=entry("key.created"))
    to_alice = make_grant(session, principal=alice, permission=GrantPermission.EXECUTE)
    to_bob = make_grant(session, principal=bob)
    to_group = make_grant(session, group="physics", created_at=at(1))
    elsewhere = make_grant(uuid.uuid4(), principal=alice)
    for grant in (to_alice, to_bob, to_group, elsewhere):
        await ids.create_grant(grant, entry=entry("grant.created"))

    before = await mark(storage)
    deleted = await ids.delete_principal(alice.id, at=at(60), entry=entry("principal.deleted"))
    await assert_one_write(storage, before, "principal.deleted")
    assert deleted == alice.model_copy(update={"deleted_at": at(60)})
    assert await ids.get_principal(alice.id) == deleted
    assert await ids.find_principal("acme", "alice") is None
    assert await ids.find_principal_by_client_id("c-alice") is None
    assert await ids.get_api_key(live_key.id) == live_key.model_copy(update={"revoked_at": at(60)})
    assert await ids.get_api_key(old_key.id) == early
    assert await ids.get_api_key(bobs_key.id) == bobs_key
    assert sorted(await ids.list_grants(session), key=lambda g: g.created_at) == [
        to_bob,
        to_group,
    ]
    assert await ids.list_grants(elsewhere.session_id) == []
    assert (await ids.list_principals(None, limit=10, cursor=None)).items == [bob]

    # Deleting again, or an unknown principal, is a no-op.
    before = await mark(storage)
    assert await ids.delete_principal(alice.id, at=at(90), entry=entry("again")) is None
    assert await ids.delete_principal(uuid.uuid4(), at=at(90), entry=entry("again")) is None
    await assert_unchanged(storage, before)
    assert (await ids.get_principal(alice.id)) == deleted


async def test_a_deleted_principals_name_is_free_but_its_client_id_is_not(
    storage: Storage,
) -> None:
    ids = storage.identity
    first = await add_principal(storage, make_principal("alice", client_id="c-1"))
    await ids.delete_principal(first.id, at=at(1), entry=entry("principal.deleted"))
    second = await add_principal(storage, make_principal("alice", client_id="c-2"))
    assert await ids.find_principal("acme", "alice") == second
    assert await ids.get_principal(first.id) is not None
    with pytest.raises(Conflict, match="client id 'c-1'"):
        await add_principal(storage, make_principal("carol", client_id="c-1"))
    # Deleted once more, the second frees the name too; the first stays deleted.
    await ids.delete_principal(second.id, at=at(2), entry=entry("principal.deleted"))
    third = await add_principal(storage, make_principal("alice"))
    assert await ids.find_principal("acme", "alice") == third


# --- API keys ------------------------------------------------------------------------


async def test_api_keys_are_created_read_and_refused_when_taken(storage: Storage) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice"))
    key = make_key(alice, "k1").model_copy(update={"expires_at": at(3600)})
    before = await mark(storage)
    assert await ids.create_api_key(key, entry=entry("key.created", "k1")) == key
    await assert_one_write(storage, before, "key.created")
    assert await ids.get_api_key("k1") == key
    assert await ids.get_api_key("k2") is None

    before = await mark(storage)
    with pytest.raises(Conflict, match="'k1' exists"):
        await ids.create_api_key(make_key(alice, "k1"), entry=entry("key.created"))
    await assert_unchanged(storage, before)
    assert await ids.get_api_key("k1") == key


async def test_an_api_key_needs_a_live_principal_of_its_tenant(storage: Storage) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice"))
    gone = await add_principal(storage, make_principal("gone"))
    await ids.delete_principal(gone.id, at=at(1), entry=entry("principal.deleted"))
    before = await mark(storage)
    with pytest.raises(NotFound, match="unknown or deleted"):
        await ids.create_api_key(make_key(gone), entry=entry("key.created"))
    with pytest.raises(NotFound, match="unknown or deleted"):
        await ids.create_api_key(make_key(make_principal("nobody")), entry=entry("key.created"))
    foreign = make_key(alice).model_copy(update={"tenant": "other"})
    with pytest.raises(InvalidInput, match="tenant 'other'"):
        await ids.create_api_key(foreign, entry=entry("key.created"))
    await assert_unchanged(storage, before)
    assert (await ids.list_api_keys(None, limit=10, cursor=None)).items == []


async def test_list_api_keys_pages_by_tenant_and_principal(storage: Storage) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice"))
    bob = await add_principal(storage, make_principal("bob"))
    olga = await add_principal(storage, make_principal("olga", "other"))
    owners = [alice, bob, olga]
    keys = [make_key(owners[n % 3], f"key{n:02d}", created_at=at(n // 3)) for n in range(10)]
    for key in reversed(keys):
        await ids.create_api_key(key, entry=entry("key.created"))
    revoked = await ids.revoke_api_key("key04", at=at(30), entry=entry("key.revoked"))
    keys[4] = revoked
    assert revoked is not None

    async def every(tenant: str | None, principal_id: uuid.UUID | None) -> list[ApiKeyRecord]:
        seen: list[ApiKeyRecord] = []
        cursor: str | None = None
        while True:
            page = await ids.list_api_keys(
                tenant, principal_id=principal_id, limit=3, cursor=cursor
            )
            seen += page.items
            if page.next_cursor is None:
                return seen
            assert len(page.items) == 3
            cursor = page.next_cursor

    def ordered(chosen: list[ApiKeyRecord]) -> list[ApiKeyRecord]:
        return sorted(chosen, key=lambda k: (k.created_at, k.id))

    assert await every(None, None) == ordered(keys)
    assert await every("acme", None) == ordered([k for k in keys if k.tenant == "acme"])
    assert await every("acme", bob.id) == ordered([k for k in keys if k.principal_id == bob.id])
    assert await every("other", alice.id) == []
    assert await every(None, olga.id) == ordered([k for k in keys if k.principal_id == olga.id])
    with pytest.raises(InvalidInput, match="cursor"):
        await ids.list_api_keys(None, limit=3, cursor=encode_cursor((T0, alice.id)))


async def test_revoking_a_key_keeps_the_first_time(storage: Storage) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice"))
    key = await ids.create_api_key(make_key(alice, "k1"), entry=entry("key.created"))
    before = await mark(storage)
    done = await ids.revoke_api_key("k1", at=at(10), entry=entry("key.revoked", "k1"))
    assert done == key.model_copy(update={"revoked_at": at(10)})
    await assert_one_write(storage, before, "key.revoked")

    before = await mark(storage)
    assert await ids.revoke_api_key("k1", at=at(20), entry=entry("key.revoked")) == done
    assert await ids.revoke_api_key("k9", at=at(20), entry=entry("key.revoked")) is None
    await assert_unchanged(storage, before)
    assert await ids.get_api_key("k1") == done


async def test_touching_keys_keeps_the_latest_use_and_writes_no_entry(storage: Storage) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice"))
    k1 = await ids.create_api_key(make_key(alice, "k1"), entry=entry("key.created"))
    k2 = await ids.create_api_key(make_key(alice, "k2"), entry=entry("key.created"))
    k3 = await ids.create_api_key(make_key(alice, "k3"), entry=entry("key.created"))
    before = await mark(storage)
    await ids.touch_api_keys({"k1": at(10), "k2": at(20), "unknown": at(30)})
    await ids.touch_api_keys({"k1": at(5), "k2": at(25)})
    await ids.touch_api_keys({})
    await assert_unchanged(storage, before)
    assert await ids.get_api_key("k1") == k1.model_copy(update={"last_used_at": at(10)})
    assert await ids.get_api_key("k2") == k2.model_copy(update={"last_used_at": at(25)})
    assert await ids.get_api_key("k3") == k3

    # A revoked key keeps its last use, and the revocation does not undo a touch.
    await ids.revoke_api_key("k2", at=at(40), entry=entry("key.revoked"))
    await ids.touch_api_keys({"k2": at(50)})
    listed = (await ids.list_api_keys(None, limit=10, cursor=None)).items
    assert listed[1] == k2.model_copy(update={"last_used_at": at(50), "revoked_at": at(40)})


# --- signing keys --------------------------------------------------------------------


async def test_signing_keys_rotate_in_one_write(storage: Storage) -> None:
    ids = storage.identity
    first = make_signing_key("kid-1")
    before = await mark(storage)
    await ids.add_signing_key(first, retire={}, entry=entry("signing_key.added"))
    await assert_one_write(storage, before, "signing_key.added")
    second = make_signing_key("kid-2", created_at=at(100))
    before = await mark(storage)
    stored = await ids.add_signing_key(
        second, retire={"kid-1": (at(100), at(3700))}, entry=entry("signing_key.rotated")
    )
    await assert_one_write(storage, before, "signing_key.rotated")
    assert stored == second
    retired = first.model_copy(update={"retired_at": at(100), "expires_at": at(3700)})
    assert await ids.list_signing_keys() == [second, retired]


async def test_a_taken_kid_or_an_unknown_kid_to_retire_writes_nothing(storage: Storage) -> None:
    ids = storage.identity
    first = make_signing_key("kid-1")
    await ids.add_signing_key(first, retire={}, entry=entry("signing_key.added"))
    before = await mark(storage)
    with pytest.raises(Conflict, match="'kid-1' exists"):
        await ids.add_signing_key(make_signing_key("kid-1"), retire={}, entry=entry("x"))
    with pytest.raises(NotFound, match="kid-9"):
        await ids.add_signing_key(
            make_signing_key("kid-2"),
            retire={"kid-1": (at(1), at(2)), "kid-9": (at(1), at(2))},
            entry=entry("x"),
        )
    await assert_unchanged(storage, before)
    assert await ids.list_signing_keys() == [first]


# --- policies ------------------------------------------------------------------------


async def test_policies_are_versioned(storage: Storage) -> None:
    ids = storage.identity
    before = await mark(storage)
    v1 = await ids.put_policy(
        make_policy("viewers", version=7), expected_version=None, entry=entry("policy.put")
    )
    await assert_one_write(storage, before, "policy.put")
    assert v1 == make_policy("viewers", version=1)
    v2 = await ids.put_policy(
        make_policy("viewers", "forbid(principal, action, resource);", updated_at=at(1)),
        expected_version=1,
        entry=entry("policy.put"),
    )
    assert v2.version == 2
    authors = await ids.put_policy(
        make_policy("authors"), expected_version=0, entry=entry("policy.put")
    )
    assert authors.version == 1
    assert await ids.get_policy("viewers") == v2
    assert await ids.get_policy("nobody") is None
    assert await ids.list_policies() == [authors, v2]
    assert await ids.policy_history("viewers") == [v1, v2]
    assert await ids.policy_history("nobody") == []


async def test_a_stale_expected_version_is_a_conflict_naming_the_current_one(
    storage: Storage,
) -> None:
    ids = storage.identity
    await ids.put_policy(make_policy("p"), expected_version=None, entry=entry("policy.put"))
    await ids.put_policy(make_policy("p"), expected_version=None, entry=entry("policy.put"))
    before = await mark(storage)
    with pytest.raises(Conflict, match="'p' is at version 2, not 1"):
        await ids.put_policy(make_policy("p"), expected_version=1, entry=entry("policy.put"))
    with pytest.raises(Conflict, match="version 2, not 0"):
        await ids.put_policy(make_policy("p"), expected_version=0, entry=entry("policy.put"))
    with pytest.raises(Conflict, match="'q' does not exist"):
        await ids.put_policy(make_policy("q"), expected_version=3, entry=entry("policy.put"))
    await assert_unchanged(storage, before)
    assert [p.version for p in await ids.policy_history("p")] == [1, 2]
    assert await ids.policy_history("q") == []


async def test_a_deleted_policy_is_a_version_and_may_come_back(storage: Storage) -> None:
    ids = storage.identity
    kept = await ids.put_policy(make_policy("a"), expected_version=None, entry=entry("put"))
    await ids.put_policy(make_policy("b"), expected_version=None, entry=entry("put"))
    gone = await ids.put_policy(
        make_policy("b", deleted=True), expected_version=1, entry=entry("policy.deleted")
    )
    assert gone.version == 2 and gone.deleted
    assert await ids.get_policy("b") is None
    assert await ids.list_policies() == [kept]
    back = await ids.put_policy(make_policy("b"), expected_version=2, entry=entry("put"))
    assert back.version == 3 and not back.deleted
    assert await ids.list_policies() == [kept, back]
    assert [(p.version, p.deleted) for p in await ids.policy_history("b")] == [
        (1, False),
        (2, True),
        (3, False),
    ]


# --- grants --------------------------------------------------------------------------


async def test_grants_are_created_listed_and_deleted(storage: Storage) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice"))
    session = uuid.uuid4()
    read = make_grant(session, principal=alice, created_at=at(2))
    execute = make_grant(
        session, principal=alice, permission=GrantPermission.EXECUTE, created_at=at(1)
    )
    group = make_grant(session, group="physics", created_at=at(3))
    before = await mark(storage)
    assert await ids.create_grant(read, entry=entry("grant.created")) == read
    await assert_one_write(storage, before, "grant.created")
    await ids.create_grant(execute, entry=entry("grant.created"))
    await ids.create_grant(group, entry=entry("grant.created"))
    assert await ids.list_grants(session) == [execute, read, group]
    assert await ids.list_grants(uuid.uuid4()) == []

    before = await mark(storage)
    assert await ids.delete_grant(read.id, entry=entry("grant.deleted")) == read
    await assert_one_write(storage, before, "grant.deleted")
    assert await ids.list_grants(session) == [execute, group]
    before = await mark(storage)
    assert await ids.delete_grant(read.id, entry=entry("grant.deleted")) is None
    await assert_unchanged(storage, before)
    # The same grant may be given again once removed.
    again = make_grant(session, principal=alice)
    await ids.create_grant(again, entry=entry("grant.created"))
    assert again in await ids.list_grants(session)


async def test_identical_or_malformed_grants_write_nothing(storage: Storage) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice"))
    gone = await add_principal(storage, make_principal("gone"))
    await ids.delete_principal(gone.id, at=at(1), entry=entry("principal.deleted"))
    session = uuid.uuid4()
    first = await ids.create_grant(make_grant(session, principal=alice), entry=entry("g"))
    to_group = make_grant(session, group="physics", created_at=at(1))
    group = await ids.create_grant(to_group, entry=entry("g"))
    before = await mark(storage)
    with pytest.raises(Conflict, match="already holds read"):
        await ids.create_grant(make_grant(session, principal=alice), entry=entry("g"))
    with pytest.raises(Conflict, match="group:physics already holds read"):
        await ids.create_grant(make_grant(session, group="physics"), entry=entry("g"))
    with pytest.raises(Conflict, match=str(first.id)):
        await ids.create_grant(
            first.model_copy(update={"session_id": uuid.uuid4()}), entry=entry("g")
        )
    both = make_grant(session, principal=alice).model_copy(update={"group": "physics"})
    with pytest.raises(InvalidInput, match="either a principal or a group"):
        await ids.create_grant(both, entry=entry("g"))
    with pytest.raises(InvalidInput, match="either a principal or a group"):
        await ids.create_grant(make_grant(session), entry=entry("g"))
    with pytest.raises(NotFound, match="unknown or deleted"):
        await ids.create_grant(make_grant(session, principal=gone), entry=entry("g"))
    with pytest.raises(InvalidInput, match="tenant 'other'"):
        await ids.create_grant(
            make_grant(session, principal=alice, tenant="other"), entry=entry("g")
        )
    await assert_unchanged(storage, before)
    assert await ids.list_grants(session) == [first, group]


# --- every write, its entry and the epoch ----------------------------------------------


async def test_every_write_but_touch_moves_the_epoch_once_with_its_entry(
    storage: Storage,
) -> None:
    ids = storage.identity
    assert await ids.identity_epoch() == 0
    alice = make_principal("alice")
    grant = make_grant(uuid.uuid4(), principal=alice)
    sign = make_signing_key("s1")
    writes: list[tuple[str, Callable[[EntryDraft], Awaitable[object]]]] = [
        ("tenant.created", lambda e: ids.create_tenant(make_tenant("acme"), entry=e)),
        ("principal.created", lambda e: ids.create_principal(alice, entry=e)),
        ("key.created", lambda e: ids.create_api_key(make_key(alice, "k1"), entry=e)),
        ("key.revoked", lambda e: ids.revoke_api_key("k1", at=at(1), entry=e)),
        ("signing_key.added", lambda e: ids.add_signing_key(sign, retire={}, entry=e)),
        ("policy.put", lambda e: ids.put_policy(make_policy("p"), expected_version=None, entry=e)),
        ("grant.created", lambda e: ids.create_grant(grant, entry=e)),
        ("grant.deleted", lambda e: ids.delete_grant(grant.id, entry=e)),
        ("principal.deleted", lambda e: ids.delete_principal(alice.id, at=at(2), entry=e)),
    ]
    for n, (action, write) in enumerate(writes, start=1):
        before = await mark(storage)
        await write(entry(action))
        stored = await assert_one_write(storage, before, action)
        assert stored.payload == {"action": action}
        assert await ids.identity_epoch() == n
    before = await mark(storage)
    await ids.touch_api_keys({"k1": at(3)})
    await assert_unchanged(storage, before)


async def test_an_entry_that_cannot_be_hashed_leaves_the_change_unwritten(
    storage: Storage,
) -> None:
    ids = storage.identity
    bad = entry("tenant.created", payload=float("nan"))
    before = await mark(storage)
    with pytest.raises(InvalidInput):
        await ids.create_tenant(make_tenant("acme"), entry=bad)
    await assert_unchanged(storage, before)
    assert await ids.list_tenants() == []
    # The store carries on: the next write is the ledger's first entry.
    await ids.create_tenant(make_tenant("acme"), entry=entry("tenant.created"))
    assert [e.index for e in await storage.list_entries()] == [0]


async def test_bad_ids_and_naive_times_are_invalid_input(storage: Storage) -> None:
    ids = storage.identity
    alice = await add_principal(storage, make_principal("alice"))
    naive = T0.replace(tzinfo=None)
    before = await mark(storage)
    e = entry("x")
    refusals: list[Callable[[], Awaitable[object]]] = [
        lambda: ids.create_tenant(make_tenant("acme", created_at=naive), entry=e),
        lambda: ids.create_principal(make_principal("bob", client_id="has space"), entry=e),
        lambda: ids.create_api_key(make_key(alice, "x" * 129), entry=e),
        lambda: ids.create_api_key(make_key(alice, "nul\x00"), entry=e),
        lambda: ids.add_signing_key(make_signing_key("é"), retire={}, entry=e),
        lambda: ids.add_signing_key(make_signing_key("s"), retire={"s0": (naive, T0)}, entry=e),
        lambda: ids.put_policy(make_policy(""), expected_version=None, entry=e),
        lambda: ids.revoke_api_key("k1", at=naive, entry=e),
        lambda: ids.delete_principal(alice.id, at=naive, entry=e),
        lambda: ids.touch_api_keys({"k1": naive}),
        lambda: ids.create_grant(make_grant(uuid.uuid4(), group="g", created_at=naive), entry=e),
        lambda: ids.create_grant(make_grant(uuid.uuid4(), group="Not A Name"), entry=e),
        lambda: ids.create_principal(make_principal("bob", "t" * 200), entry=e),
        lambda: ids.create_api_key(make_key(alice).model_copy(update={"tenant": "a\x00"}), entry=e),
        lambda: ids.put_policy(make_policy("p", tenant="UPPER"), expected_version=None, entry=e),
    ]
    for refusal in refusals:
        with pytest.raises(InvalidInput):
            await refusal()
    await assert_unchanged(storage, before)


async def test_concurrent_writers_of_one_name_have_one_winner(storage: Storage) -> None:
    ids = storage.identity
    results = await asyncio.gather(
        *(ids.create_tenant(make_tenant("acme"), entry=entry("t")) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Tenant) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 4
    assert await ids.identity_epoch() == 1
    assert await storage.ledger_size() == 1


# --- durability and sharing ------------------------------------------------------------


async def test_identity_records_survive_a_reopen(durable_backend: Backend) -> None:
    store = durable_backend.open()
    await store.start()
    try:
        ids = store.identity
        tenant = await ids.create_tenant(make_tenant("acme"), entry=entry("t"))
        alice = await add_principal(store, make_principal("alice", client_id="c-a"))
        bob = await add_principal(store, make_principal("bob"))
        key = await ids.create_api_key(make_key(bob, "k1"), entry=entry("k"))
        await ids.touch_api_keys({"k1": at(9)})
        signing = make_signing_key("s1")
        await ids.add_signing_key(signing, retire={}, entry=entry("s"))
        versions = [
            await ids.put_policy(make_policy("p"), expected_version=None, entry=entry("p"))
            for _ in range(3)
        ]
        session = uuid.uuid4()
        kept = await ids.create_grant(make_grant(session, group="physics"), entry=entry("g"))
        dropped = await ids.create_grant(make_grant(session, principal=alice), entry=entry("g"))
        await ids.delete_grant(dropped.id, entry=entry("g"))
        deleted = await ids.delete_principal(alice.id, at=at(20), entry=entry("d"))
        epoch = await ids.identity_epoch()
        entries = await store.list_entries()
    finally:
        await store.close()

    reopened = durable_backend.open()
    await reopened.start()
    try:
        ids = reopened.identity
        assert await ids.identity_epoch() == epoch == 12
        assert await reopened.list_entries() == entries
        assert await ids.list_tenants() == [tenant]
        assert await ids.get_principal(alice.id) == deleted
        assert await ids.find_principal("acme", "alice") is None
        assert await ids.find_principal_by_client_id("c-a") is None
        assert (await ids.list_principals(None, limit=5, cursor=None)).items == [bob]
        assert await ids.get_api_key("k1") == key.model_copy(update={"last_used_at": at(9)})
        assert await ids.list_signing_keys() == [signing]
        assert await ids.policy_history("p") == versions
        assert await ids.list_grants(session) == [kept]
        with pytest.raises(Conflict):
            await add_principal(reopened, make_principal("carol", client_id="c-a"))
        await ids.create_tenant(make_tenant("next"), entry=entry("t"))
        assert await ids.identity_epoch() == epoch + 1
        assert verify_entries(await reopened.list_entries()) is None
    finally:
        await reopened.close()


async def test_two_stores_on_one_database_see_each_others_writes_and_epoch(
    two_stores: tuple[Storage, Storage],
) -> None:
    one, two = two_stores
    await one.identity.create_tenant(make_tenant("acme"), entry=entry("t"))
    alice = await add_principal(two, make_principal("alice"))
    assert await one.identity.identity_epoch() == await two.identity.identity_epoch() == 2
    key = await one.identity.create_api_key(make_key(alice, "k1"), entry=entry("k"))
    seen = await two.identity.identity_epoch()
    revoked = await two.identity.revoke_api_key("k1", at=at(5), entry=entry("r"))
    assert await one.identity.identity_epoch() == seen + 1
    assert (
        await one.identity.get_api_key("k1")
        == revoked
        == key.model_copy(update={"revoked_at": at(5)})
    )
    await two.identity.put_policy(make_policy("p"), expected_version=None, entry=entry("p"))
    with pytest.raises(Conflict, match="version 1, not 0"):
        await one.identity.put_policy(make_policy("p"), expected_version=0, entry=entry("p"))
    await one.identity.touch_api_keys({"k1": at(7)})
    assert (await two.identity.get_api_key("k1")) == key.model_copy(
        update={"revoked_at": at(5), "last_used_at": at(7)}
    )
    assert verify_entries(await two.list_entries()) is None


async def test_two_stores_racing_for_names_and_versions_have_one_winner_each(
    two_stores: tuple[Storage, Storage],
) -> None:
    one, two = two_stores
    tenants = await asyncio.gather(
        *(s.identity.create_tenant(make_tenant("acme"), entry=entry("t")) for s in (one, two) * 3),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Tenant) for r in tenants) == 1
    assert all(isinstance(r, Tenant | Conflict) for r in tenants)

    principals = await asyncio.gather(
        *(add_principal(s, make_principal("alice")) for s in (one, two) * 3),
        return_exceptions=True,
    )
    assert sum(isinstance(r, PrincipalRecord) for r in principals) == 1
    assert all(isinstance(r, PrincipalRecord | Conflict) for r in principals)

    puts = await asyncio.gather(
        *(
            s.identity.put_policy(make_policy("p"), expected_version=0, entry=entry("p"))
            for s in (one, two) * 3
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, PolicyRecord) for r in puts) == 1
    assert all(isinstance(r, PolicyRecord | Conflict) for r in puts)

    assert await one.identity.identity_epoch() == 3
    entries = await two.list_entries()
    assert len(entries) == 3 and verify_entries(entries) is None
