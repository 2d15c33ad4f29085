"""One record that cannot be written fails alone: the others of its group-commit batch
still commit, are answered, and chain in the ledger.

The writes of each test are submitted together (``asyncio.gather``), so they reach the
writer's queue before it wakes and are taken as one batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import Execution, ExecutionState, Session
from limit_graph.storage.base import Storage
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.file import FileStorage
from limit_graph.storage.ledger import EntryDraft, verify_entries
from limit_graph.storage.memory import MemoryStorage
from tests.fixtures.records import commit_session, make_execution, make_session

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if kind == "memory":
        return MemoryStorage()
    if kind == "file":
        return FileStorage(tmp_path / "store")
    if kind == "sqlite":
        return DatabaseStorage(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    return DatabaseStorage(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=[pytest.param("memory", id="memory"), pytest.param("file", id="file")])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store = _open(request.param, request, tmp_path)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=DATABASES)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store = _open(request.param, request, tmp_path)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def _write_together(writes: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*writes, return_exceptions=True))


async def _assert_only_good_landed(
    store: Storage,
    session: Session,
    results: list[Any],
    bad: set[int],
    before: int,
    *,
    also: frozenset[str] = frozenset(),
) -> None:
    """Every result but the ``bad`` ones is a record, written with its entry (and the
    entries of ``also`` resources), in an intact chain; no entry names a bad one."""
    good = [r for i, r in enumerate(results) if i not in bad]
    assert all(isinstance(r, Execution | Session) for r in good), good
    entries = await store.list_entries(after=-1, limit=10_000)
    assert len(entries) == before + len(good) + len(also)
    assert verify_entries(entries) is None
    written = {e.resource_id for e in entries[before:]}
    assert written == {str(r.id) for r in good} | also
    page = await store.list_executions(session.id, state=None, limit=100, cursor=None)
    assert {e.id for e in page.items} == {r.id for r in good if isinstance(r, Execution)}


def _unhashable(session: Session, field: str) -> Execution:
    """An execution whose document has no canonical JSON (as Python code could make it;
    the API refuses such bodies before they get this far)."""
    execution = make_execution(session, state=ExecutionState.RUNNING)
    value: Any = {"x": "\ud800"} if field == "inputs" else float("nan")
    return execution.model_copy(update={field: value})


async def _mixed_batch(store: Storage) -> None:
    session = await commit_session(store, make_session())
    before = await store.ledger_size()
    executions = [make_execution(session) for _ in range(6)]
    executions[1] = _unhashable(session, "inputs")
    executions[4] = _unhashable(session, "timeout_s")
    draft = EntryDraft("alice", "execution.denied", "execution", "echo", session.id, {"n": 1})
    writes = [store.write_execution(e, actor="alice", action="execution.saved") for e in executions]
    results = await _write_together([*writes, store.write_entry(draft)])
    for i in (1, 4):
        assert isinstance(results[i], InvalidInput), results[i]
        assert "no canonical JSON form" in results[i].detail
    assert results[1].errors[0]["loc"] == ["inputs", "x"]
    assert results[4].errors[0]["loc"] == ["timeout_s"]
    entry = results.pop()
    assert entry in await store.list_entries(after=-1, limit=10_000)
    await _assert_only_good_landed(
        store, session, results, {1, 4}, before, also=frozenset({"echo"})
    )


async def test_an_unhashable_record_fails_alone(storage: Storage) -> None:
    await _mixed_batch(storage)


async def test_an_unhashable_record_leaves_its_batch_to_commit(database: Storage) -> None:
    await _mixed_batch(database)


async def test_a_record_the_database_refuses_fails_alone(database: Storage) -> None:
    """An execution of a session that does not exist breaks the batch's foreign key;
    the batch is retried one record at a time and only that record fails."""
    session = await commit_session(database, make_session())
    ghost = make_session()
    before = await database.ledger_size()
    executions = [make_execution(session) for _ in range(5)]
    executions[2] = make_execution(ghost)
    new = make_session()
    results = await _write_together(
        [
            *(database.write_execution(e, actor="a", action="execution.saved") for e in executions),
            database.write_new_session(new, actor="a", action="session.created"),
        ],
    )
    # the driver's own error: the writer talks to the driver's cursor directly
    assert isinstance(results[2], sqlite3.IntegrityError | psycopg.IntegrityError)
    assert await database.get_execution(executions[2].id) is None
    assert await database.get_session(new.id) == new
    await _assert_only_good_landed(database, session, results, {2}, before)


@pytest.mark.postgres
async def test_a_data_error_of_one_record_is_invalid_input(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Postgres text columns cannot hold NUL (SQLite's can): the one session whose tag
    has one is refused as invalid input, and its batch-mates are written."""
    store = _open("postgres", request, tmp_path)
    await store.start()
    try:
        sessions = [make_session(tags=("fine",)) for _ in range(4)]
        sessions[1] = make_session(tags=("nul\x00tag",))
        results = await _write_together(
            [store.write_new_session(s, actor="a", action="session.created") for s in sessions],
        )
        assert isinstance(results[1], InvalidInput)
        assert "cannot store this record" in results[1].detail
        assert await store.get_session(sessions[1].id) is None
        for i in (0, 2, 3):
            assert results[i] == sessions[i]
        entries = await store.list_entries()
        assert len(entries) == 3 and verify_entries(entries) is None
        assert {e.resource_id for e in entries} == {str(sessions[i].id) for i in (0, 2, 3)}
    finally:
        await store.close()


async def test_a_refused_idempotent_twin_does_not_shadow_the_good_one(database: Storage) -> None:
    """The first of two writes sharing an idempotency key cannot be hashed; the second
    is written (the key is not taken by a record that never landed)."""
    session = await commit_session(database, make_session())
    bad = _unhashable(session, "inputs").model_copy(update={"idempotency_key": "k"})
    good = make_execution(session, key="k")
    results = await _write_together(
        [database.write_execution(e, actor="a", action="x") for e in (bad, good)],
    )
    assert isinstance(results[0], InvalidInput)
    assert isinstance(results[1], Execution) and results[1].id == good.id
    found = await database.find_execution_by_key(session.id, "k")
    assert found is not None and found.id == good.id
