"""Archive bundles with workflow runs: a session's runs travel in its bundle, verify
against their ledger entries, and come back on restore; bundles made before workflow
runs existed still verify and restore.

The REST side of archive and restore (and tampering with executions and entries) is
in ``tests/api/test_sessions.py``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from limit_graph.core.canonical import sha256_hex
from limit_graph.core.errors import Conflict, InvalidInput
from limit_graph.core.governance_settings import GovernanceSettings
from limit_graph.core.models import (
    Execution,
    Session,
    SessionConfig,
    SessionState,
    StepState,
    WorkflowRun,
    WorkflowRunState,
    utcnow,
)
from limit_graph.governance.auth import Principal
from limit_graph.governance.compliance import ComplianceChecks
from limit_graph.orchestration.archive import (
    BUNDLE_FORMAT,
    build_bundle,
    parse_bundle,
    verify_bundle,
)
from limit_graph.orchestration.events import SessionEvents
from limit_graph.orchestration.sessions import SessionCache, SessionService
from limit_graph.storage.base import Storage
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.memory import MemoryStorage
from tests.fixtures.records import T0, make_execution, make_session
from tests.fixtures.workflow_records import make_workflow_run, step_execution

ALICE = Principal("alice", "acme")


@dataclass
class Place:
    """A platform's store and the session service over it."""

    storage: Storage
    sessions: SessionService


@pytest.fixture(params=["memory", "sqlite"])
def open_place(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[str], AsyncIterator[Place]]:
    async def open_(name: str) -> AsyncIterator[Place]:
        if request.param == "memory":
            storage: Storage = MemoryStorage()
        else:
            storage = DatabaseStorage(f"sqlite+aiosqlite:///{tmp_path / name}.db")
        await storage.start()
        try:
            yield Place(
                storage,
                SessionService(
                    storage,
                    SessionEvents(storage),
                    SessionCache(storage),
                    ComplianceChecks([], GovernanceSettings().clearances, tmp_path),
                ),
            )
        finally:
            await storage.close()

    return open_


@pytest.fixture
async def here(open_place: Callable[[str], AsyncIterator[Place]]) -> AsyncIterator[Place]:
    async for place in open_place("here"):
        yield place


@pytest.fixture
async def elsewhere(open_place: Callable[[str], AsyncIterator[Place]]) -> AsyncIterator[Place]:
    async for place in open_place("elsewhere"):
        yield place


@dataclass
class Worked:
    session: Session
    runs: list[WorkflowRun]
    executions: list[Execution]


def _finished(run: WorkflowRun, state: WorkflowRunState, step: StepState) -> WorkflowRun:
    steps = [s.model_copy(update={"state": step, "finished_at": T0}) for s in run.steps]
    return run.model_copy(update={"state": state, "steps": steps, "finished_at": T0})


async def _worked_session(storage: Storage, *, runs: int = 2) -> Worked:
    """A session with ``runs`` finished workflow runs (three entries each), a step
    execution for each, and one execution of its own."""
    config = SessionConfig(tags=["kept"])  # no quotas: a restore refuses those
    session = make_session().model_copy(update={"config": config, "config_sha256": config.sha256()})
    await storage.write_new_session(session, actor="alice", action="session.created")
    finished: list[WorkflowRun] = []
    executions: list[Execution] = []
    for n in range(runs):
        run = make_workflow_run(session, created_at=T0.replace(second=n))
        await storage.write_workflow_run(run, actor="alice", action="workflow.created")
        step = step_execution(session, run, "load")
        executions.append(await storage.write_execution(step, actor="alice", action="run"))
        running = run.model_copy(update={"state": WorkflowRunState.RUNNING, "started_at": T0})
        await storage.write_workflow_run(running, actor="engine", action="workflow.started")
        final = _finished(running, WorkflowRunState.SUCCEEDED, StepState.SUCCEEDED)
        finished.append(
            await storage.write_workflow_run(final, actor="engine", action="workflow.succeeded")
        )
    own = make_execution(session)
    executions.append(await storage.write_execution(own, actor="alice", action="run"))
    return Worked(session, finished, executions)


