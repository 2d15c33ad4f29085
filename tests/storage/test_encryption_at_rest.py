"""Encryption at rest, on every durable store: sensitive executions, their archives and
the token-signing keys are sealed where they are kept, open again for whoever holds the
key, refuse to open anywhere else, and leave the ledger verifiable without any key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.engine import make_url

from limit_graph.core.auth_settings import AuthSettings
from limit_graph.core.errors import SealError
from limit_graph.core.models import Execution, ProvenanceEntry, Session
from limit_graph.core.sealing import KeyEncryptionKeys, commitment, is_sealed
from limit_graph.governance.secrets import ServerSecret
from limit_graph.governance.tokens import TokenService
from limit_graph.storage import schema as t
from limit_graph.storage.base import Storage
from limit_graph.storage.database.engine import sync_driver
from limit_graph.storage.ledger import verify_entries
from limit_graph.storage.memory import MemoryStorage
from limit_graph.storage.sealed import ledger_document, signing_key_place
from tests.fixtures.records import commit_execution, commit_session, make_execution, make_session
from tests.fixtures.sealing import (
    SealedBackend,
    dump,
    new_keks,
    opened,
    rewrite_execution,
    sensitive_execution,
    stored_document,
)

SECRET = ServerSecret("a server secret long enough for the tests")


async def _session(store: Storage, tenant: str = "acme") -> Session:
    return await commit_session(store, make_session(tenant=tenant))


def _plain(execution: Execution) -> dict[str, Any]:
    return execution.model_dump(mode="json", exclude={"provenance_entry"})


async def test_a_sensitive_execution_reads_back_as_written_on_every_path(
    sealed_backend: SealedBackend,
) -> None:
    keks = new_keks()
    async with opened(sealed_backend, keks) as store:
        session = await _session(store)
        done, _ = sensitive_execution(session)
        done = done.model_copy(update={"idempotency_key": "once"})
        failed, _ = sensitive_execution(session, failed=True)
        written = await store.write_execution(done, actor="alice", action="execution.finished")
        committed = await commit_execution(store, failed)
        assert set(written.salts) == {"inputs", "result"}
        assert set(committed.salts) == {"inputs", "error.message"}
        again = await store.write_execution(
            done.model_copy(update={"id": uuid.uuid4()}), actor="alice", action="x"
        )
        assert again.id == written.id and _plain(again) == _plain(written)
        page = await store.list_executions(session.id, state=None, limit=10, cursor=None)
        async with store.transaction() as tx:
            in_tx = await tx.session_executions(session.id)
            locked = await tx.get_execution(failed.id)
        found = await store.find_execution_by_key(session.id, "once")
        assert found is not None and locked is not None
        for read in (page.items, in_tx, [found, locked]):
            assert sorted(map(_plain, read), key=str) == sorted(
                map(_plain, [written, committed]), key=str
            )
    async with opened(sealed_backend, keks) as reopened:
        stored = await reopened.get_execution(written.id)
        assert stored is not None and _plain(stored) == _plain(written)


async def test_a_dump_of_the_store_holds_none_of_the_sealed_plaintext(
    sealed_backend: SealedBackend,
) -> None:
    async with opened(sealed_backend, new_keks()) as store:
        session = await _session(store)
        done, markers = sensitive_execution(session)
        failed, failed_markers = sensitive_execution(session, failed=True)
        clear = make_execution(session, inputs={"visible": "plain-control-marker"})
        stored = await store.write_execution(done, actor="alice", action="execution.finished")
        await commit_execution(store, failed)
        await commit_execution(store, clear)
        bundle = {"session": session.document(), "executions": [stored.document()]}
        async with store.transaction() as tx:
            await tx.save_archive(session.id, bundle)
        assert await store.get_archive(session.id) == bundle
        tokens = TokenService(store.identity, SECRET, AuthSettings(), keyring=store.keyring)
        await tokens.start()
        [signing] = await store.identity.list_signing_keys()
        assert signing.private_key.startswith("lgenc:v1:")
        pem = (
            await store.keyring.open_bytes(signing.private_key, signing_key_place(signing.kid))
        ).decode()
        text = dump(sealed_backend)
    assert "plain-control-marker" in text, "the dump should show records kept in the clear"
    assert str(done.id) in text and "lgenc:v1:" in text
    for marker in [*markers[:2], failed_markers[0], failed_markers[2]]:
        assert marker not in text, f"{marker} is at rest in the clear"
    body = "".join(pem.splitlines()[1:-1])
    assert body[:40] not in text.replace("\\n", "").replace("\n", ""), "signing key in clear"


async def test_the_ledger_commits_to_salted_hashes_and_verifies_without_a_key(
    sealed_backend: SealedBackend,
) -> None:
    async with opened(sealed_backend, new_keks()) as store:
        session = await _session(store)
        done, markers = sensitive_execution(session)
        stored = await store.write_execution(done, actor="alice", action="execution.finished")
    if sealed_backend.kind == "file":  # a file store opens every record at start
        with pytest.raises(SealError, match="no key-encryption key"):
            await opened(sealed_backend, None).__aenter__()
        folder = Path(sealed_backend.location) / "ledger"
        entries = [
            ProvenanceEntry.model_validate_json(p.read_bytes()) for p in sorted(folder.iterdir())
        ]
    else:
        async with opened(sealed_backend, None) as keyless:
            entries = await keyless.list_entries()
            with pytest.raises(SealError, match="no key-encryption key"):
                await keyless.get_execution(stored.id)
    assert verify_entries(entries) is None
    [entry] = [e for e in entries if e.resource_id == str(stored.id)]
    assert entry.payload["inputs"] == commitment(stored.inputs, stored.salts["inputs"])
    assert entry.payload["result"] == commitment(stored.result, stored.salts["result"])
    assert "salts" not in entry.payload and entry.payload["sensitive"] is True
    assert not any(m in json.dumps([e.document() for e in entries]) for m in markers)


async def test_the_memory_store_keeps_records_in_the_clear_but_commits_the_ledger() -> None:
    store = MemoryStorage()
    await store.start()
    session = await _session(store)
    done, markers = sensitive_execution(session)
    stored = await store.write_execution(done, actor="alice", action="execution.finished")
    assert stored.inputs == done.inputs
    [entry] = [e for e in await store.list_entries() if e.resource_id == str(done.id)]
    assert entry.payload == ledger_document(stored.model_copy(update={"provenance_entry": None}))
    assert markers[0] not in json.dumps(entry.payload)


def _restore(document: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A change that puts ``document`` back as it was."""
    return lambda doc: doc.update(document)


