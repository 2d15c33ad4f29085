"""The ledger in the database: append-only by trigger, and every change made past the
triggers (as a superuser can) found and named by the verifier; the migration from the
hash chain refuses a chain that does not verify, and the downgrade writes it back."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from limit_graph.core import notes
from limit_graph.orchestration import ledger_verify
from limit_graph.orchestration.ledger_verify import verify_ledger
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.ledger_store import StoredCheckpoint
from limit_graph.storage.legacy_chain import GENESIS_HASH, verify_chain_document
from tests.fixtures.legacy_ledger import chained_rows, write_chain
from tests.fixtures.migrations import downgrade, migrate
from tests.fixtures.records import T0

ENTRIES = 6
SIGNER = notes.Signer.generate("test/log")


def _draft(n: int, erasable: bool = False) -> EntryDraft:
    return EntryDraft("alice", "thing.done", "thing", f"t-{n}", None, {"n": n}, "acme", erasable)


async def _filled(url: str) -> None:
    store = DatabaseStorage(url)
    await store.start()
    try:
        for n in range(ENTRIES):
            await store.write_entry(_draft(n, erasable=n == 1))
        head = await store.ledger.head()
        note = notes.sign_note(notes.Checkpoint("test/log", head.size, head.root).text(), SIGNER)
        await store.ledger.add_checkpoint(
            StoredCheckpoint(head.size, head.root, T0, SIGNER.key_id.hex(), note)
        )
    finally:
        await store.close()


def _bypassing(engine: Engine, statements: list[str]) -> None:
    """Run ``statements`` past the append-only triggers, as a superuser could."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            triggers = conn.execute(
                sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).scalars()
            for name in list(triggers):
                conn.execute(sa.text(f'DROP TRIGGER "{name}"'))
        for statement in statements:
            conn.execute(sa.text(statement))


async def _report(url: str, *, apart: bool = False) -> tuple[bool, int | None, str | None]:
    store = DatabaseStorage(url)
    await store.start()
    try:
        report = await verify_ledger(
            store,
            verifiers=[notes.Verifier.from_verifier_key(SIGNER.verifier_key())],
            check_apart=apart,
        )
    finally:
        await store.close()
    return report.ok, report.first_bad, report.detail


