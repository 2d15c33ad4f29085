"""Workflow runs in the storage contract: every backend (memory, file, SQLite, Postgres)
stores them with their ledger entries, lists them, and finds the executions of a run."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta

import pytest

from limit_graph.core.canonical import sha256_hex
from limit_graph.core.errors import InvalidInput, StateDenied
from limit_graph.core.models import (
    Execution,
    ExecutionState,
    SessionState,
    StepState,
    WorkflowRun,
    WorkflowRunState,
)
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import verify_entries
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
from tests.fixtures.workflow_records import make_workflow_run, step_execution


class Boom(Exception):
    """Raised inside a transaction to make it fail."""


def _advanced(run: WorkflowRun, state: WorkflowRunState, step: StepState) -> WorkflowRun:
    steps = [s.model_copy(update={"state": step}) for s in run.steps]
    return run.model_copy(update={"state": state, "steps": steps, "started_at": T0})


async def _all_runs(storage: Storage, session_id: uuid.UUID, limit: int) -> list[WorkflowRun]:
    seen: list[WorkflowRun] = []
    cursor: str | None = None
    while True:
        page = await storage.list_workflow_runs(session_id, limit=limit, cursor=cursor)
        seen += page.items
        if page.next_cursor is None:
            return seen
        assert len(page.items) == limit
        cursor = page.next_cursor


# --- records and their entries ----------------------------------------------------


async def test_a_run_saved_in_a_transaction_reads_back_equal(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    run = make_workflow_run(session)
    async with storage.transaction() as tx:
        assert await tx.save_workflow_run(run, actor="alice", action="workflow.created") == run
        assert await tx.get_workflow_run(run.id) == run
        assert await tx.session_workflow_runs(session.id) == [run]
        assert await storage.get_workflow_run(run.id) is None
        page = await storage.list_workflow_runs(session.id, limit=10, cursor=None)
        assert page.items == []

    assert await storage.get_workflow_run(run.id) == run
    assert await storage.get_workflow_run(uuid.uuid4()) is None
    async with storage.transaction() as tx:
        assert await tx.get_workflow_run(uuid.uuid4()) is None
        assert await tx.session_workflow_runs(uuid.uuid4()) == []
        running = _advanced(run, WorkflowRunState.RUNNING, StepState.RUNNING)
        await tx.save_workflow_run(running, actor="engine", action="workflow.started")
        assert await tx.get_workflow_run(run.id) == running
        assert await tx.session_workflow_runs(session.id) == [running]
    assert await storage.get_workflow_run(run.id) == running


async def test_each_run_write_appends_an_entry_holding_its_document(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    run = make_workflow_run(session, params={"n": 3, "awkward": [1e20, -0.0, "ü ✓"]})
    written = await storage.write_workflow_run(run, actor="alice", action="workflow.created")
    assert written == run
    started = _advanced(run, WorkflowRunState.RUNNING, StepState.RUNNING)
    async with storage.transaction() as tx:
        await tx.save_workflow_run(started, actor="engine", action="workflow.started")
    done = _advanced(started, WorkflowRunState.SUCCEEDED, StepState.SUCCEEDED)
    await storage.write_workflow_run(done, actor="engine", action="workflow.succeeded")

    entries = await storage.list_entries(session_id=session.id)
    assert verify_entries(entries) is None
    created_entry, started_entry, done_entry = entries[1:]
    for entry, record, actor, action in (
        (created_entry, run, "alice", "workflow.created"),
        (started_entry, started, "engine", "workflow.started"),
        (done_entry, done, "engine", "workflow.succeeded"),
    ):
        assert (entry.resource_type, entry.resource_id) == ("workflow_run", str(run.id))
        assert (entry.session_id, entry.actor, entry.action) == (session.id, actor, action)
        assert entry.payload == record.document()
        assert entry.payload_sha256 == sha256_hex(record.document())
    assert await storage.get_workflow_run(run.id) == done
    assert await storage.last_change_at(session.id) == done_entry.timestamp


async def test_a_transaction_that_raises_leaves_no_run(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    kept = await storage.write_workflow_run(
        make_workflow_run(session), actor="alice", action="workflow.created"
    )
    before = await storage.list_entries()
    lost = make_workflow_run(session)
    with pytest.raises(Boom):
        async with storage.transaction() as tx:
            await tx.save_workflow_run(lost, actor="alice", action="workflow.created")
            changed = _advanced(kept, WorkflowRunState.RUNNING, StepState.RUNNING)
            await tx.save_workflow_run(changed, actor="engine", action="workflow.started")
            raise Boom
    assert await storage.get_workflow_run(lost.id) is None
    assert await storage.get_workflow_run(kept.id) == kept
    assert await storage.list_entries() == before
    assert await storage.list_unfinished_workflow_runs() == [kept]
    page = await storage.list_workflow_runs(session.id, limit=10, cursor=None)
    assert page.items == [kept]


# --- listings -----------------------------------------------------------------------


async def test_list_workflow_runs_pages_in_created_order_exactly_once(storage: Storage) -> None:
    mine, other = make_session(), make_session()
    for session in (mine, other):
        await commit_session(storage, session)
    stamps = [T0 + timedelta(microseconds=n) for n in (4, 0, 2, 2, 2, 1, 0)]
    runs = [make_workflow_run(mine, created_at=stamp) for stamp in stamps]
    theirs = make_workflow_run(other, created_at=T0)
    for run in [theirs, *random.Random(3).sample(runs, len(runs))]:
        await storage.write_workflow_run(run, actor="alice", action="workflow.created")
    expected = sorted(runs, key=lambda r: (r.created_at, r.id))

    assert await _all_runs(storage, mine.id, limit=3) == expected
    assert await _all_runs(storage, mine.id, limit=1) == expected
    whole = await storage.list_workflow_runs(mine.id, limit=len(runs), cursor=None)
    assert (whole.items, whole.next_cursor) == (expected, None)
    assert await _all_runs(storage, other.id, limit=5) == [theirs]
    assert await _all_runs(storage, uuid.uuid4(), limit=5) == []
    after_last = encode_cursor((expected[-1].created_at, expected[-1].id))
    empty = await storage.list_workflow_runs(mine.id, limit=3, cursor=after_last)
    assert (empty.items, empty.next_cursor) == ([], None)
    async with storage.transaction() as tx:
        assert await tx.session_workflow_runs(mine.id) == expected


async def test_a_malformed_run_cursor_is_invalid_input(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    await storage.write_workflow_run(
        make_workflow_run(session), actor="alice", action="workflow.created"
    )
    for cursor in ("not a cursor!", "WzEsIDJd", encode_cursor((T0, uuid.UUID(int=0)))[:-4]):
        with pytest.raises(InvalidInput):
            await storage.list_workflow_runs(session.id, limit=10, cursor=cursor)


async def test_unfinished_runs_of_every_session_oldest_first(storage: Storage) -> None:
    a, b = make_session(), make_session()
    for session in (a, b):
        await commit_session(storage, session)
    later = make_workflow_run(a, state=WorkflowRunState.RUNNING, created_at=T0 + timedelta(hours=1))
    earlier = make_workflow_run(b, state=WorkflowRunState.PENDING, created_at=T0)
    latest = make_workflow_run(a, state=WorkflowRunState.PENDING, created_at=T0 + timedelta(days=1))
    finished = [
        make_workflow_run(a, state=state, created_at=T0 - timedelta(days=1))
        for state in (
            WorkflowRunState.SUCCEEDED,
            WorkflowRunState.FAILED,
            WorkflowRunState.CANCELLED,
        )
    ]
    for run in (later, *finished, latest, earlier):
        await storage.write_workflow_run(run, actor="alice", action="workflow.created")
    assert await storage.list_unfinished_workflow_runs() == [earlier, later, latest]

    failed = _advanced(later, WorkflowRunState.FAILED, StepState.FAILED)
    await storage.write_workflow_run(failed, actor="engine", action="workflow.failed")
    assert await storage.list_unfinished_workflow_runs() == [earlier, latest]


async def test_the_executions_of_a_run_in_submitted_order(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    run, other = make_workflow_run(session), make_workflow_run(session)
    for record in (run, other):
        await storage.write_workflow_run(record, actor="alice", action="workflow.created")
    offsets = [3, 0, 2, 2, 1]
    mine = [
        step_execution(session, run, "load", index=i, submitted_at=T0 + timedelta(seconds=s))
        for i, s in enumerate(offsets)
    ]
    theirs = step_execution(session, other, "load")
    untagged = make_execution(session)
    stored: list[Execution] = []
    for n, execution in enumerate([*mine, theirs, untagged]):
        if n % 2:
            stored.append(await commit_execution(storage, execution))
        else:
            stored.append(
                await storage.write_execution(execution, actor="alice", action="execution.saved")
            )
    expected = sorted(stored[: len(mine)], key=lambda e: (e.submitted_at, e.id))

    found = await storage.list_workflow_executions(run.id)
    assert found == expected
    indexes = [e.workflow.index if e.workflow else None for e in found]
    assert indexes[:2] == [1, 4] and set(indexes[2:4]) == {2, 3} and indexes[4] == 0
    assert await storage.list_workflow_executions(other.id) == [stored[len(mine)]]
    assert await storage.list_workflow_executions(uuid.uuid4()) == []
    assert await storage.get_execution(untagged.id) == stored[-1]
    assert stored[-1].workflow is None

    # A later state of an execution keeps it under its run, once.
    first = expected[0]
    cancelled = first.model_copy(update={"state": ExecutionState.CANCELLED})
    updated = await storage.write_execution(cancelled, actor="engine", action="execution.cancelled")
    again = await storage.list_workflow_executions(run.id)
    assert [e.id for e in again] == [e.id for e in expected]
    assert again[0] == updated and again[0].state is ExecutionState.CANCELLED


# --- standalone writes ----------------------------------------------------------------


async def test_require_active_session_refuses_and_writes_nothing(storage: Storage) -> None:
    active = await commit_session(storage, make_session())
    done = await commit_session(storage, make_session(state=SessionState.COMPLETED))
    ghost = make_session()
    before = await storage.list_entries()
    allowed, refused, unknown = (make_workflow_run(s) for s in (active, done, ghost))
    results = await asyncio.gather(
        *(
            storage.write_workflow_run(
                run, actor="alice", action="workflow.created", require_active_session=True
            )
            for run in (allowed, refused, unknown)
        ),
        return_exceptions=True,
    )
    assert results[0] == allowed
    for result, session_id in ((results[1], done.id), (results[2], ghost.id)):
        assert isinstance(result, StateDenied), result
        assert result.policy_ids == ["session-active"]
        assert str(session_id) in result.detail
    for run in (refused, unknown):
        assert await storage.get_workflow_run(run.id) is None
    entries = await storage.list_entries()
    assert entries[: len(before)] == before
    assert [e.resource_id for e in entries[len(before) :]] == [str(allowed.id)]
    assert await storage.list_entries(session_id=done.id) == before[1:]
    assert (await storage.list_workflow_runs(done.id, limit=5, cursor=None)).items == []
    assert await storage.list_unfinished_workflow_runs() == [allowed]

    # The gate looks at the session as the write commits, not as it was when asked.
    await commit_session(storage, advanced(active, SessionState.COMPLETED))
    started = _advanced(allowed, WorkflowRunState.RUNNING, StepState.RUNNING)
    with pytest.raises(StateDenied):
        await storage.write_workflow_run(
            started, actor="engine", action="workflow.started", require_active_session=True
        )
    assert await storage.get_workflow_run(allowed.id) == allowed
    ungated = await storage.write_workflow_run(started, actor="engine", action="workflow.started")
    assert await storage.get_workflow_run(allowed.id) == ungated


async def test_concurrent_run_writes_chain_and_keep_the_last_state(storage: Storage) -> None:
    """Runs, their updates and executions written together (one group-commit batch where
    the backend batches) land once each, in submission order, on one intact chain."""
    session = await commit_session(storage, make_session())
    runs = [make_workflow_run(session, created_at=T0 + timedelta(seconds=n)) for n in range(12)]
    started = [_advanced(r, WorkflowRunState.RUNNING, StepState.RUNNING) for r in runs]
    steps = [step_execution(session, r, "load") for r in runs]
    writes = []
    for run, start, step in zip(runs, started, steps, strict=True):
        writes += [
            storage.write_workflow_run(run, actor="alice", action="workflow.created"),
            storage.write_execution(step, actor="engine", action="execution.saved"),
            storage.write_workflow_run(start, actor="engine", action="workflow.started"),
        ]
    results = await asyncio.gather(*writes)
    assert results[2::3] == started

    entries = await storage.list_entries(after=-1, limit=10_000)
    assert len(entries) == 1 + 3 * len(runs)
    assert verify_entries(entries) is None
    for run, start, step in zip(runs, started, steps, strict=True):
        assert await storage.get_workflow_run(run.id) == start
        [found] = await storage.list_workflow_executions(run.id)
        assert found.id == step.id
        actions = [e.action for e in entries if e.resource_id == str(run.id)]
        assert actions == ["workflow.created", "workflow.started"]
    assert await _all_runs(storage, session.id, limit=5) == started


async def test_an_unhashable_run_fails_alone(storage: Storage) -> None:
    session = await commit_session(storage, make_session())
    before = await storage.ledger_size()
    good = [make_workflow_run(session) for _ in range(3)]
    bad = make_workflow_run(session, params={"x": "\ud800"})
    results = await asyncio.gather(
        *(
            storage.write_workflow_run(run, actor="alice", action="workflow.created")
            for run in (good[0], bad, good[1], good[2])
        ),
        return_exceptions=True,
    )
    assert isinstance(results[1], InvalidInput), results[1]
    assert "no canonical JSON form" in results[1].detail
    assert [results[0], *results[2:]] == good
    assert await storage.get_workflow_run(bad.id) is None
    entries = await storage.list_entries()
    assert len(entries) == before + 3 and verify_entries(entries) is None
    assert {e.resource_id for e in entries[before:]} == {str(r.id) for r in good}


# --- durability -------------------------------------------------------------------------


async def test_runs_and_their_executions_survive_a_reopen(durable_backend: Backend) -> None:
    store = durable_backend.open()
    await store.start()
    try:
        session = await commit_session(store, make_session())
        done = make_workflow_run(session, state=WorkflowRunState.SUCCEEDED)
        running = make_workflow_run(
            session, state=WorkflowRunState.RUNNING, created_at=T0 + timedelta(seconds=1)
        )
        for run in (done, running):
            await store.write_workflow_run(run, actor="alice", action="workflow.created")
        step = await commit_execution(store, step_execution(session, running, "load", index=0))
        entries = await store.list_entries()
    finally:
        await store.close()

    reopened = durable_backend.open()
    await reopened.start()
    try:
        assert await reopened.get_workflow_run(done.id) == done
        assert await reopened.list_unfinished_workflow_runs() == [running]
        assert await reopened.list_workflow_executions(running.id) == [step]
        page = await reopened.list_workflow_runs(session.id, limit=10, cursor=None)
        assert page.items == [done, running]
        assert await reopened.list_entries() == entries
        finished = _advanced(running, WorkflowRunState.SUCCEEDED, StepState.SUCCEEDED)
        await reopened.write_workflow_run(finished, actor="engine", action="workflow.succeeded")
        after = await reopened.list_entries()
        assert after[-1].index == entries[-1].index + 1 and verify_entries(after) is None
        await assert_tree(reopened)
        assert await reopened.list_unfinished_workflow_runs() == []
    finally:
        await reopened.close()