async def _read_refused(
    backend: SealedBackend, keks: KeyEncryptionKeys, execution_id: uuid.UUID
) -> str:
    """The refusal to open ``execution_id``: when read (databases), or at start (files)."""
    with pytest.raises(SealError) as refused:
        async with opened(backend, keks) as store:
            await store.get_execution(execution_id)
    return refused.value.detail


async def test_a_ciphertext_moved_to_another_row_column_or_tenant_does_not_open(
    sealed_backend: SealedBackend,
) -> None:
    keks = new_keks()
    async with opened(sealed_backend, keks) as store:
        acme = await _session(store, "acme")
        globex = await _session(store, "globex")
        first = await commit_execution(store, sensitive_execution(acme)[0])
        second = await commit_execution(store, sensitive_execution(acme)[0])
        other = await commit_execution(store, sensitive_execution(globex)[0])
    original = {e.id: stored_document(sealed_backend, e.id) for e in (first, second, other)}
    token = original[first.id]["inputs"]
    assert is_sealed(token)
    moves: list[tuple[uuid.UUID, Callable[[dict[str, Any]], None]]] = [
        (second.id, lambda doc: doc.update(inputs=token)),  # another row, same tenant
        (other.id, lambda doc: doc.update(inputs=token)),  # another tenant's row
        (first.id, lambda doc: doc.update(result=token)),  # another column
    ]
    for target, move in moves:
        rewrite_execution(sealed_backend, target, move)
        detail = await _read_refused(sealed_backend, keks, target)
        assert "moved there from another record, column or tenant" in detail
        assert str(target) in detail and token not in detail
        rewrite_execution(sealed_backend, target, _restore(original[target]))
    flipped = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    rewrite_execution(sealed_backend, first.id, lambda doc: doc.update(inputs=flipped))
    assert "altered" in await _read_refused(sealed_backend, keks, first.id)
    rewrite_execution(sealed_backend, first.id, _restore(original[first.id]))
    async with opened(sealed_backend, keks) as store:
        assert _plain(await store.get_execution(first.id)) == _plain(first)  # type: ignore[arg-type]


