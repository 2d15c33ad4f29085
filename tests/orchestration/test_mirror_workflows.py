"""Workflow runs in Prefect, as the mirror shows them, against the suite's Prefect server.

The ledger is written by hand (``tests/fixtures/workflow_mirror.py``) exactly as the
workflow engine writes it; a :class:`PrefectMirror` is driven with ``run_once``; what
it made is read back through Prefect's own client and the run-graph endpoint the UI
draws (``graph-v2``).  Task runs come from events through the server's task-run
recorder, asynchronously, so readers of task runs are polled until they are there.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from limit_graph.core.models import ErrorInfo, ExecutionState, WorkflowRunState
from limit_graph.deployments.server import PrefectServer
from limit_graph.orchestration.mirror import PrefectMirror
from limit_graph.orchestration.mirror_views import step_task_run_id
from limit_graph.orchestration.mirror_workflow_views import artifact_key, parent_task_run_id
from limit_graph.orchestration.telemetry import Telemetry
from limit_graph.storage.base import Storage
from tests.fixtures.waiting import eventually
from tests.fixtures.workflow_mirror import (
    WorkflowLedger,
    edges_of,
    graph,
    opened_storage,
    step_task_runs,
    versions,
)

FAILED = ErrorInfo(type="StepFailed", message="step b failed: AgentError: division by zero")


@pytest.fixture
async def client(prefect_server: PrefectServer) -> AsyncIterator[PrefectClient]:
    async with PrefectClient(api=prefect_server.api_url) as client:
        yield client


def mirror_of(storage: Storage, server: PrefectServer, **options: Any) -> PrefectMirror:
    return PrefectMirror(storage, server.api_url, telemetry=Telemetry(), **options)


async def drain(mirror: PrefectMirror, storage: Storage) -> None:
    """Mirror until the saved cursor is at the end of the ledger (Prefect took it all)."""
    end = await storage.ledger_size() - 1
    for _ in range(100):
        saved = await storage.get_value("mirror", "cursor") or {}
        if saved.get("index") == end and "chunk_end" not in saved:
            return
        assert await mirror.run_once() > 0, "Prefect refused what the mirror sent"
    raise AssertionError("the mirror did not reach the end of the ledger")


def recorded(count: int) -> Callable[[list[Any]], bool]:
    """``count`` task runs, each with its state: the recorder writes a task run before
    its state, so a read in between finds a run without one."""
    return lambda runs: len(runs) == count and all(run.state is not None for run in runs)


def state_of(run: Any) -> tuple[str, str | None]:
    assert run.state is not None
    return run.state.type.value, run.state.message


# --- the flow run, nested under the session's; the DAG ------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_diamond_run_is_a_child_flow_run_whose_task_runs_draw_the_dag(
    kind: str, tmp_path: Path, prefect_server: PrefectServer, client: PrefectClient
) -> None:
    async with opened_storage(kind, tmp_path) as storage:
        ledger = WorkflowLedger(storage)
        await ledger.open_session()
        run = ledger.new_run("diamond", ["a", "b", "c", "d"], params={"shots": 100})
        run, _ = await ledger.record(run, "workflow.created")
        run, _ = await ledger.record(run, "workflow.started", WorkflowRunState.RUNNING)
        a = await ledger.step(run, "a")
        b = await ledger.step(run, "b", upstream=[a])
        c = await ledger.step(run, "c", upstream=[a])
        d = await ledger.step(run, "d", upstream=[b, c])
        run, _ = await ledger.record(run, "workflow.step")
        run, _ = await ledger.record(run, "workflow.succeeded", WorkflowRunState.SUCCEEDED)
        mirror = mirror_of(storage, prefect_server)
        await drain(mirror, storage)

        session_flow_run = mirror.flow_run_id(ledger.session.id)
        flow_run_id = mirror.workflow_flow_run_id(run.id)
        assert session_flow_run is not None and flow_run_id is not None
        flow_run = await client.read_flow_run(flow_run_id)
        assert (await client.read_flow(flow_run.flow_id)).name == "limit-workflow"
        assert flow_run.name == f"diamond-{run.id.hex[:8]}"
        assert set(flow_run.tags) == {
            f"session:{ledger.session.id}",
            "workflow:diamond",
            f"workflow-run:{run.id}",
        }
        assert flow_run.parameters == {"shots": 100}
        assert state_of(flow_run) == ("COMPLETED", None)

        # nested: its parent task run is in the session's flow run and follows its state
        assert flow_run.parent_task_run_id == parent_task_run_id(run.id)
        parent = await client.read_task_run(flow_run.parent_task_run_id)
        assert parent.flow_run_id == session_flow_run
        assert parent.name == flow_run.name
        assert state_of(parent) == ("COMPLETED", None)
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[session_flow_run])
            )
        )
        assert [child.id for child in children] == [flow_run_id]
        node = (await graph(prefect_server.api_url, session_flow_run))[flow_run_id]
        assert (node["kind"], node["label"]) == ("flow-run", f"limit-workflow / {flow_run.name}")

        # the steps: task runs of the workflow's flow run, their inputs the DAG's edges
        runs = await eventually(lambda: step_task_runs(client, flow_run_id), recorded(4))
        by_name = {task_run.name: task_run for task_run in runs}
        for name, execution in zip("abcd", (a, b, c, d), strict=True):
            task_run = by_name[name]
            assert task_run.id == step_task_run_id(execution.id)
            assert task_run.task_key == f"limit.{name}"
            assert {
                "agent:echo",
                "backend:local",
                f"execution:{execution.id}",
                f"workflow-run:{run.id}",
                f"step:{name}",
            } <= set(task_run.tags)
            assert state_of(task_run) == ("COMPLETED", None)
            assert (task_run.start_time, task_run.end_time) == (
                execution.started_at,
                execution.finished_at,
            )
        dag = {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
        assert edges_of(runs) == dag
        names = {task_run.id: task_run.name for task_run in runs}
        drawn = await graph(prefect_server.api_url, flow_run_id)
        assert {
            (names[uuid.UUID(parent_edge["id"])], names[node_id])
            for node_id, node in drawn.items()
            for parent_edge in node["parents"]
        } == dag

        # the session's flow run holds the workflow's stand-in, not its steps
        assert [r.id for r in await step_task_runs(client, session_flow_run)] == [parent.id]
        assert await mirror.lookup_workflow_flow_run(run.id) == flow_run_id
        assert await storage.get_value("mirror-workflow-runs", str(run.id)) == {
            "id": str(flow_run_id)
        }
        await mirror.close()


async def test_map_items_and_retries_are_task_runs_of_their_own_even_over_budget(
    tmp_path: Path, prefect_server: PrefectServer, client: PrefectClient
) -> None:
    """Over the budget the session's own executions are grouped; a workflow's steps never
    are, since the DAG needs every node."""
    async with opened_storage("memory", tmp_path) as storage:
        ledger = WorkflowLedger(storage)
        await ledger.open_session()
        run = ledger.new_run("sweep", ["prepare", "sample", "report"])
        run, _ = await ledger.record(run, "workflow.created")
        run, _ = await ledger.record(run, "workflow.started", WorkflowRunState.RUNNING)
        prepare = await ledger.step(run, "prepare")
        items = []
        for index in range(5):
            if index == 2:
                await ledger.step(
                    run, "sample", index=2, upstream=[prepare], state=ExecutionState.FAILED
                )
                items.append(
                    await ledger.step(run, "sample", index=2, attempt=2, upstream=[prepare])
                )
            else:
                items.append(await ledger.step(run, "sample", index=index, upstream=[prepare]))
        for _ in range(6):
            await ledger.plain()
        await ledger.step(run, "report", upstream=items)
        run, _ = await ledger.record(run, "workflow.succeeded", WorkflowRunState.SUCCEEDED)
        mirror = mirror_of(storage, prefect_server, task_runs_per_s=1)
        await drain(mirror, storage)

        flow_run_id = mirror.workflow_flow_run_id(run.id)
        assert flow_run_id is not None
        runs = await eventually(lambda: step_task_runs(client, flow_run_id), recorded(8))
        by_name = {task_run.name: task_run for task_run in runs}
        item_names = ["sample[0]", "sample[1]", "sample[2] (attempt 2)", "sample[3]", "sample[4]"]
        assert sorted(by_name) == sorted(["prepare", "sample[2]", "report", *item_names])
        assert state_of(by_name["sample[2]"]) == ("FAILED", "AgentError: it broke")
        assert {task_run.task_key for task_run in runs if task_run.name.startswith("sample")} == {
            "limit.sample"
        }
        assert "grouped" not in {tag for task_run in runs for tag in task_run.tags}
        assert edges_of(runs) == (
            {("prepare", name) for name in [*item_names, "sample[2]"]}
            | {(name, "report") for name in item_names}
        )

        session_runs = await eventually(
            lambda: step_task_runs(client, mirror.flow_run_id(ledger.session.id)),  # type: ignore[arg-type]
            recorded(2),
        )
        assert sorted(task_run.name for task_run in session_runs) == [
            "echo ×6 succeeded",
            f"sweep-{run.id.hex[:8]}",
        ]
        await mirror.close()


async def test_a_failed_run_is_failed_with_its_error(
    tmp_path: Path, prefect_server: PrefectServer, client: PrefectClient
) -> None:
    async with opened_storage("sqlite", tmp_path) as storage:
        ledger = WorkflowLedger(storage)
        await ledger.open_session()
        run = ledger.new_run("fragile", ["a", "b", "c"])
        run, _ = await ledger.record(run, "workflow.created")
        run, _ = await ledger.record(run, "workflow.started", WorkflowRunState.RUNNING)
        a = await ledger.step(run, "a")
        await ledger.step(
            run, "b", upstream=[a], state=ExecutionState.FAILED, message="division by zero"
        )
        run, _ = await ledger.record(run, "workflow.failed", WorkflowRunState.FAILED, FAILED)
        mirror = mirror_of(storage, prefect_server)
        await drain(mirror, storage)

        flow_run_id = mirror.workflow_flow_run_id(run.id)
        assert flow_run_id is not None
        flow_run = await client.read_flow_run(flow_run_id)
        message = "StepFailed: step b failed: AgentError: division by zero"
        assert state_of(flow_run) == ("FAILED", message)
        assert flow_run.parent_task_run_id is not None
        assert state_of(await client.read_task_run(flow_run.parent_task_run_id)) == (
            "FAILED",
            message,
        )
        runs = await eventually(lambda: step_task_runs(client, flow_run_id), recorded(2))
        assert {task_run.name: state_of(task_run) for task_run in runs} == {
            "a": ("COMPLETED", None),
            "b": ("FAILED", "AgentError: division by zero"),
        }
        await mirror.close()


# --- artifacts, replays, resumes --------------------------------------------------------

ROWS = [{"step": "a", "state": "succeeded", "duration_s": 1.0}]


def artifacts_v(version: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "summary",
            "kind": "markdown",
            "media_type": "text/markdown",
            "data": f"# pipeline, version {version}",
            "description": "What the run did.",
        },
        {
            "name": "steps",
            "kind": "table",
            "media_type": "application/json",
            "data": json.dumps(ROWS),
            "description": "",
        },
        {
            "name": "Sample_Plot",
            "kind": "image",
            "media_type": "image/png",
            "data": "iVBORw0KGgo=",
            "description": "Counts by angle.",
        },
    ]


async def test_artifacts_are_published_once_even_when_the_entries_are_mirrored_again(
    tmp_path: Path, prefect_server: PrefectServer, client: PrefectClient
) -> None:
    """A crash after the mirror sent a read but before its cursor moved: the next mirror
    sends it all again, and Prefect still shows each artifact, state and task run once."""
    async with opened_storage("sqlite", tmp_path) as storage:
        ledger = WorkflowLedger(storage)
        await ledger.open_session()
        run = ledger.new_run("pipeline", ["a"])
        run, _ = await ledger.record(run, "workflow.created")
        run, _ = await ledger.record(run, "workflow.started", WorkflowRunState.RUNNING)
        await ledger.step(run, "a")
        await ledger.artifacts(run, artifacts_v(1))
        run, _ = await ledger.record(run, "workflow.succeeded", WorkflowRunState.SUCCEEDED)
        first = mirror_of(storage, prefect_server)
        await drain(first, storage)
        await first.close()
        flow_run_id = first.workflow_flow_run_id(run.id)
        assert flow_run_id is not None
        before = await eventually(lambda: step_task_runs(client, flow_run_id), bool)

        keys = {name: artifact_key(run.id, name) for name in ("summary", "steps", "Sample_Plot")}
        assert keys["summary"] == f"limit-workflow-{run.id}-summary"
        assert keys["Sample_Plot"].startswith(f"limit-workflow-{run.id}-sample-plot-")
        found = {name: await versions(client, flow_run_id, key) for name, key in keys.items()}
        assert {name: [a.type for a in found[name]] for name in found} == {
            "summary": ["markdown"],
            "steps": ["table"],
            "Sample_Plot": ["markdown"],
        }
        assert found["summary"][0].data == "# pipeline, version 1"
        assert found["summary"][0].description.startswith("What the run did.")
        assert json.loads(found["steps"][0].data) == ROWS
        link = f"/sessions/{ledger.session.id}/workflows/{run.id}/artifacts/Sample_Plot"
        assert f"[`{link}`]({link})" in found["Sample_Plot"][0].data

        end = await storage.ledger_size() - 1
        await storage.put_value("mirror", "cursor", {"index": -1, "chunk_end": end})
        again = mirror_of(storage, prefect_server)
        marker = WorkflowLedger(storage)  # written after the crash, mirrored after the replay
        await marker.open_session()
        await marker.plain()
        assert await again.run_once() == end + 1
        assert again.workflow_flow_run_id(run.id) == flow_run_id
        await drain(again, storage)
        # the recorder works in order: once the later run is there, the replay was handled
        await eventually(
            lambda: step_task_runs(client, again.flow_run_id(marker.session.id)),  # type: ignore[arg-type]
            bool,
        )
        await again.close()

        for name, key in keys.items():
            assert len(await versions(client, flow_run_id, key)) == 1, name
        states = Counter(s.type.value for s in await client.read_flow_run_states(flow_run_id))
        assert states == {"PENDING": 1, "RUNNING": 1, "COMPLETED": 1}
        after = await step_task_runs(client, flow_run_id)
        assert [r.id for r in after] == [r.id for r in before]
        assert state_of(after[0]) == ("COMPLETED", None)


async def test_a_resumed_run_runs_again_then_completes_in_the_same_flow_run(
    tmp_path: Path, prefect_server: PrefectServer, client: PrefectClient
) -> None:
    """Failed, resumed, succeeded: mirrored by two mirrors in turn (a restart between),
    one flow run goes Failed → Running → Completed and gets the new artifacts too."""
    async with opened_storage("memory", tmp_path) as storage:
        ledger = WorkflowLedger(storage)
        await ledger.open_session()
        run = ledger.new_run("pipeline", ["a", "b"])
        run, _ = await ledger.record(run, "workflow.created")
        run, _ = await ledger.record(run, "workflow.started", WorkflowRunState.RUNNING)
        a = await ledger.step(run, "a")
        await ledger.step(run, "b", upstream=[a], state=ExecutionState.FAILED)
        await ledger.artifacts(run, artifacts_v(1))
        run, _ = await ledger.record(run, "workflow.failed", WorkflowRunState.FAILED, FAILED)
        first = mirror_of(storage, prefect_server)
        await drain(first, storage)
        await first.close()
        flow_run_id = first.workflow_flow_run_id(run.id)
        assert flow_run_id is not None
        assert state_of(await client.read_flow_run(flow_run_id))[0] == "FAILED"

        run, _ = await ledger.record(run, "workflow.resumed", WorkflowRunState.RUNNING)
        second = mirror_of(storage, prefect_server)  # knows only the saved cursor
        await drain(second, storage)
        assert second.workflow_flow_run_id(run.id) == flow_run_id
        flow_run = await client.read_flow_run(flow_run_id)
        assert state_of(flow_run) == ("RUNNING", None)
        assert flow_run.parent_task_run_id is not None
        assert state_of(await client.read_task_run(flow_run.parent_task_run_id))[0] == "RUNNING"

        await ledger.step(run, "b", upstream=[a], attempt=2)
        await ledger.artifacts(run, artifacts_v(2))
        run, _ = await ledger.record(run, "workflow.succeeded", WorkflowRunState.SUCCEEDED)
        await drain(second, storage)
        await second.close()

        states = await client.read_flow_run_states(flow_run_id)
        assert [s.type.value for s in states] == [
            "PENDING",
            "RUNNING",
            "FAILED",
            "RUNNING",
            "COMPLETED",
        ]
        assert state_of(await client.read_task_run(flow_run.parent_task_run_id))[0] == "COMPLETED"
        summaries = await versions(client, flow_run_id, artifact_key(run.id, "summary"))
        assert sorted(a.data for a in summaries) == [
            "# pipeline, version 1",
            "# pipeline, version 2",
        ]
        runs = await eventually(lambda: step_task_runs(client, flow_run_id), recorded(3))
        assert sorted((r.name, state_of(r)[0]) for r in runs) == [
            ("a", "COMPLETED"),
            ("b", "FAILED"),
            ("b (attempt 2)", "COMPLETED"),
        ]
        assert edges_of(runs) == {("a", "b"), ("a", "b (attempt 2)")}


async def test_a_mirror_behind_a_resume_publishes_the_newest_artifacts_once(
    tmp_path: Path, prefect_server: PrefectServer, client: PrefectClient
) -> None:
    """The run failed, was resumed and succeeded before the mirror read any of it: the
    store holds only the newest artifacts, which both final entries would publish; the
    flow run gets them once, and every state in order."""
    async with opened_storage("memory", tmp_path) as storage:
        ledger = WorkflowLedger(storage)
        await ledger.open_session()
        run = ledger.new_run("pipeline", ["a"])
        run, _ = await ledger.record(run, "workflow.created")
        run, _ = await ledger.record(run, "workflow.started", WorkflowRunState.RUNNING)
        await ledger.step(run, "a", state=ExecutionState.FAILED)
        await ledger.artifacts(run, artifacts_v(1))
        run, _ = await ledger.record(run, "workflow.failed", WorkflowRunState.FAILED, FAILED)
        run, _ = await ledger.record(run, "workflow.resumed", WorkflowRunState.RUNNING)
        await ledger.step(run, "a", attempt=2)
        await ledger.artifacts(run, artifacts_v(2))
        run, _ = await ledger.record(run, "workflow.succeeded", WorkflowRunState.SUCCEEDED)
        mirror = mirror_of(storage, prefect_server)
        await drain(mirror, storage)
        await mirror.close()

        flow_run_id = mirror.workflow_flow_run_id(run.id)
        assert flow_run_id is not None
        summaries = await versions(client, flow_run_id, artifact_key(run.id, "summary"))
        assert [a.data for a in summaries] == ["# pipeline, version 2"]
        states = await client.read_flow_run_states(flow_run_id)
        assert [s.type.value for s in states] == [
            "PENDING",
            "RUNNING",
            "FAILED",
            "RUNNING",
            "COMPLETED",
        ]


# --- what the mirror has to make first, and what it leaves out --------------------------


async def test_a_workflow_whose_session_has_no_flow_run_yet_makes_that_first(
    tmp_path: Path, prefect_server: PrefectServer, client: PrefectClient
) -> None:
    """The session's entry is behind the cursor (mirrored to a Prefect that is gone): the
    workflow's entries make the session's flow run, from its record, and nest under it."""
    async with opened_storage("sqlite", tmp_path) as storage:
        ledger = WorkflowLedger(storage)
        created = await ledger.open_session()
        await storage.put_value("mirror", "cursor", {"index": created.index})
        run = ledger.new_run("late", ["a"])
        run, _ = await ledger.record(run, "workflow.created")
        run, _ = await ledger.record(run, "workflow.started", WorkflowRunState.RUNNING)
        await ledger.step(run, "a")
        mirror = mirror_of(storage, prefect_server)
        await drain(mirror, storage)
        await mirror.close()

        session_flow_run = mirror.flow_run_id(ledger.session.id)
        assert session_flow_run is not None
        session_run = await client.read_flow_run(session_flow_run)
        assert session_run.name == f"session-{ledger.session.id.hex[:8]}"
        assert set(session_run.tags) == {f"session:{ledger.session.id}", "tenant:acme"}
        flow_run_id = mirror.workflow_flow_run_id(run.id)
        assert flow_run_id is not None
        flow_run = await client.read_flow_run(flow_run_id)
        assert state_of(flow_run) == ("RUNNING", None)
        assert flow_run.parent_task_run_id is not None
        parent = await client.read_task_run(flow_run.parent_task_run_id)
        assert parent.flow_run_id == session_flow_run
        await eventually(lambda: step_task_runs(client, flow_run_id), recorded(1))


async def test_a_restarted_mirror_files_later_steps_under_the_same_flow_run(
    tmp_path: Path, prefect_server: PrefectServer, client: PrefectClient
) -> None:
    """A read holding only a step's execution, by a mirror that has not seen its run:
    the run's flow run is found again (idempotency key), not made a second time."""
    async with opened_storage("sqlite", tmp_path) as storage:
        ledger = WorkflowLedger(storage)
        await ledger.open_session()
        run = ledger.new_run("chain", ["a", "b"])
        run, _ = await ledger.record(run, "workflow.created")
        run, _ = await ledger.record(run, "workflow.started", WorkflowRunState.RUNNING)
        a = await ledger.step(run, "a")
        first = mirror_of(storage, prefect_server)
        await drain(first, storage)
        await first.close()

        await ledger.step(run, "b", upstream=[a])
        again = mirror_of(storage, prefect_server)
        await drain(again, storage)
        await again.close()
        flow_run_id = again.workflow_flow_run_id(run.id)
        assert flow_run_id is not None and flow_run_id == first.workflow_flow_run_id(run.id)
        runs = await eventually(lambda: step_task_runs(client, flow_run_id), recorded(2))
        assert edges_of(runs) == {("a", "b")}
        workflow_flow = (await client.read_flow_run(flow_run_id)).flow_id
        same_name = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(
                    any_=[again.flow_run_id(ledger.session.id)]
                )
            )
        )
        assert [(r.id, r.flow_id) for r in same_name] == [(flow_run_id, workflow_flow)]


