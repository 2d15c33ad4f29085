"""Workflow runs on a real platform: order, overlap, maps, `when`, failure, resume, cancel.

The platform runs on the memory store with the built-in agents and a few of the
tests' own: ``track`` (sleeps, and records how many of it run at once) and ``flaky``
(fails until told to stop).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.errors import BackendError, Conflict
from limit_graph.core.models import (
    BackendKind,
    ExecutionState,
    SessionConfig,
    StepState,
    WorkflowRun,
    WorkflowRunState,
)
from limit_graph.core.settings import load_settings
from limit_graph.core.workflows import WorkflowInvalid
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.platform import Platform
from limit_graph.tasks.general import AGENTS as GENERAL

ADMIN = Principal(name="admin", tenant="acme", roles=frozenset({"admin"}))


class TrackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=0.0, ge=0)
    label: str = "x"
    value: Any = None


class TrackOut(BaseModel):
    label: str
    value: Any = None


class FlakyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    retryable: bool = True


class FlakyOut(BaseModel):
    key: str
    calls: int


IN_FLIGHT: dict[str, int] = {"now": 0, "peak": 0}
FAILURES_LEFT: dict[str, int] = {}
CALLS: dict[str, int] = {}


async def track(inputs: TrackIn) -> TrackOut:
    IN_FLIGHT["now"] += 1
    IN_FLIGHT["peak"] = max(IN_FLIGHT["peak"], IN_FLIGHT["now"])
    try:
        await asyncio.sleep(inputs.seconds)
    finally:
        IN_FLIGHT["now"] -= 1
    return TrackOut(label=inputs.label, value=inputs.value)


def flaky(inputs: FlakyIn) -> FlakyOut:
    CALLS[inputs.key] = CALLS.get(inputs.key, 0) + 1
    if FAILURES_LEFT.get(inputs.key, 0) > 0:
        FAILURES_LEFT[inputs.key] -= 1
        raise BackendError(f"{inputs.key} is down", retryable=inputs.retryable)
    return FlakyOut(key=inputs.key, calls=CALLS[inputs.key])


TEST_AGENTS = (
    AgentSpec("track", "1.0.0", "Sleeps; counts overlap.", TrackIn, TrackOut, track),
    AgentSpec("flaky", "1.0.0", "Fails while told to.", FlakyIn, FlakyOut, flaky, blocking=False),
)


@pytest.fixture(autouse=True)
def _reset() -> None:
    IN_FLIGHT.update(now=0, peak=0)
    FAILURES_LEFT.clear()
    CALLS.clear()


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = load_settings(environ={}, home=str(tmp_path), storage__type="memory")
    started = await Platform.start(settings, registry=AgentRegistry([*GENERAL, *TEST_AGENTS]))
    try:
        yield started
    finally:
        await started.close()


async def session_of(platform: Platform, **config: Any) -> uuid.UUID:
    session = await platform.sessions.create(ADMIN, SessionConfig(**config), name="wf")
    return session.id


async def run_to_end(
    platform: Platform, spec: dict[str, Any], params: dict[str, Any] | None = None
) -> WorkflowRun:
    session_id = await session_of(platform)
    run = await platform.workflows.run(ADMIN, session_id, spec, params)
    return await platform.workflows.wait(ADMIN, session_id, run.id, 60)


def states(run: WorkflowRun) -> dict[str, str]:
    return {s.id: s.state.value for s in run.steps}


DIAMOND = {
    "name": "diamond",
    "steps": [
        {"id": "a", "agent": "track", "inputs": {"label": "a", "value": 1}},
        {
            "id": "b",
            "agent": "track",
            "inputs": {"seconds": 0.3, "label": "b", "value": "${steps.a.outputs.value}"},
        },
        {
            "id": "c",
            "agent": "track",
            "inputs": {"seconds": 0.3, "label": "c", "value": "${steps.a.outputs.value}"},
        },
        {
            "id": "d",
            "agent": "echo",
            "inputs": {"b": "${steps.b.outputs}", "c": "${steps.c.outputs.label}"},
        },
    ],
}


async def test_a_diamond_runs_in_dependency_order_with_its_middle_steps_overlapping(
    platform: Platform,
) -> None:
    run = await run_to_end(platform, DIAMOND)
    assert run.state is WorkflowRunState.SUCCEEDED, run.error
    assert states(run) == dict.fromkeys("abcd", "succeeded")
    executions = {s.id: await platform.storage.get_execution(s.execution_ids[0]) for s in run.steps}
    a, b, c, d = (executions[k] for k in "abcd")
    assert a and b and c and d
    assert a.finished_at and b.started_at and c.started_at and b.finished_at and c.finished_at
    assert a.finished_at <= b.started_at and a.finished_at <= c.started_at
    assert b.started_at < c.finished_at and c.started_at < b.finished_at  # b and c overlap
    assert d.started_at and d.started_at >= max(b.finished_at, c.finished_at)
    assert d.result == {"b": {"label": "b", "value": 1}, "c": "c"}
    assert d.workflow is not None and set(d.workflow.upstream) == {b.id, c.id}
    assert b.workflow is not None and b.workflow.upstream == [a.id]
    assert IN_FLIGHT["peak"] == 2


async def test_a_map_of_100_items_keeps_their_order_and_its_parallel_limit(
    platform: Platform,
) -> None:
    spec = {
        "name": "fan",
        "max_parallel": 16,
        "steps": [
            {
                "id": "m",
                "agent": "track",
                "map": {"over": list(range(100)), "as": "n", "max_parallel": 5},
                "inputs": {"seconds": 0.01, "label": "item-${n}", "value": "${n}"},
            },
            {"id": "all", "agent": "echo", "inputs": {"values": "${steps.m.outputs}"}},
        ],
    }
    run = await run_to_end(platform, spec)
    assert run.state is WorkflowRunState.SUCCEEDED, run.error
    mapped = run.step("m")
    assert mapped.items == 100 and len(mapped.execution_ids) == 100
    final = await platform.storage.get_execution(run.step("all").execution_ids[0])
    assert final is not None
    values = final.result["values"]
    assert [v["value"] for v in values] == list(range(100))
    assert values[7]["label"] == "item-7"
    assert 1 < IN_FLIGHT["peak"] <= 5
    indices = []
    for execution_id in mapped.execution_ids:
        execution = await platform.storage.get_execution(execution_id)
        assert execution is not None and execution.workflow is not None
        indices.append(execution.workflow.index)
    assert sorted(indices) == list(range(100))


@pytest.mark.parametrize(("shots", "ran"), [(1000, True), (10, False)])
async def test_when_decides_whether_a_step_and_its_downstream_run(
    platform: Platform, shots: int, ran: bool
) -> None:
    spec = {
        "name": "gated",
        "params": {"shots": {"type": "integer", "default": 1000}},
        "steps": [
            {"id": "first", "agent": "echo", "inputs": {"shots": "${params.shots}"}},
            {
                "id": "report",
                "agent": "echo",
                "when": "${params.shots} >= 100",
                "inputs": {"n": "${steps.first.outputs.shots}"},
            },
            {"id": "after", "agent": "echo", "depends_on": ["report"], "inputs": {}},
        ],
    }
    run = await run_to_end(platform, spec, {"shots": shots})
    assert run.state is WorkflowRunState.SUCCEEDED
    expected = "succeeded" if ran else "skipped"
    assert states(run) == {"first": "succeeded", "report": expected, "after": expected}
    if not ran:
        assert run.step("report").reason and "when" in run.step("report").reason
        assert run.step("report").execution_ids == []


CHAIN_WITH_FLAKY = {
    "name": "flaky-chain",
    "steps": [
        {"id": "load", "agent": "echo", "inputs": {"x": 1}},
        {
            "id": "check",
            "agent": "flaky",
            "inputs": {"key": "check", "retryable": False},
            "depends_on": ["load"],
        },
        {"id": "after", "agent": "echo", "inputs": {"calls": "${steps.check.outputs.calls}"}},
        {"id": "aside", "agent": "echo", "inputs": {"y": "${steps.load.outputs.x}"}},
    ],
}


async def test_a_failed_step_skips_its_downstream_and_resume_runs_only_them(
    platform: Platform,
) -> None:
    FAILURES_LEFT["check"] = 1
    session_id = await session_of(platform)
    run = await platform.workflows.run(ADMIN, session_id, CHAIN_WITH_FLAKY)
    run = await platform.workflows.wait(ADMIN, session_id, run.id, 30)
    assert run.state is WorkflowRunState.FAILED
    assert states(run) == {
        "load": "succeeded",
        "check": "failed",
        "after": "skipped",
        "aside": "succeeded",
    }
    assert run.error is not None and "check" in run.error.message
    assert run.step("after").reason == "upstream step 'check' failed"
    load_ids = run.step("load").execution_ids

    resumed = await platform.workflows.resume(ADMIN, session_id, run.id)
    resumed = await platform.workflows.wait(ADMIN, session_id, run.id, 30)
    assert resumed.state is WorkflowRunState.SUCCEEDED
    assert resumed.resumes == 1
    assert resumed.step("load").execution_ids == load_ids  # not run again
    assert len(resumed.step("aside").execution_ids) == 1
    assert len(resumed.step("check").execution_ids) == 2  # the failure, then the rerun
    after = await platform.storage.get_execution(resumed.step("after").execution_ids[-1])
    assert after is not None and after.result == {"calls": 2}
    assert CALLS["check"] == 2


async def test_resume_from_a_step_reruns_it_and_its_downstream(platform: Platform) -> None:
    session_id = await session_of(platform)
    run = await platform.workflows.run(ADMIN, session_id, DIAMOND, wait_s=30)
    assert run.state is WorkflowRunState.SUCCEEDED
    with pytest.raises(Conflict):
        await platform.workflows.resume(ADMIN, session_id, run.id)  # nothing to rerun
    again = await platform.workflows.resume(ADMIN, session_id, run.id, from_step="b", wait_s=30)
    assert again.state is WorkflowRunState.SUCCEEDED
    counts = {s.id: len(s.execution_ids) for s in again.steps}
    assert counts == {"a": 1, "b": 2, "c": 1, "d": 2}


async def test_retryable_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    settings = load_settings(environ={}, home=str(tmp_path), storage__type="memory")
    platform = await Platform.start(settings, registry=AgentRegistry([*GENERAL, *TEST_AGENTS]))
    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    platform.workflows.sleep = no_wait
    try:
        FAILURES_LEFT.update(twice=2, always=5)
        spec = {
            "name": "retries",
            "steps": [
                {
                    "id": "twice",
                    "agent": "flaky",
                    "inputs": {"key": "twice"},
                    "retries": 2,
                    "retry_backoff_s": 0.5,
                },
                {
                    "id": "always",
                    "agent": "flaky",
                    "inputs": {"key": "always"},
                    "retries": 1,
                    "retry_backoff_s": 2,
                },
            ],
        }
        run = await run_to_end(platform, spec)
        assert states(run) == {"twice": "succeeded", "always": "failed"}
        assert len(run.step("twice").execution_ids) == 3
        assert len(run.step("always").execution_ids) == 2
        assert sorted(slept) == [0.5, 1.0, 2.0]
        last = await platform.storage.get_execution(run.step("twice").execution_ids[-1])
        assert last is not None and last.workflow is not None and last.workflow.attempt == 3
    finally:
        await platform.close()


async def test_cancel_stops_the_running_step_and_skips_the_rest(platform: Platform) -> None:
    spec = {
        "name": "long",
        "steps": [
            {"id": "slow", "agent": "sleep", "inputs": {"seconds": 60}},
            {"id": "next", "agent": "echo", "depends_on": ["slow"], "inputs": {}},
        ],
    }
    session_id = await session_of(platform)
    run = await platform.workflows.run(ADMIN, session_id, spec)
    for _ in range(200):
        current = await platform.workflows.get(ADMIN, session_id, run.id)
        if current.step("slow").execution_ids:
            break
        await asyncio.sleep(0.01)
    cancelled = await platform.workflows.cancel(ADMIN, session_id, run.id)
    assert cancelled.state is WorkflowRunState.CANCELLED
    assert states(cancelled) == {"slow": "cancelled", "next": "skipped"}
    execution = await platform.storage.get_execution(cancelled.step("slow").execution_ids[0])
    assert execution is not None and execution.state is ExecutionState.CANCELLED
    stored = await platform.storage.get_workflow_run(run.id)
    assert stored is not None and stored.state is WorkflowRunState.CANCELLED
    with pytest.raises(Conflict):
        await platform.workflows.cancel(ADMIN, session_id, run.id)


async def test_an_invalid_workflow_records_nothing(platform: Platform) -> None:
    session_id = await session_of(platform, backends=[BackendKind.LOCAL])
    before = await platform.storage.ledger_size()
    spec = {
        "name": "bad",
        "steps": [
            {"id": "a", "agent": "nope", "inputs": {}},
            {
                "id": "b",
                "agent": "echo",
                "backend": "quantum",
                "inputs": {"x": "${steps.z.outputs}"},
            },
        ],
    }
    with pytest.raises(WorkflowInvalid) as raised:
        await platform.workflows.run(ADMIN, session_id, spec)
    fields = {(e["step"], e["field"]) for e in raised.value.errors}
    assert ("a", "/steps/0/agent") in fields
    assert ("b", "/steps/1/backend") in fields
    assert await platform.storage.ledger_size() == before
    page = await platform.storage.list_workflow_runs(session_id, limit=10, cursor=None)
    assert page.items == []


async def test_the_run_and_its_steps_are_in_the_ledger(platform: Platform) -> None:
    run = await run_to_end(platform, DIAMOND)
    entries = await platform.storage.list_entries(session_id=run.session_id)
    actions = [e.action for e in entries if e.resource_type == "workflow_run"]
    assert actions[0] == "workflow.created" and actions[1] == "workflow.started"
    assert actions[-1] == "workflow.succeeded"
    # step changes are recorded as they happen, several in one entry when they are close
    assert 1 <= actions.count("workflow.step") <= 8
    steps = [e for e in entries if e.action == "workflow.step"]
    assert any(s["state"] == "running" for s in steps[0].payload["steps"])
    names = [a.name for a in await platform.workflows.artifacts(ADMIN, run.session_id, run.id)]
    assert names[:2] == ["summary", "steps"]


def test_states_are_final_where_they_should_be() -> None:
    assert {s for s in StepState if s.is_final} == {
        StepState.SUCCEEDED,
        StepState.FAILED,
        StepState.SKIPPED,
        StepState.CANCELLED,
    }