async def test_a_session_moved_to_another_tenant_leaves_its_records_unopenable(
    sealed_backend: SealedBackend,
) -> None:
    if sealed_backend.kind == "file":
        pytest.skip("a file store's session and records move only together, as files")
    keks = new_keks()
    async with opened(sealed_backend, keks) as store:
        session = await _session(store, "acme")
        stored = await commit_execution(store, sensitive_execution(session)[0])
    url = make_url(sealed_backend.location)
    engine = create_engine(url.set(drivername=sync_driver(url)))
    with engine.begin() as conn:
        conn.execute(
            update(t.sessions).where(t.sessions.c.id == session.id).values(tenant="globex")
        )
    engine.dispose()
    detail = await _read_refused(sealed_backend, keks, stored.id)
    assert "of tenant globex" in detail and "does not decrypt" in detail


async def test_another_kek_opens_nothing_and_seals_nothing(sealed_backend: SealedBackend) -> None:
    async with opened(sealed_backend, new_keks()) as store:
        session = await _session(store)
        stored = await commit_execution(store, sensitive_execution(session)[0])
    detail = await _read_refused(sealed_backend, new_keks(), stored.id)
    assert "key-encryption key" in detail and "not configured" in detail
    if sealed_backend.kind == "file":
        return  # a file store with another KEK does not start at all (as above)
    async with opened(sealed_backend, new_keks()) as store:
        size = await store.ledger_size()
        late, _ = sensitive_execution(session)
        with pytest.raises(SealError, match="not configured"):
            await store.write_execution(late, actor="alice", action="execution.finished")
        assert await store.get_execution(late.id) is None
        assert await store.ledger_size() == size


async def test_without_a_kek_a_sensitive_write_is_refused_and_nothing_is_written(
    sealed_backend: SealedBackend,
) -> None:
    async with opened(sealed_backend, None) as store:
        session = await _session(store)
        size = await store.ledger_size()
        execution, _ = sensitive_execution(session)
        with pytest.raises(SealError, match="LIMIT_DATA_KEK"):
            await store.write_execution(execution, actor="alice", action="execution.finished")
        with pytest.raises(SealError, match="LIMIT_DATA_KEK"):
            await commit_execution(store, execution)
        assert await store.get_execution(execution.id) is None
        assert await store.ledger_size() == size
        plain = await commit_execution(store, make_execution(session))
        assert await store.get_execution(plain.id) == plain


async def test_a_new_kek_reads_through_the_previous_one_until_the_keys_are_rewrapped(
    sealed_backend: SealedBackend,
) -> None:
    old = new_keks()
    async with opened(sealed_backend, old) as store:
        session = await _session(store)
        stored = await commit_execution(store, sensitive_execution(session)[0])
    rotated = new_keks(old.current)
    async with opened(sealed_backend, rotated) as store:
        assert _plain(await store.get_execution(stored.id)) == _plain(stored)  # type: ignore[arg-type]
        rewrapped = await store.keyring.rewrap("admin")
        assert rewrapped and all(r.kek_id == rotated.current.kid for r in store.keyring.records())
    only_new = KeyEncryptionKeys(rotated.current)
    async with opened(sealed_backend, only_new) as store:
        assert _plain(await store.get_execution(stored.id)) == _plain(stored)  # type: ignore[arg-type]
