"""The SDK's workflow calls against a real server: validate, run, watch, cancel, resume."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from limit_graph.client import (
    InvalidInputError,
    LimitClient,
    NotFoundError,
    Validation,
    WaitTimeout,
    paginate,
)
from limit_graph.core.models import StepState, WorkflowRun, WorkflowRunState
from tests.client.conftest import write
from tests.fixtures.workflows import DIAMOND_YAML as DIAMOND

BROKEN = """\
name: broken
steps:
  - id: a
    agent: nope
  - id: a
    agent: echo
  - id: c
    agent: echo
    inputs: {v: "${steps.zzz.outputs}"}
"""

FAILING = {
    "name": "failing",
    "steps": [
        {"id": "boom", "agent": "fail", "inputs": {"message": "no luck"}},
        {"id": "after", "agent": "echo", "depends_on": ["boom"]},
        {"id": "aside", "agent": "echo", "inputs": {"ok": True}},
    ],
}

SLOW = {"name": "slow", "steps": [{"id": "nap", "agent": "sleep", "inputs": {"seconds": 120}}]}


def provenance(client: LimitClient, session_id: uuid.UUID) -> list[object]:
    entries: list[object] = client.request("GET", f"/sessions/{session_id}/provenance")["items"]
    return entries


def test_a_valid_workflow_gives_its_dag(client: LimitClient, tmp_path: Path) -> None:
    from_file = client.validate_workflow(write(tmp_path / "d.yaml", DIAMOND))
    assert isinstance(from_file, Validation) and from_file.valid
    assert from_file.name == "diamond" and from_file.steps == 4
    assert [n.id for n in from_file.nodes] == ["a", "b", "c", "d"]
    assert {(e.from_, e.to) for e in from_file.edges} == {
        ("a", "b"),
        ("a", "c"),
        ("b", "d"),
        ("c", "d"),
    }
    assert from_file.mermaid is not None and from_file.mermaid.startswith("flowchart TD")
    assert from_file.graph()["edges"][0] == {"from": "a", "to": "b"}
    as_json = json.dumps({"name": "diamond", "steps": [{"id": "a", "agent": "echo"}]})
    assert client.validate_workflow(as_json).steps == 1
    assert client.validate_workflow({"name": "one", "steps": [{"id": "a", "agent": "echo"}]}).valid


def test_every_problem_is_reported_with_its_step_and_field(client: LimitClient) -> None:
    checked = client.validate_workflow(BROKEN)
    assert not checked.valid and checked.nodes == [] and checked.mermaid is None
    where = {(p.step, p.field) for p in checked.errors}
    assert ("a", "/steps/0/agent") in where and ("a", "/steps/1/id") in where
    assert any(p.step == "c" and "zzz" in p.msg for p in checked.errors)
    assert all(p.line is not None for p in checked.errors)
    syntax = client.validate_workflow("name: [\n")
    assert not syntax.valid and syntax.errors[0].line == 2
    params = client.validate_workflow(DIAMOND, {"n": "many"})
    assert not params.valid and any("n" in (p.field or "") for p in params.errors)


def test_a_run_is_started_waited_for_listed_and_its_artifacts_read(
    client: LimitClient, tmp_path: Path
) -> None:
    session = client.create_session("wf")
    run = client.run_workflow(session.id, write(tmp_path / "d.yaml", DIAMOND), {"n": 5})
    assert isinstance(run, WorkflowRun) and run.session_id == session.id
    assert run.params == {"n": 5} and [s.id for s in run.steps] == ["a", "b", "c", "d"]
    done = client.wait_workflow_run(run, timeout=60)
    assert done.state is WorkflowRunState.SUCCEEDED
    assert all(s.state is StepState.SUCCEEDED and len(s.execution_ids) == 1 for s in done.steps)
    last = client.get_execution(session.id, done.step("d").execution_ids[0])
    assert last.result == {"b": {"y": 5}, "c": {"z": 1}}
    assert client.get_workflow_run(session.id, run.id) == done

    again = client.run_workflow(session.id, DIAMOND, wait=True, timeout=60)
    assert again.state is WorkflowRunState.SUCCEEDED and again.params == {"n": 3}
    assert [r.id for r in client.list_workflow_runs(session.id)] == [run.id, again.id]
    paged = paginate(client.list_workflow_runs, session_id=session.id, limit=1)
    assert [r.id for r in paged] == [run.id, again.id]

    artifacts = {a.name: a for a in client.list_artifacts(session.id, run.id)}
    assert "summary" in artifacts and artifacts["summary"].media_type == "text/markdown"
    summary = client.get_artifact(session.id, run.id, "summary")
    assert summary.media_type.startswith("text/markdown") and b"diamond" in summary.content
    with pytest.raises(NotFoundError):
        client.get_artifact(session.id, run.id, "no-such-artifact")


def test_an_invalid_run_is_refused_and_records_nothing(client: LimitClient) -> None:
    session = client.create_session()
    before = provenance(client, session.id)
    with pytest.raises(InvalidInputError) as refused:
        client.run_workflow(session.id, BROKEN)
    assert {e.get("step") for e in refused.value.errors} >= {"a", "c"}
    with pytest.raises(InvalidInputError):
        client.run_workflow(session.id, DIAMOND, {"n": "many"})
    assert client.list_workflow_runs(session.id).items == []
    assert client.list_results(session.id).items == []
    assert provenance(client, session.id) == before


def test_a_failed_step_skips_its_downstream_and_resume_runs_it_again(
    client: LimitClient,
) -> None:
    session = client.create_session()
    run = client.run_workflow(session.id, FAILING, wait=True, timeout=60)
    assert run.state is WorkflowRunState.FAILED
    states = {s.id: s.state for s in run.steps}
    assert states == {
        "boom": StepState.FAILED,
        "after": StepState.SKIPPED,
        "aside": StepState.SUCCEEDED,
    }
    assert run.step("boom").error is not None and "no luck" in run.step("boom").error.message

    resumed = client.resume_workflow_run(session.id, run.id)
    resumed = client.wait_workflow_run(resumed, timeout=60)
    assert resumed.resumes == 1 and resumed.state is WorkflowRunState.FAILED
    assert len(resumed.step("boom").execution_ids) == 2
    assert resumed.step("aside").execution_ids == run.step("aside").execution_ids


def test_resume_from_a_step_reruns_it_and_its_downstream(client: LimitClient) -> None:
    session = client.create_session()
    run = client.run_workflow(session.id, DIAMOND, wait=True, timeout=60)
    resumed = client.resume_workflow_run(session.id, run.id, from_step="b", wait_s=30)
    resumed = client.wait_workflow_run(resumed, timeout=60)
    assert resumed.state is WorkflowRunState.SUCCEEDED
    runs = {s.id: len(s.execution_ids) for s in resumed.steps}
    assert runs == {"a": 1, "b": 2, "c": 1, "d": 2}
    with pytest.raises(InvalidInputError):
        client.resume_workflow_run(session.id, run.id, from_step="no-such-step")


def test_a_cancelled_run_stops_and_a_wait_that_runs_out_says_so(client: LimitClient) -> None:
    session = client.create_session()
    run = client.run_workflow(session.id, SLOW)
    with pytest.raises(WaitTimeout) as timed_out:
        client.wait_workflow_run(run, timeout=0)
    assert timed_out.value.last == run
    cancelled = client.wait_workflow_run(client.cancel_workflow_run(session.id, run.id), timeout=60)
    assert cancelled.state is WorkflowRunState.CANCELLED
    assert cancelled.step("nap").state in (StepState.CANCELLED, StepState.SKIPPED)
    with pytest.raises(NotFoundError):
        client.get_workflow_run(session.id, uuid.uuid4())


def test_the_spec_schema_is_served(client: LimitClient) -> None:
    schema = client.workflow_schema()
    assert {"name", "steps"} <= set(schema["properties"])