async def _archive(place: Place, worked: Worked) -> dict[str, Any]:
    summary = await place.sessions.archive(ALICE, worked.session.id)
    bundle = await place.storage.get_archive(worked.session.id)
    assert bundle is not None and bundle["bundle_sha256"] == summary["bundle_sha256"]
    return bundle


def _rehashed(bundle: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in bundle.items() if k != "bundle_sha256"}
    return {**body, "bundle_sha256": sha256_hex(body)}


# --- round trips ------------------------------------------------------------------------


async def test_a_bundle_carries_the_runs_and_restore_puts_them_back(
    here: Place, elsewhere: Place
) -> None:
    worked = await _worked_session(here.storage)
    bundle = await _archive(here, worked)
    assert bundle["workflow_runs"] == [r.document() for r in worked.runs]
    parsed = parse_bundle(bundle)
    verify_bundle(parsed)
    assert parsed.workflow_runs == worked.runs

    restored = await elsewhere.sessions.restore(ALICE, bundle)
    assert restored.state is SessionState.ACTIVE
    for run in worked.runs:
        assert await elsewhere.storage.get_workflow_run(run.id) == run
        assert [e.id for e in await elsewhere.storage.list_workflow_executions(run.id)] == [
            e.id for e in worked.executions if e.workflow and e.workflow.run_id == run.id
        ]
    page = await elsewhere.storage.list_workflow_runs(worked.session.id, limit=10, cursor=None)
    assert page.items == worked.runs
    entries = await elsewhere.storage.list_entries(session_id=worked.session.id)
    restores = [e for e in entries if e.resource_type == "workflow_run"]
    assert [(e.resource_id, e.action) for e in restores] == [
        (str(r.id), "workflow.restored") for r in worked.runs
    ]
    assert [e.payload for e in restores] == [r.document() for r in worked.runs]

    # Archived again there, the restored runs verify against their new entries.
    again = await _archive(elsewhere, Worked(restored, worked.runs, worked.executions))
    verify_bundle(parse_bundle(again))
    assert again["workflow_runs"] == bundle["workflow_runs"]


async def test_restoring_where_it_was_archived_keeps_the_runs_entries(here: Place) -> None:
    worked = await _worked_session(here.storage, runs=1)
    bundle = await _archive(here, worked)
    before = await here.storage.list_entries(session_id=worked.session.id)
    await here.sessions.restore(ALICE, bundle)
    after = await here.storage.list_entries(session_id=worked.session.id)
    assert [e.action for e in after[len(before) :]] == ["session.restored"]
    assert await here.storage.get_workflow_run(worked.runs[0].id) == worked.runs[0]


async def test_a_bundle_made_before_workflow_runs_verifies_and_restores(
    here: Place, elsewhere: Place
) -> None:
    """The bundle as the previous release wrote it: no ``workflow_runs`` key at all."""
    worked = await _worked_session(here.storage, runs=0)
    async with here.storage.transaction() as tx:
        executions = await tx.session_executions(worked.session.id)
        entries = await tx.session_entries(worked.session.id)
    old = _rehashed(
        {
            "format": BUNDLE_FORMAT,
            "archived_at": utcnow().isoformat().replace("+00:00", "Z"),
            "session": worked.session.document(),
            "executions": [e.document() for e in executions],
            "entries": [e.document() for e in entries],
        }
    )
    parsed = parse_bundle(old)
    assert parsed.workflow_runs == []
    verify_bundle(parsed)
    restored = await elsewhere.sessions.restore(ALICE, old)
    assert restored.restored_from == old["bundle_sha256"]
    assert await elsewhere.storage.get_execution(worked.executions[0].id) is not None
    page = await elsewhere.storage.list_workflow_runs(worked.session.id, limit=10, cursor=None)
    assert page.items == []


# --- refusals -----------------------------------------------------------------------------


def _set_state(b: dict[str, Any]) -> None:
    b["workflow_runs"][0]["state"] = "failed"


def _set_params(b: dict[str, Any]) -> None:
    b["workflow_runs"][1]["params"] = {"n": 99}


