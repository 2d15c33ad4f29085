"""Every backend's ledger: the tree's head and proofs, trail reads, checkpoints, erasure."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from limit_graph.core import merkle
from limit_graph.core.errors import InvalidInput, NotFound, StateDenied
from limit_graph.core.models import utcnow
from limit_graph.orchestration.ledger_verify import verify_ledger
from limit_graph.storage.base import Storage
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.database.ledger import _DirectReads
from limit_graph.storage.file import FileStorage
from limit_graph.storage.ledger import EntryDraft, decode_hash
from limit_graph.storage.ledger_store import (
    EntryFilter,
    StoredCheckpoint,
    consistency_proof,
    inclusion_proof,
)
from tests.fixtures.backends import Backend
from tests.fixtures.legacy_ledger import chained_rows, same_entry
from tests.fixtures.records import T0, make_session
from tests.fixtures.tree import assert_tree

SESSION = uuid.UUID(int=7)


def _draft(n: int, **changes: object) -> EntryDraft:
    fields: dict[str, object] = {
        "actor": "alice" if n % 2 else "bob",
        "action": "thing.done" if n % 3 else "thing.started",
        "resource_type": "thing",
        "resource_id": f"t-{n}",
        "session_id": None,
        "payload": {"n": n},
        "tenant": "acme" if n % 4 else "beta",
    }
    return EntryDraft(**{**fields, **changes})  # type: ignore[arg-type]


async def _fill(storage: Storage, count: int) -> None:
    for n in range(count):
        await storage.write_entry(_draft(n))


async def test_proofs_of_every_entry_verify_against_the_head(storage: Storage) -> None:
    await _fill(storage, 13)
    await assert_tree(storage)
    head = await storage.ledger.head()
    entries = await storage.list_entries()
    leaves = [decode_hash(e.leaf_hash) for e in entries]
    for size in (1, 2, 7, 8, 13):
        root = merkle.root_of(leaves[:size])
        for index in range(size):
            proof = await inclusion_proof(storage.ledger, index, size)
            merkle.verify_inclusion(index, size, leaves[index], proof, root)
        for first in range(1, size + 1):
            proof = await consistency_proof(storage.ledger, first, size)
            merkle.verify_consistency(first, size, merkle.root_of(leaves[:first]), root, proof)
    assert head.root == merkle.root_of(leaves)


async def test_proofs_outside_the_ledger_are_refused(storage: Storage) -> None:
    await _fill(storage, 3)
    for index, size, why in (
        (3, 3, "index 3 is not an entry of a tree of size 3"),
        (0, 4, r"size 4 is not a tree size of this ledger \(1..3\)"),
        (2, 5, r"size 5 is not a tree size of this ledger \(1..3\)"),
        (-1, 2, "index -1 is not an entry"),
        (0, 0, "index 0 is not an entry of a tree of size 0"),
    ):
        with pytest.raises(InvalidInput, match=why):
            await inclusion_proof(storage.ledger, index, size)
    for first, second in ((0, 2), (3, 2), (1, 4)):
        with pytest.raises(InvalidInput):
            await consistency_proof(storage.ledger, first, second)


async def test_the_trail_filters_by_tenant_actor_action_session_and_time(
    storage: Storage,
) -> None:
    session = make_session()
    await storage.write_new_session(session, actor="carol", action="session.created")
    start = utcnow()
    await _fill(storage, 8)
    everything = await storage.ledger.entries(EntryFilter())
    assert [e.index for e in everything] == list(range(9))
    acme = await storage.ledger.entries(EntryFilter(tenant="acme"))
    assert all(e.tenant == "acme" for e in acme)
    assert len(acme) == 6 + (session.tenant == "acme")
    assert [e.tenant for e in await storage.ledger.entries(EntryFilter(session_id=session.id))] == [
        session.tenant
    ]
    alice = await storage.ledger.entries(EntryFilter(actor="alice", action="thing.done"))
    assert [e.resource_id for e in alice] == ["t-1", "t-5", "t-7"]
    later = await storage.ledger.entries(EntryFilter(since=start))
    assert [e.index for e in later] == list(range(1, 9))
    assert await storage.ledger.entries(EntryFilter(until=start)) == everything[:1]
    paged = await storage.ledger.entries(EntryFilter(tenant="beta"), after=1, limit=2)
    assert [e.index for e in paged] == [5]


async def test_checkpoints_are_kept_once_per_size_in_order(backend: Backend) -> None:
    storage = backend.open()
    await storage.start()
    try:
        assert await storage.ledger.latest_checkpoint() is None
        await _fill(storage, 3)
        head = await storage.ledger.head()
        made = [
            StoredCheckpoint(
                size, head.root, utcnow() + timedelta(seconds=size), "k1", f"note {size}"
            )
            for size in (3, 1, 2)
        ]
        assert [await storage.ledger.add_checkpoint(c) for c in made] == [True, True, True]
        again = StoredCheckpoint(2, head.root, utcnow(), "k2", "another note")
        assert await storage.ledger.add_checkpoint(again) is False
        kept = await storage.ledger.checkpoints()
        assert [c.tree_size for c in kept] == [1, 2, 3] and kept[1].note == "note 2"
        assert [c.tree_size for c in await storage.ledger.checkpoints(after_size=1, limit=1)] == [2]
        assert await storage.ledger.latest_checkpoint() == made[0]
    finally:
        await storage.close()
    if backend.kind == "memory":
        return
    reopened = backend.open()
    await reopened.start()
    try:
        assert [c.tree_size for c in await reopened.ledger.checkpoints()] == [1, 2, 3]
        assert (await reopened.ledger.latest_checkpoint()) == made[0]
    finally:
        await reopened.close()


async def test_an_erasable_payload_is_erased_and_the_ledger_still_verifies(
    backend: Backend,
) -> None:
    storage = backend.open()
    await storage.start()
    try:
        await _fill(storage, 2)
        personal = await storage.write_entry(
            _draft(2, payload={"tenant": "acme", "name": "Ada"}, erasable=True)
        )
        await _fill(storage, 1)
        before = await storage.ledger.head()
        erased = await storage.ledger.erase_payload(personal.index)
        assert erased.payload is None and erased.leaf_hash == personal.leaf_hash
        assert (await storage.list_entries())[2] == erased
        assert await storage.ledger.head() == before
        report = await verify_ledger(storage)
        assert report.ok and report.erased == 1, report
        with pytest.raises(StateDenied, match="not erasable"):
            await storage.ledger.erase_payload(0)
        with pytest.raises(NotFound):
            await storage.ledger.erase_payload(99)
    finally:
        await storage.close()
    if backend.kind == "memory":
        return
    reopened = backend.open()
    await reopened.start()
    try:
        assert (await reopened.list_entries())[2].payload is None
        assert (await verify_ledger(reopened)).ok
    finally:
        await reopened.close()


async def test_the_verifier_reads_what_every_backend_stores(storage: Storage) -> None:
    await storage.write_new_session(make_session(), actor="carol", action="session.created")
    await _fill(storage, 5)
    report = await verify_ledger(storage)
    assert (report.ok, report.size, report.first_bad) == (True, 6, None)
    rows = await storage.ledger.scan(after=1, limit=2)
    entries = await storage.list_entries(after=1, limit=2)
    assert [r.index for r in rows] == [2, 3]
    assert [r.leaf_hash for r in rows] == [decode_hash(e.leaf_hash) for e in entries]


async def test_a_file_store_of_the_chained_format_is_upgraded_once_checked(
    tmp_path: Path,
) -> None:
    chain = chained_rows([(_draft(n), T0) for n in range(4)])
    folder = tmp_path / "store" / "ledger"
    folder.mkdir(parents=True)
    for document in chain:
        (folder / f"{document['index']:012d}.json").write_text(json.dumps(document))
    store = FileStorage(tmp_path / "store")
    await store.start()
    try:
        entries = await store.list_entries()
        assert [same_entry(e, d) for e, d in zip(entries, chain, strict=True)] == [True] * 4
        assert (await verify_ledger(store)).ok
    finally:
        await store.close()
    assert "entry_hash" not in (folder / "000000000002.json").read_text()

    broken = tmp_path / "broken" / "ledger"
    broken.mkdir(parents=True)
    for document in chain:
        edited = {**document, "actor": "mallory"} if document["index"] == 2 else document
        (broken / f"{document['index']:012d}.json").write_text(json.dumps(edited))
    refused = FileStorage(tmp_path / "broken")
    with pytest.raises(RuntimeError, match="entry 2: entry_hash does not match.*not upgraded"):
        await refused.start()
    await refused.close()
    assert "entry_hash" in (broken / "000000000002.json").read_text()


async def test_a_sqlite_store_reads_proofs_from_a_folder_of_any_name(tmp_path: Path) -> None:
    """A SQLite store reads a proof's nodes on a connection of its own, opened by URI:
    a space or a '#' in the folder's name is a folder name."""
    folder = tmp_path / "a b#c"
    storage = DatabaseStorage(f"sqlite+aiosqlite:///{folder / 'ledger.db'}")
    await storage.start()
    try:
        await _fill(storage, 9)
        head = await storage.ledger.head()
        leaves = [decode_hash(e.leaf_hash) for e in await storage.list_entries()]
        for index in range(head.size):
            proof = await inclusion_proof(storage.ledger, index, head.size)
            merkle.verify_inclusion(index, head.size, leaves[index], proof, head.root)
    finally:
        await storage.close()


def test_a_direct_read_that_would_wait_is_given_up_at_once(tmp_path: Path) -> None:
    """The direct connection never waits for a lock: a read SQLite answers busy (here a
    writer holds a journal-mode database exclusively) is ``None`` -- the store then
    reads the async way -- and the next read, once the lock is gone, answers."""
    path = tmp_path / "locked.db"
    with sqlite3.connect(path) as made:
        made.execute("CREATE TABLE limit_ledger_head (id INTEGER PRIMARY KEY, size INTEGER)")
        made.execute("INSERT INTO limit_ledger_head VALUES (1, 5)")
    direct = _DirectReads(str(path))
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        assert direct.rows("SELECT size FROM limit_ledger_head") is None
        assert time.monotonic() - started < 1
        holder.execute("ROLLBACK")
        assert direct.rows("SELECT size FROM limit_ledger_head") == [(5,)]
    finally:
        holder.close()
        direct.close()
