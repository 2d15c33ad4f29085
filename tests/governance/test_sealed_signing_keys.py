"""Signing keys in the envelope: a token service over a store with a key ring seals new
private keys under its data keys, still reads keys made under the server secret, and
reads them again after a data-key rotation resealed them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from limit_graph.core.auth_settings import AuthSettings
from limit_graph.core.errors import SealError
from limit_graph.core.identity import PrincipalKind, PrincipalRecord, Role
from limit_graph.core.sealing import is_sealed, token_key_id
from limit_graph.governance.secrets import ServerSecret
from limit_graph.governance.tokens import TokenService
from limit_graph.storage.base import Storage
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.file import FileStorage
from limit_graph.storage.memory import MemoryStorage
from tests.fixtures.records import T0
from tests.fixtures.sealing import new_keks

SECRET = ServerSecret("a server secret long enough for the tests")
KEKS = new_keks()


@pytest.fixture(params=["memory", "file", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store: Storage
    if request.param == "memory":
        store = MemoryStorage(keks=KEKS, key_refresh_s=0)
    elif request.param == "file":
        store = FileStorage(tmp_path / "store", keks=KEKS, key_refresh_s=0)
    else:
        store = DatabaseStorage(
            f"sqlite+aiosqlite:///{tmp_path / 's.db'}", keks=KEKS, key_refresh_s=0
        )
    await store.start()
    try:
        yield store
    finally:
        await store.close()


PRINCIPAL = PrincipalRecord(
    id=uuid.uuid4(),
    name="ci-bot",
    tenant="team-a",
    kind=PrincipalKind.SERVICE,
    roles=[Role.AUTHOR],
    created_at=T0,
)


async def _round_trip(tokens: TokenService) -> None:
    issued = await tokens.issue(PRINCIPAL)
    assert (await tokens.verify(issued.access_token)).tenant == "team-a"


async def test_a_key_made_under_the_server_secret_still_signs_until_rotated(
    storage: Storage,
) -> None:
    before = TokenService(storage.identity, SECRET, AuthSettings())  # as made before sealing
    await before.start()
    [legacy] = await storage.identity.list_signing_keys()
    assert legacy.private_key.startswith("lgs1.")
    tokens = TokenService(storage.identity, SECRET, AuthSettings(), keyring=storage.keyring)
    await tokens.start()
    await _round_trip(tokens)
    rotated = await tokens.rotate("admin")
    assert is_sealed(rotated.private_key)
    assert token_key_id(rotated.private_key) == storage.keyring.active_id()
    await _round_trip(tokens)


async def test_a_data_key_rotation_reseals_the_signing_keys(storage: Storage) -> None:
    tokens = TokenService(storage.identity, SECRET, AuthSettings(), keyring=storage.keyring)
    await tokens.start()
    await tokens.rotate("admin")
    old = storage.keyring.active_id()
    assert old is not None
    await storage.keyring.rotate("admin")
    cursor: str | None = None
    resealed = 0
    while True:
        batch = await storage.keyring.reseal(old, limit=1, cursor=cursor)
        resealed += batch.resealed
        if batch.cursor is None:
            break
        cursor = batch.cursor
    assert resealed == 2, "both signing keys, one per batch"
    keys = await storage.identity.list_signing_keys()
    assert {token_key_id(k.private_key) for k in keys} == {storage.keyring.active_id()}
    fresh = TokenService(storage.identity, SECRET, AuthSettings(), keyring=storage.keyring)
    await fresh.start()
    await _round_trip(fresh)


async def test_a_sealed_key_needs_the_key_ring(storage: Storage) -> None:
    tokens = TokenService(storage.identity, SECRET, AuthSettings(), keyring=storage.keyring)
    await tokens.start()
    blind = TokenService(storage.identity, SECRET, AuthSettings())
    with pytest.raises(SealError, match="no key-encryption key"):
        await blind.start()