def _drop_run(b: dict[str, Any]) -> None:
    del b["workflow_runs"][0]


def _duplicate_run(b: dict[str, Any]) -> None:
    b["workflow_runs"].append(copy.deepcopy(b["workflow_runs"][0]))


def _foreign_run(b: dict[str, Any]) -> None:
    b["workflow_runs"][0]["session_id"] = str(uuid.uuid4())


def _unrecorded_run(b: dict[str, Any]) -> None:
    b["workflow_runs"].append({**copy.deepcopy(b["workflow_runs"][0]), "id": str(uuid.uuid4())})


def _drop_last_run_entry(b: dict[str, Any]) -> None:
    """The run then meets an earlier entry of its own, which records another state."""
    last = max(i for i, e in enumerate(b["entries"]) if e["resource_type"] == "workflow_run")
    del b["entries"][last]


TAMPERED = [
    pytest.param(_set_state, "does not match its ledger entry", id="state"),
    pytest.param(_set_params, "does not match its ledger entry", id="params"),
    pytest.param(_drop_run, "is in the ledger entries but not in the bundle", id="dropped"),
    pytest.param(_duplicate_run, "in the bundle twice", id="duplicated"),
    pytest.param(_foreign_run, "belongs to another session", id="foreign"),
    pytest.param(_unrecorded_run, "has no ledger entry in the bundle", id="unrecorded"),
    pytest.param(_drop_last_run_entry, "does not match its ledger entry", id="entry-dropped"),
]


@pytest.mark.parametrize(("edit", "expected"), TAMPERED)
async def test_a_tampered_run_is_refused_and_nothing_is_restored(
    here: Place, elsewhere: Place, edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    worked = await _worked_session(here.storage)
    bundle = await _archive(here, worked)
    tampered = copy.deepcopy(bundle)
    edit(tampered)
    with pytest.raises(InvalidInput, match="bundle_sha256"):
        await elsewhere.sessions.restore(ALICE, tampered)
    with pytest.raises(InvalidInput) as refused:
        await elsewhere.sessions.restore(ALICE, _rehashed(tampered))
    assert expected in refused.value.detail
    assert await elsewhere.storage.ledger_size() == 0
    assert await elsewhere.storage.get_session(worked.session.id) is None
    for run in worked.runs:
        assert await elsewhere.storage.get_workflow_run(run.id) is None


async def test_a_session_with_an_unfinished_run_is_not_archived(here: Place) -> None:
    worked = await _worked_session(here.storage, runs=1)
    running = make_workflow_run(worked.session, state=WorkflowRunState.RUNNING)
    await here.storage.write_workflow_run(running, actor="engine", action="workflow.started")
    before = await here.storage.ledger_size()
    with pytest.raises(Conflict, match="1 unfinished workflow runs"):
        await here.sessions.archive(ALICE, worked.session.id)
    assert await here.storage.ledger_size() == before
    assert await here.storage.get_archive(worked.session.id) is None
    stored = await here.storage.get_session(worked.session.id)
    assert stored is not None and stored.state is SessionState.ACTIVE


async def test_a_bundle_holding_an_unfinished_run_is_not_restored(
    here: Place, elsewhere: Place
) -> None:
    """Such a bundle verifies (its hashes are right) but would restore a run that no
    engine runs: it is refused before anything is written."""
    worked = await _worked_session(here.storage, runs=1)
    running = make_workflow_run(worked.session, state=WorkflowRunState.RUNNING)
    await here.storage.write_workflow_run(running, actor="engine", action="workflow.started")
    async with here.storage.transaction() as tx:
        executions = await tx.session_executions(worked.session.id)
        runs = await tx.session_workflow_runs(worked.session.id)
        entries = await tx.session_entries(worked.session.id)
    bundle = build_bundle(worked.session, executions, entries, runs)
    verify_bundle(parse_bundle(bundle))
    with pytest.raises(InvalidInput, match="unfinished workflow runs"):
        await elsewhere.sessions.restore(ALICE, bundle)
    assert await elsewhere.storage.ledger_size() == 0
    assert await elsewhere.storage.get_workflow_run(running.id) is None