async def test_params_too_large_and_artifacts_it_cannot_show_do_not_stop_the_mirror(
    tmp_path: Path, prefect_server: PrefectServer, client: PrefectClient
) -> None:
    """Prefect caps a flow run's parameters, and an artifact may be missing from the store
    or of a kind Prefect has no view for: the mirror shows what it can and moves on."""
    async with opened_storage("memory", tmp_path) as storage:
        ledger = WorkflowLedger(storage)
        await ledger.open_session()
        run = ledger.new_run("bulky", ["a"], params={"blob": "x" * 70_000})
        run, _ = await ledger.record(run, "workflow.created")
        run, _ = await ledger.record(run, "workflow.started", WorkflowRunState.RUNNING)
        await ledger.step(run, "a")
        summary, *_ = artifacts_v(1)
        clip = {**summary, "name": "clip", "kind": "video", "media_type": "video/mp4"}
        await ledger.artifacts(run, [summary, clip])
        listing = {"names": ["summary", "gone", "clip"]}
        await storage.put_value("workflow-artifacts", str(run.id), listing)
        run, _ = await ledger.record(run, "workflow.succeeded", WorkflowRunState.SUCCEEDED)
        mirror = mirror_of(storage, prefect_server)
        await drain(mirror, storage)
        await mirror.close()

        flow_run_id = mirror.workflow_flow_run_id(run.id)
        assert flow_run_id is not None
        flow_run = await client.read_flow_run(flow_run_id)
        assert state_of(flow_run) == ("COMPLETED", None)
        note = flow_run.parameters["params"]
        assert "too large to show" in note
        assert f"/sessions/{ledger.session.id}/workflows/{run.id}" in note
        assert list(flow_run.parameters) == ["params"]
        for name, expected in (("summary", 1), ("gone", 0), ("clip", 0)):
            assert len(await versions(client, flow_run_id, artifact_key(run.id, name))) == expected
