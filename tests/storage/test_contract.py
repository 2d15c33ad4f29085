"""The storage contract: one suite, run against every implementation of ``Storage``.

Each test gets a started, empty store of one kind (memory, file, SQLite, Postgres; the
fixtures are in ``tests/fixtures/backends.py``); ``-k postgres`` selects the Postgres runs.  The
durability tests reopen a second instance on the same folder or database.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from limit_graph.core.canonical import canonical_json
from limit_graph.core.errors import InvalidInput, StateDenied
from limit_graph.core.models import (
    BackendKind,
    Execution,
    ExecutionState,
    Session,
    SessionState,
)
from limit_graph.storage.base import SessionFilter, Storage
from limit_graph.storage.ledger import EntryDraft, verify_entries
from limit_graph.storage.paging import encode_cursor
from tests.fixtures.backends import Backend
from tests.fixtures.records import (
    T0,
    advanced,
    commit_execution,
    commit_session,
    make_execution,
    make_session,
)
from tests.fixtures.tree import assert_tree

ALL = SessionFilter()


class Boom(Exception):
    """Raised inside a transaction to make it fail."""


# --- transactions ----------------------------------------------------------------


async def test_saved_records_read_back_inside_the_transaction_and_after_commit(
    storage: Storage,
) -> None:
    session = make_session(tags=("alpha",))
    execution = make_execution(session)
    async with storage.transaction() as tx:
        assert await tx.save_session(session, actor="alice", action="session.created") == session
        stored = await tx.save_execution(execution, actor="alice", action="execution.started")
        assert await tx.get_session(session.id) == session
        assert await tx.get_execution(execution.id) == stored

        assert await storage.get_session(session.id) is None
        assert await storage.get_execution(execution.id) is None
        assert await storage.ledger_size() == 0
        assert await storage.list_entries() == []
        assert (await storage.list_sessions(ALL, limit=10, cursor=None)).items == []

    assert await storage.get_session(session.id) == session
    assert await storage.get_execution(execution.id) == stored
    assert await storage.ledger_size() == 2
    assert (await storage.list_sessions(ALL, limit=10, cursor=None)).items == [session]


async def test_unknown_ids_read_as_none(storage: Storage) -> None:
    assert await storage.get_session(uuid.uuid4()) is None
    assert await storage.get_execution(uuid.uuid4()) is None
    assert await storage.get_archive(uuid.uuid4()) is None
    async with storage.transaction() as tx:
        assert await tx.get_session(uuid.uuid4()) is None
        assert await tx.get_execution(uuid.uuid4()) is None
        assert await tx.get_entry(0) is None
        assert await tx.session_executions(uuid.uuid4()) == []
        assert await tx.session_entries(uuid.uuid4()) == []


async def test_a_transaction_that_raises_leaves_nothing(storage: Storage) -> None:
    before = await commit_session(storage, make_session())
    entries_before = await storage.list_entries()
    session = make_session()
    execution = make_execution(session)

    with pytest.raises(Boom):
        async with storage.transaction() as tx:
            await tx.save_session(session, actor="alice", action="session.created")
            await tx.save_execution(execution, actor="alice", action="execution.started")
            await tx.save_session(advanced(before, SessionState.COMPLETED), actor="a", action="b")
            await tx.save_archive(session.id, {"kept": False})
            raise Boom

    assert await storage.get_session(session.id) is None
    assert await storage.get_execution(execution.id) is None
    assert await storage.get_archive(session.id) is None
    assert await storage.get_session(before.id) == before
    assert await storage.ledger_size() == 1
    assert await storage.list_entries() == entries_before
    page = await storage.list_executions(session.id, state=None, limit=10, cursor=None)
    assert page.items == []

    # The next commit continues from the last committed entry, not the rolled-back ones.
    await commit_session(storage, session)
    entries = await storage.list_entries()
    assert [e.index for e in entries] == [0, 1]
    await assert_tree(storage)
    assert verify_entries(entries) is None


# --- the ledger ------------------------------------------------------------------


async def test_every_save_appends_one_entry_to_the_tree(storage: Storage) -> None:
    session = make_session()
    execution = make_execution(session, state=ExecutionState.RUNNING)

    await commit_session(storage, session)
    assert await storage.ledger_size() == 1
    started = await commit_execution(storage, execution)
    assert await storage.ledger_size() == 2
    finished = await commit_execution(
        storage, execution.model_copy(update={"state": ExecutionState.SUCCEEDED, "result": 3})
    )
    assert await storage.ledger_size() == 3
    completed = await commit_session(storage, advanced(session, SessionState.COMPLETED))
    assert await storage.ledger_size() == 4

    entries = await storage.list_entries()
    assert [e.index for e in entries] == [0, 1, 2, 3]
    await assert_tree(storage)
    assert verify_entries(entries) is None

    first, _, _, last = entries
    assert first.payload == session.document()
    assert last.payload == completed.document()
    assert (first.resource_type, first.resource_id, first.session_id) == (
        "session",
        str(session.id),
        session.id,
    )
    assert (first.actor, first.action) == ("alice", "session.saved")

    for stored, entry in ((started, entries[1]), (finished, entries[2])):
        assert stored.provenance_entry == entry.index
        assert entry.payload["provenance_entry"] is None
        assert entry.payload == {**stored.document(), "provenance_entry": None}
        assert (entry.resource_type, entry.resource_id) == ("execution", str(execution.id))
        assert entry.session_id == session.id
    assert await storage.get_execution(execution.id) == finished


async def test_several_saves_in_one_transaction_chain_in_order(storage: Storage) -> None:
    session = make_session()
    async with storage.transaction() as tx:
        await tx.save_session(session, actor="alice", action="session.created")
        stored = [
            await tx.save_execution(make_execution(session), actor="alice", action="run")
            for _ in range(3)
        ]
        note = await tx.append_entry(
            EntryDraft("system", "note", "system", "n-1", None, {"text": "ünïcødé ✓"})
        )
        assert note.index == 4
        assert await tx.get_entry(4) == note
        assert (await tx.get_entry(1)).resource_id == str(stored[0].id)
    assert [e.provenance_entry for e in stored] == [1, 2, 3]

    entries = await storage.list_entries()
    assert verify_entries(entries) is None
    assert entries[-1] == note
    assert entries[-1].session_id is None


async def test_list_entries_filters_by_session_and_pages_by_index(storage: Storage) -> None:
    a, b = make_session(), make_session()
    for session in (a, b):
        await commit_session(storage, session)
    for session in (a, b, a):
        await commit_execution(storage, make_execution(session))

    assert [e.index for e in await storage.list_entries(session_id=a.id)] == [0, 2, 4]
    assert [e.index for e in await storage.list_entries(session_id=b.id)] == [1, 3]
    assert [e.index for e in await storage.list_entries(after=2)] == [3, 4]
    assert [e.index for e in await storage.list_entries(after=0, limit=2)] == [1, 2]
    assert [e.index for e in await storage.list_entries(session_id=a.id, after=0, limit=1)] == [2]
    assert await storage.list_entries(after=4) == []
    assert verify_entries(await storage.list_entries(session_id=a.id), contiguous=False) is None


async def test_a_deleted_sessions_entries_stay_listed_in_pages(storage: Storage) -> None:
    """What ``GET /sessions/{id}/provenance`` reads: every entry of one session, bare
    entries and its deletion included, page by page after the last index seen."""
    kept, other = make_session(), make_session()
    await storage.write_new_session(kept, actor="alice", action="session.created")
    await storage.write_new_session(other, actor="bob", action="session.created")
    await storage.write_execution(make_execution(kept), actor="alice", action="execution.saved")
    denial = EntryDraft("alice", "execution.denied", "execution", "echo", kept.id, {"n": 1})
    await storage.write_entry(denial)
    await commit_execution(storage, make_execution(other))
    async with storage.transaction() as tx:
        await tx.save_session(
            advanced(kept, SessionState.DELETED), actor="root", action="session.deleted"
        )

    whole = await storage.list_entries(session_id=kept.id)
    assert [(e.actor, e.action) for e in whole] == [
        ("alice", "session.created"),
        ("alice", "execution.saved"),
        ("alice", "execution.denied"),
        ("root", "session.deleted"),
    ]
    assert {e.session_id for e in whole} == {kept.id}
    paged, after = [], -1
    while page := await storage.list_entries(session_id=kept.id, after=after, limit=1):
        paged += page
        after = page[-1].index
    assert paged == whole
    assert await storage.list_entries(session_id=kept.id, after=whole[-1].index) == []
    assert await storage.list_entries(session_id=uuid.uuid4()) == []


async def test_last_change_is_the_time_of_a_sessions_latest_entry(storage: Storage) -> None:
    """What ``GET /sessions/{id}/status`` reports as ``updated_at``."""
    kept, other = make_session(), make_session()
    assert await storage.last_change_at(kept.id) is None
    await storage.write_new_session(kept, actor="alice", action="session.created")
    await storage.write_new_session(other, actor="bob", action="session.created")
    saved = await storage.write_execution(
        make_execution(kept), actor="alice", action="execution.saved"
    )
    await commit_execution(storage, make_execution(other))
    last = (await storage.list_entries(session_id=kept.id))[-1]
    assert (last.action, last.index) == ("execution.saved", saved.provenance_entry)
    assert await storage.last_change_at(kept.id) == last.timestamp


async def test_documents_keep_their_exact_json_values(storage: Storage) -> None:
    """Awkward JSON numbers and text survive storage, so stored entries still verify."""
    awkward = {
        "big_float": 1e20,
        "negative_zero": -0.0,
        "whole_float": 2.0,
        "tiny": 5e-324,
        "big_int": 2**70,
        "text": 'ünïcødé ✓ "quoted" \\ \n',
        "nested": [{"b": 1, "a": [None, True, 0.1]}],
    }
    session = make_session(quotas={"storage_bytes": 1e20, "qpu_seconds": 0.0})
    await commit_session(storage, session)
    stored = await commit_execution(storage, make_execution(session, inputs=awkward))
    async with storage.transaction() as tx:
        await tx.save_archive(session.id, {"bundle": awkward})

    assert await storage.get_session(session.id) == session
    got = await storage.get_execution(stored.id)
    assert got == stored
    assert canonical_json(got.inputs) == canonical_json(awkward)
    archive = await storage.get_archive(session.id)
    assert canonical_json(archive) == canonical_json({"bundle": awkward})
    entries = await storage.list_entries()
    assert canonical_json(entries[1].payload["inputs"]) == canonical_json(awkward)
    assert verify_entries(entries) is None


# --- listing sessions --------------------------------------------------------------


async def test_list_sessions_pages_in_created_order_exactly_once(storage: Storage) -> None:
    stamps = [T0 + timedelta(microseconds=n) for n in (5, 0, 3, 3, 3, 1, 0)]
    sessions = [make_session(created_at=stamp) for stamp in stamps]
    for session in random.Random(7).sample(sessions, len(sessions)):
        await commit_session(storage, session)
    expected = sorted(sessions, key=lambda s: (s.created_at, s.id))

    seen: list[Session] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await storage.list_sessions(ALL, limit=3, cursor=cursor)
        seen += page.items
        pages += 1
        if page.next_cursor is None:
            break
        assert len(page.items) == 3
        cursor = page.next_cursor
    assert pages == 3
    assert seen == expected

    whole = await storage.list_sessions(ALL, limit=len(sessions), cursor=None)
    assert (whole.items, whole.next_cursor) == (expected, None)


async def test_list_sessions_filters_by_tenant_state_and_tag(storage: Storage) -> None:
    a = make_session(tenant="acme", tags=("alpha", "beta"), created_at=T0)
    b = make_session(tenant="acme", tags=("beta",), created_at=T0 + timedelta(seconds=1))
    c = make_session(tenant="other", tags=("alpha",), created_at=T0 + timedelta(seconds=2))
    for session in (a, b, c):
        await commit_session(storage, session)
    b = await commit_session(storage, advanced(b, SessionState.COMPLETED))

    async def ids(**filter: Any) -> list[uuid.UUID]:
        page = await storage.list_sessions(SessionFilter(**filter), limit=10, cursor=None)
        return [s.id for s in page.items]

    assert await ids() == [a.id, b.id, c.id]
    assert await ids(tenant="acme") == [a.id, b.id]
    assert await ids(tenant="nobody") == []
    assert await ids(state=SessionState.COMPLETED) == [b.id]
    assert await ids(state=SessionState.ACTIVE) == [a.id, c.id]
    assert await ids(tag="alpha") == [a.id, c.id]
    assert await ids(tag="beta") == [a.id, b.id]
    assert await ids(tag="gamma") == []
    assert await ids(tenant="acme", state=SessionState.ACTIVE, tag="beta") == [a.id]
    completed = await storage.list_sessions(
        SessionFilter(state=SessionState.COMPLETED), limit=10, cursor=None
    )
    assert completed.items == [b]

    first = await storage.list_sessions(SessionFilter(tag="alpha"), limit=1, cursor=None)
    rest = await storage.list_sessions(
        SessionFilter(tag="alpha"), limit=1, cursor=first.next_cursor
    )
    assert ([s.id for s in first.items], [s.id for s in rest.items]) == ([a.id], [c.id])
    assert rest.next_cursor is None


MALFORMED_CURSORS = [
    pytest.param("not a cursor!", id="not-base64"),
    pytest.param("bm90IGpzb24", id="not-json"),
    pytest.param(encode_cursor((T0, uuid.UUID(int=0)))[:-4], id="truncated"),
    pytest.param("WzEsIDJd", id="wrong-types"),
    pytest.param(encode_cursor((T0.replace(tzinfo=None), uuid.UUID(int=0))), id="naive-time"),
]


@pytest.mark.parametrize("cursor", MALFORMED_CURSORS)
async def test_a_malformed_cursor_is_invalid_input(storage: Storage, cursor: str) -> None:
    session = await commit_session(storage, make_session())
    await commit_execution(storage, make_execution(session))
    with pytest.raises(InvalidInput):
        await storage.list_sessions(ALL, limit=10, cursor=cursor)
    with pytest.raises(InvalidInput):
        await storage.list_executions(session.id, state=None, limit=10, cursor=cursor)


# --- executions --------------------------------------------------------------------


async def test_list_executions_is_per_session_filtered_and_paged(storage: Storage) -> None:
    a, b = make_session(), make_session()
    for session in (a, b):
        await commit_session(storage, session)
    states = [ExecutionState.SUCCEEDED, ExecutionState.FAILED] * 3
    mine = [
        await commit_execution(
            storage, make_execution(a, state=s, submitted_at=T0 + timedelta(seconds=i % 4))
        )
        for i, s in enumerate(states)
    ]
    theirs = await commit_execution(storage, make_execution(b))
    expected = sorted(mine, key=lambda e: (e.submitted_at, e.id))

    seen: list[Execution] = []
    cursor: str | None = None
    for _ in range(len(mine)):
        page = await storage.list_executions(a.id, state=None, limit=4, cursor=cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected

    failed = await storage.list_executions(a.id, state=ExecutionState.FAILED, limit=10, cursor=None)
    assert failed.items == [e for e in expected if e.state is ExecutionState.FAILED]
    assert failed.next_cursor is None
    only_b = await storage.list_executions(b.id, state=None, limit=10, cursor=None)
    assert only_b.items == [theirs]
    none = await storage.list_executions(b.id, state=ExecutionState.FAILED, limit=10, cursor=None)
    assert none.items == []


async def test_count_executions_by_state_and_backend(storage: Storage) -> None:
    a, b = make_session(), make_session()
    for session in (a, b):
        await commit_session(storage, session)
    running = make_execution(a, state=ExecutionState.RUNNING, backend=BackendKind.QUANTUM)
    for execution in (
        make_execution(a),
        make_execution(a),
        make_execution(a, backend=BackendKind.REMOTE),
        make_execution(a, state=ExecutionState.FAILED),
        running,
        make_execution(b),
    ):
        await commit_execution(storage, execution)
    await commit_execution(storage, running.model_copy(update={"state": ExecutionState.FAILED}))

    assert await storage.count_executions(a.id) == {
        (ExecutionState.SUCCEEDED, "local"): 2,
        (ExecutionState.SUCCEEDED, "remote"): 1,
        (ExecutionState.FAILED, "local"): 1,
        (ExecutionState.FAILED, "quantum"): 1,
    }
    assert await storage.count_executions(b.id) == {(ExecutionState.SUCCEEDED, "local"): 1}
    assert await storage.count_executions(uuid.uuid4()) == {}


async def test_find_execution_by_key_stays_within_its_session(storage: Storage) -> None:
    a, b = make_session(), make_session()
    for session in (a, b):
        await commit_session(storage, session)
    in_a = await commit_execution(storage, make_execution(a, key="k1"))

    async with storage.transaction() as tx:
        assert await tx.find_execution_by_key(a.id, "k1") == in_a
        assert await tx.find_execution_by_key(b.id, "k1") is None
        assert await tx.find_execution_by_key(a.id, "k2") is None
        in_b = await tx.save_execution(make_execution(b, key="k1"), actor="bob", action="run")
        assert await tx.find_execution_by_key(b.id, "k1") == in_b
        assert await tx.find_execution_by_key(a.id, "k1") == in_a

    async with storage.transaction() as tx:
        assert await tx.find_execution_by_key(b.id, "k1") == in_b
        assert await tx.find_execution_by_key(a.id, "k1") == in_a


async def test_session_records_inside_a_transaction(storage: Storage) -> None:
    a, b = make_session(), make_session()
    for session in (a, b):
        await commit_session(storage, session)
    first = await commit_execution(
        storage, make_execution(a, state=ExecutionState.RUNNING, submitted_at=T0)
    )
    second = await commit_execution(
        storage, make_execution(a, submitted_at=T0 + timedelta(seconds=2))
    )

    async with storage.transaction() as tx:
        third = await tx.save_execution(
            make_execution(a, submitted_at=T0 + timedelta(seconds=1)), actor="alice", action="run"
        )
        await tx.save_execution(make_execution(b), actor="alice", action="run")
        updated = await tx.save_execution(
            first.model_copy(update={"state": ExecutionState.CANCELLED}),
            actor="alice",
            action="cancel",
        )
        assert await tx.session_executions(a.id) == [updated, third, second]

        entries = await tx.session_entries(a.id)
        assert [e.index for e in entries] == [0, 2, 3, 4, 6]
        assert {e.session_id for e in entries} == {a.id}
        assert entries[-1].payload["state"] == "cancelled"
        assert verify_entries(entries, contiguous=False) is None
        assert [e.index for e in await tx.session_entries(b.id)] == [1, 5]


# --- archives ------------------------------------------------------------------------


async def test_archives_round_trip_and_overwrite(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    bundle = {"format": "x/1", "entries": [{"index": 0, "ok": True}], "sha": "ab" * 32}
    async with storage.transaction() as tx:
        await tx.save_archive(session.id, bundle)
        assert await storage.get_archive(session.id) is None
    assert await storage.get_archive(session.id) == bundle
    assert await storage.get_archive(uuid.uuid4()) is None

    async with storage.transaction() as tx:
        await tx.save_archive(session.id, {"format": "x/2"})
    assert await storage.get_archive(session.id) == {"format": "x/2"}


# --- concurrency ---------------------------------------------------------------------


async def test_concurrent_transactions_append_contiguous_entries(storage: Storage) -> None:
    shared = await commit_session(storage, make_session())

    async def save(i: int) -> None:
        async with storage.transaction() as tx:
            await tx.get_session(shared.id)
            await asyncio.sleep(0)
            if i % 2:
                await tx.save_execution(make_execution(shared), actor=f"w{i}", action="run")
            else:
                await tx.save_session(make_session(), actor=f"w{i}", action="create")

    await asyncio.gather(*(save(i) for i in range(20)))

    entries = await storage.list_entries()
    assert [e.index for e in entries] == list(range(21))
    assert verify_entries(entries) is None
    assert sorted(e.actor for e in entries[1:]) == sorted(f"w{i}" for i in range(20))
    assert await storage.ledger_size() == 21
    sessions = await storage.list_sessions(ALL, limit=100, cursor=None)
    assert len(sessions.items) == 11
    assert await storage.count_executions(shared.id) == {(ExecutionState.SUCCEEDED, "local"): 10}


# --- durability ------------------------------------------------------------------------


async def test_a_reopened_store_keeps_its_data_and_chain(durable_backend: Backend) -> None:
    store = durable_backend.open()
    await store.start()
    try:
        session = await commit_session(store, make_session(tags=("alpha",)))
        execution = await commit_execution(store, make_execution(session, key="k"))
        async with store.transaction() as tx:
            await tx.save_archive(session.id, {"kept": [1, 2.5, "three"]})
        entries = await store.list_entries()
    finally:
        await store.close()

    reopened = durable_backend.open()
    await reopened.start()
    try:
        assert await reopened.get_session(session.id) == session
        assert await reopened.get_execution(execution.id) == execution
        assert await reopened.get_archive(session.id) == {"kept": [1, 2.5, "three"]}
        assert await reopened.ledger_size() == 2
        assert await reopened.list_entries() == entries
        page = await reopened.list_sessions(SessionFilter(tag="alpha"), limit=5, cursor=None)
        assert page.items == [session]
        async with reopened.transaction() as tx:
            assert await tx.find_execution_by_key(session.id, "k") == execution

        completed = await commit_session(reopened, advanced(session, SessionState.COMPLETED))
        after = await reopened.list_entries()
        assert [e.index for e in after] == [0, 1, 2]
        await assert_tree(reopened)
        assert verify_entries(after) is None
        assert await reopened.get_session(session.id) == completed
    finally:
        await reopened.close()


# --- standalone writes (group-committed where the backend batches) ---------------


async def test_concurrent_standalone_writes_chain_and_land_once(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    base = await storage.ledger_size()
    writes = [make_execution(session, state=ExecutionState.RUNNING) for _ in range(60)]
    stored = await asyncio.gather(
        *(storage.write_execution(e, actor="alice", action="execution.started") for e in writes)
    )
    finals = await asyncio.gather(
        *(
            storage.write_execution(
                s.model_copy(update={"state": ExecutionState.SUCCEEDED}),
                actor="alice",
                action="execution.succeeded",
            )
            for s in stored
        )
    )
    entries = await storage.list_entries(after=-1, limit=10_000)
    assert len(entries) == base + 120
    assert verify_entries(entries) is None
    by_index = {e.index: e for e in entries}
    for final in finals:
        assert final.provenance_entry is not None
        entry = by_index[final.provenance_entry]
        assert entry.resource_id == str(final.id) and entry.action == "execution.succeeded"
        again = await storage.get_execution(final.id)
        assert again is not None and again.state is ExecutionState.SUCCEEDED
    page = await storage.list_executions(session.id, state=None, limit=500, cursor=None)
    assert len(page.items) == 60


async def test_standalone_write_keeps_idempotency_keys_unique(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    first, second, third = (make_execution(session, key="k") for _ in range(3))
    results = await asyncio.gather(
        *(storage.write_execution(e, actor="a", action="x") for e in (first, second, third))
    )
    assert len({r.id for r in results}) == 1
    found = await storage.find_execution_by_key(session.id, "k")
    assert found is not None and found.id == results[0].id
    assert await storage.find_execution_by_key(session.id, "other") is None
    page = await storage.list_executions(session.id, state=None, limit=10, cursor=None)
    assert len(page.items) == 1


async def test_standalone_write_can_require_an_active_session(storage: Storage) -> None:
    active = await commit_session(storage, make_session())
    done = await commit_session(storage, make_session(state=SessionState.COMPLETED))
    before = await storage.ledger_size()
    ok, refused = await asyncio.gather(
        storage.write_execution(
            make_execution(active), actor="a", action="x", require_active_session=True
        ),
        storage.write_execution(
            make_execution(done), actor="a", action="x", require_active_session=True
        ),
        return_exceptions=True,
    )
    assert isinstance(ok, Execution)
    assert isinstance(refused, StateDenied) and refused.policy_ids == ["session-active"]
    assert await storage.ledger_size() == before + 1
    assert (await storage.list_executions(done.id, state=None, limit=5, cursor=None)).items == []


async def test_standalone_entries_follow_transactions_in_the_tree(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    draft = EntryDraft("alice", "execution.denied", "execution", "echo", session.id, {"n": 1})
    entry = await storage.write_entry(draft)
    after = await commit_session(storage, advanced(session, SessionState.COMPLETED))
    entries = await storage.list_entries()
    assert entries[-2] == entry and entries[-1].index == entry.index + 1
    await assert_tree(storage)
    assert after.state is SessionState.COMPLETED
    assert verify_entries(entries) is None


async def test_new_sessions_written_alone_or_in_batches(storage: Storage) -> None:
    sessions = [make_session(tags=("t1", "t2")) for _ in range(20)]
    stored = await asyncio.gather(
        *(storage.write_new_session(s, actor="alice", action="session.created") for s in sessions)
    )
    assert [s.id for s in stored] == [s.id for s in sessions]
    tagged = await storage.list_sessions(SessionFilter(tag="t2"), limit=50, cursor=None)
    assert len(tagged.items) == 20
    first = sessions[0]
    running = make_execution(first, state=ExecutionState.RUNNING)
    await storage.write_execution(running, actor="a", action="x", require_active_session=True)
    entries = await storage.list_entries()
    assert len(entries) == 21 and verify_entries(entries) is None
    assert entries[0].payload == first.document()


# --- bookkeeping values and unfinished executions --------------------------------


async def test_values_put_replace_expire_and_survive_a_reopen(backend: Backend) -> None:
    now = datetime.now(UTC)
    store = backend.open()
    await store.start()
    try:
        assert await store.get_value("mirror", "cursor") is None
        await store.put_value("mirror", "cursor", {"index": 4})
        await store.put_value("mirror", "cursor", {"index": 9, "note": "ü"})
        await store.put_value("cache", "k1", {"e": "one"}, expires_at=now + timedelta(hours=1))
        await store.put_value("cache", "k2", {"e": "two"}, expires_at=now - timedelta(seconds=1))
        await store.put_value("other", "k3", {"e": "three"}, expires_at=now - timedelta(hours=1))
        assert await store.get_value("mirror", "cursor") == {"index": 9, "note": "ü"}
        assert await store.get_value("cache", "k1") == {"e": "one"}
        assert await store.get_value("cache", "k2") is None  # expired reads as absent
        assert await store.get_value("cursor", "mirror") is None  # namespaces are separate
        assert await store.delete_expired("cache", now) == 1
        assert await store.delete_expired(None, now) == 1
        assert await store.delete_expired(None, now) == 0
        assert await store.ledger_size() == 0  # bookkeeping is not provenance
    finally:
        await store.close()
    if backend.kind == "memory":
        return
    reopened = backend.open()
    await reopened.start()
    try:
        assert await reopened.get_value("mirror", "cursor") == {"index": 9, "note": "ü"}
        assert await reopened.get_value("cache", "k1") == {"e": "one"}
        assert await reopened.delete_expired(None, now + timedelta(days=1)) == 1
    finally:
        await reopened.close()


async def test_list_unfinished_executions_by_backend_oldest_first(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    later = make_execution(
        session,
        state=ExecutionState.RUNNING,
        backend=BackendKind.REMOTE,
        submitted_at=T0 + timedelta(seconds=5),
    )
    earlier = make_execution(
        session, state=ExecutionState.QUEUED, backend=BackendKind.QUANTUM, submitted_at=T0
    )
    done = make_execution(session, state=ExecutionState.SUCCEEDED, backend=BackendKind.REMOTE)
    local = make_execution(session, state=ExecutionState.QUEUED, backend=BackendKind.LOCAL)
    for execution in (later, earlier, done, local):
        await commit_execution(storage, execution)
    found = await storage.list_unfinished_executions([BackendKind.REMOTE, BackendKind.QUANTUM])
    assert [e.id for e in found] == [earlier.id, later.id]
    assert await storage.list_unfinished_executions([BackendKind.LOCAL]) == [
        await storage.get_execution(local.id)
    ]