async def test_the_triggers_refuse_updates_and_deletes_but_an_erasure(
    engine: Engine, url: str
) -> None:
    await _filled(url)
    refused = [
        "UPDATE limit_ledger SET actor = 'mallory' WHERE idx = 2",
        "UPDATE limit_ledger SET payload = NULL, salt = NULL WHERE idx = 2",  # not erasable
        "UPDATE limit_ledger SET payload = NULL, salt = NULL, actor = 'x' WHERE idx = 1",
        "DELETE FROM limit_ledger WHERE idx = 5",
        "UPDATE limit_ledger_nodes SET hash = hash WHERE level = 1",
        "DELETE FROM limit_ledger_nodes",
        "DELETE FROM limit_checkpoints",
    ]
    if engine.dialect.name == "postgresql":
        refused += ["TRUNCATE limit_ledger", "TRUNCATE limit_ledger_nodes"]
    for statement in refused:
        with pytest.raises(sa_exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    with engine.begin() as conn:
        changed = conn.execute(
            sa.text("UPDATE limit_ledger SET payload = NULL, salt = NULL WHERE idx = 1")
        )
        assert changed.rowcount == 1
    assert await _report(url) == (True, None, None)


EDIT_A_BYTE = (
    'UPDATE limit_ledger SET leaf = replace(leaf, \'"actor":"alice"\', '
    '\'"actor":"alicf"\') WHERE idx = 3'
)
SWAP = [
    "UPDATE limit_ledger SET idx = -1 WHERE idx = 2",
    "UPDATE limit_ledger SET idx = 2 WHERE idx = 4",
    "UPDATE limit_ledger SET idx = 4 WHERE idx = -1",
]
INSERT = [
    "INSERT INTO limit_ledger (idx, session_id, tenant, actor, action, ts_us, leaf_hash, "
    "leaf, erasable, payload, salt) SELECT 6, session_id, tenant, actor, action, ts_us, "
    "leaf_hash, leaf, erasable, payload, salt FROM limit_ledger WHERE idx = 5"
]


TAMPERS = {
    "edit-a-byte": ([EDIT_A_BYTE], 3, "entry 3: its leaf_hash does not match"),
    "delete": (["DELETE FROM limit_ledger WHERE idx = 2"], 2, "entry 2 is missing"),
    "swap": (SWAP, 2, "entry 2: its fields say it is entry 4"),
    "insert": (INSERT, 6, "entry 6 is stored beyond the head of 6 entries"),
    "node": (
        [
            "UPDATE limit_ledger_nodes SET hash = (SELECT n.hash FROM limit_ledger_nodes n "
            "WHERE n.level = 1 AND n.idx = 1) WHERE level = 1 AND idx = 0"
        ],
        0,
        "the stored tree node over entries 0..1 does not match those entries",
    ),
    "head-cut-short": (
        [
            "UPDATE limit_ledger_head SET size = 4, edge = (SELECT n.hash FROM "
            "limit_ledger_nodes n WHERE n.level = 2 AND n.idx = 0)"
        ],
        4,
        "the ledger's head holds 4 entries, fewer than checkpoint 6 saw",
    ),
    "checkpoint-row": (
        ["UPDATE limit_checkpoints SET tree_size = 5 WHERE tree_size = 6"],
        None,
        "checkpoint 5: its note and its row disagree",
    ),
    "payload": (
        ["UPDATE limit_ledger SET payload = replace(payload, '4', '9') WHERE idx = 4"],
        4,
        "entry 4: its payload does not match",
    ),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
async def test_a_change_past_the_triggers_is_named(engine: Engine, url: str, tamper: str) -> None:
    statements, first_bad, detail = TAMPERS[tamper]
    await _filled(url)
    assert await _report(url) == (True, None, None)
    _bypassing(engine, statements)
    ok, bad, why = await _report(url)
    assert (ok, bad) == (False, first_bad), why
    assert why is not None and why.startswith(detail), why


@pytest.mark.parametrize("tamper", ["edit-a-byte", "delete", "swap", "payload", "node"])
async def test_rows_checked_in_another_process_name_the_same_entry(
    engine: Engine, url: str, tamper: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of two rows, each checked by ``python -m limit_graph.core.ledger_rows`` while
    the tree is made here: the same first bad entry, with the same words."""
    monkeypatch.setattr(ledger_verify, "PAGE", 2)
    statements, first_bad, detail = TAMPERS[tamper]
    await _filled(url)
    assert await _report(url, apart=True) == (True, None, None)
    _bypassing(engine, statements)
    ok, bad, why = await _report(url, apart=True)
    assert (ok, bad) == (False, first_bad), why
    assert why is not None and why.startswith(detail), why
    assert (ok, bad, why) == await _report(url)


async def test_a_chain_that_does_not_verify_is_not_migrated(engine: Engine, url: str) -> None:
    migrate(engine, "0006")
    chain = chained_rows([(_draft(n), T0) for n in range(3)])
    chain[1]["actor"] = "mallory"  # an edit the chain's hashes do not cover
    with engine.begin() as conn:
        write_chain(conn, chain)
    store = DatabaseStorage(url)
    with pytest.raises(RuntimeError, match=r"entry 1: entry_hash does not match.*not migrated"):
        await store.start()
    await store.close()
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT version_num FROM limit_alembic_version")) == "0006"


async def test_a_downgrade_writes_the_chain_back(engine: Engine, url: str) -> None:
    await _filled(url)
    downgrade(engine, "0006")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT idx, document FROM limit_ledger ORDER BY idx")).all()
        head = conn.execute(sa.text("SELECT size, last_hash FROM limit_ledger_head")).one()
    documents = [d if isinstance(d, dict) else json.loads(d) for _, d in rows]
    prev = GENESIS_HASH
    for n, document in enumerate(documents):
        assert verify_chain_document(document, n, prev) is None
        prev = document["entry_hash"]
    assert (head.size, head.last_hash) == (ENTRIES, prev)
    assert [d["payload"] for d in documents] == [{"n": n} for n in range(ENTRIES)]
    migrate(engine, "head")
    assert await _report(url) == (True, None, None)


async def test_a_downgrade_refuses_when_a_payload_was_erased(engine: Engine, url: str) -> None:
    await _filled(url)
    store = DatabaseStorage(url)
    await store.start()
    try:
        await store.ledger.erase_payload(1)
    finally:
        await store.close()
    with pytest.raises(RuntimeError, match="erased"):
        downgrade(engine, "0006")


async def test_a_ledger_verifies_while_entries_are_written(url: str) -> None:
    await _filled(url)
    store = DatabaseStorage(url)
    await store.start()
    try:

        async def write() -> None:
            for n in range(ENTRIES, ENTRIES + 150):
                await store.write_entry(_draft(n))

        writing = asyncio.create_task(write())
        reports = []
        while not writing.done():
            reports.append(await verify_ledger(store))
        await writing
        reports.append(await verify_ledger(store))
    finally:
        await store.close()
    assert [r.detail for r in reports if not r.ok] == []
    assert len(reports) > 1 and reports[-1].size == ENTRIES + 150
