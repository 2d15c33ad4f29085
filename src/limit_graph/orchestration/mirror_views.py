"""What the Prefect mirror shows: task runs for executions, artifacts for sessions.

A finished execution's ledger entry becomes a :class:`FinishedExecution`; one of them,
or a group of them (same session, agent, backend, instance and final state), becomes
a :class:`MirroredTaskRun`, sent to Prefect as a ``prefect.task-run.*`` event which the
server's task-run recorder turns into a task run.  Every id is a uuid5 of what the run
shows: the execution id and attempt, or for a group its key and the ledger range of the
read it was drawn from (which fixes exactly the executions it covers); the event id is
a uuid5 of the task run's.  The recorder upserts task runs by id and keeps one state per
event id, so sending the same run again changes nothing.  :func:`executions_shown` reads
a task run back as the platform state and number of executions it stands for.  A
completed session gets a table of its executions (the first :data:`TABLE_ROWS`) and a
markdown summary.

An execution that is a step (or map item) of a workflow run (its ``workflow`` tag) is
never grouped: :meth:`MirroredTaskRun.step` files it under the workflow run's flow run,
named after the step, with the id :func:`step_task_run_id` (a uuid5 of the execution id
alone, so a downstream step, which knows only its upstream execution ids, can name
their task runs) and ``task_inputs`` ``{"upstream": [{"input_type": "task_run", "id":
...}, ...]}``.  The recorder builds the task run from the event's ``payload.task_run``
(``TaskRun.model_validate``), ``task_inputs`` included, and the server's run graph
(``GET /api/flow_runs/{id}/graph-v2``) draws an edge for every task-run id in a task
run's ``task_inputs``: Prefect draws the DAG.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from limit_graph.core.models import Execution, ExecutionState, ProvenanceEntry, WorkflowTag

__all__ = [
    "FINAL_ACTIONS",
    "TABLE_ROWS",
    "TASK_STATES",
    "FinishedExecution",
    "MirroredTaskRun",
    "execution_rows",
    "executions_shown",
    "step_task_run_id",
    "summary_markdown",
    "where_tags",
]

TABLE_ROWS = 1000

_IDS = uuid.UUID("6c1d2f4e-8a57-4d0b-9a53-1f0c7e2b9d41")  # uuid5 namespace of mirrored ids

FINAL_ACTIONS = frozenset(
    {
        "execution.succeeded",
        "execution.failed",
        "execution.timed_out",
        "execution.cancelled",
        "execution.cache_hit",
        "execution.restored",
    }
)
FINAL_STATES = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
# execution state (``cached``: a cache hit) -> Prefect state type and name
TASK_STATES: dict[str, tuple[str, str]] = {
    "succeeded": ("COMPLETED", "Completed"),
    "cached": ("COMPLETED", "Cached"),
    "failed": ("FAILED", "Failed"),
    "timed_out": ("FAILED", "TimedOut"),
    "cancelled": ("CANCELLED", "Cancelled"),
}
# Prefect state name of a mirrored task run -> the platform's final state
PLATFORM_STATES: dict[str, str] = {
    name: "succeeded" if label == "cached" else label for label, (_, name) in TASK_STATES.items()
}


@dataclass(frozen=True)
class FinishedExecution:
    """A finished execution as its ledger entry recorded it."""

    session_id: uuid.UUID
    execution_id: uuid.UUID
    agent: str
    version: str
    backend: str
    instance: str
    label: str
    attempts: int
    start: datetime
    end: datetime
    error: str | None
    workflow: WorkflowTag | None = None

    @classmethod
    def parse(cls, entry: ProvenanceEntry) -> FinishedExecution | None:
        doc = entry.written()
        if entry.action not in FINAL_ACTIONS or doc.get("state") not in FINAL_STATES:
            return None
        end = datetime.fromisoformat(doc["finished_at"] or entry.timestamp.isoformat())
        error = doc.get("error")
        return cls(
            session_id=uuid.UUID(doc["session_id"]),
            execution_id=uuid.UUID(doc["id"]),
            agent=doc["agent"],
            version=doc.get("agent_version", ""),
            backend=doc["backend"],
            instance=doc["instance"],
            label="cached" if doc.get("cache_hit") else doc["state"],
            attempts=max(1, int(doc.get("attempts") or 1)),
            start=datetime.fromisoformat(doc["started_at"]) if doc.get("started_at") else end,
            end=end,
            error=f"{error['type']}: {error['message']}"[:2000] if error else None,
            workflow=WorkflowTag.model_validate(doc["workflow"]) if doc.get("workflow") else None,
        )

    @property
    def group(self) -> tuple[uuid.UUID, str, str, str, str]:
        return (self.session_id, self.agent, self.backend, self.instance, self.label)


@dataclass(frozen=True)
class MirroredTaskRun:
    """One task run to show: a single execution or a group of them."""

    id: uuid.UUID
    session_id: uuid.UUID
    name: str
    task_key: str
    dynamic_key: str
    version: str
    tags: list[str]
    label: str
    message: str | None
    start: datetime
    end: datetime
    run_count: int
    grouped: bool
    workflow_run_id: uuid.UUID | None = None
    task_inputs: dict[str, list[dict[str, str]]] | None = None

    @classmethod
    def single(cls, final: FinishedExecution) -> MirroredTaskRun:
        key = f"{final.execution_id}:{final.attempts}"
        return cls(
            id=uuid.uuid5(_IDS, key),
            session_id=final.session_id,
            name=f"{final.agent}-{final.execution_id.hex[:8]}",
            task_key=f"limit.{final.agent}",
            dynamic_key=key,
            version=final.version,
            tags=[*where_tags(final), f"execution:{final.execution_id}"],
            label=final.label,
            message=final.error,
            start=final.start,
            end=final.end,
            run_count=final.attempts,
            grouped=False,
        )

    @classmethod
    def group_of(
        cls, finals: Sequence[FinishedExecution], entries: tuple[int, int]
    ) -> MirroredTaskRun:
        """The executions of one group key among the ledger entries ``entries`` (first and
        last index of one read): the range and the key name exactly these executions, so
        they name the run, and the same read sent again is the same run."""
        first = finals[0]
        if len(finals) == 1:
            return cls.single(first)
        session_id, agent, backend, instance, label = first.group
        key = f"group:{entries[0]}-{entries[1]}:{backend}:{instance}:{label}"
        start, end = min(f.start for f in finals), max(f.end for f in finals)
        state = "succeeded" if label == "cached" else label
        results = f"/sessions/{session_id}/results"
        return cls(
            id=uuid.uuid5(_IDS, f"{session_id}:{agent}:{key}"),
            session_id=session_id,
            name=f"{agent} ×{len(finals)} {label}",
            task_key=f"limit.{agent}",
            dynamic_key=key,
            version=first.version,
            tags=[*where_tags(first), "grouped", f"count:{len(finals)}", f"results:{results}"],
            label=label,
            message=(
                f"{len(finals)} executions of {agent} on {backend}/{instance} ended {label} "
                f"between {start.isoformat()} and {end.isoformat()}; "
                f"each one is at {results}?state={state}"
            ),
            start=start,
            end=end,
            run_count=1,
            grouped=True,
        )

    @classmethod
    def step(cls, final: FinishedExecution) -> MirroredTaskRun:
        """A workflow step's execution, under its run's flow run, its upstream as inputs."""
        tag = final.workflow
        assert tag is not None
        name = tag.step if tag.index is None else f"{tag.step}[{tag.index}]"
        if tag.attempt > 1:
            name += f" (attempt {tag.attempt})"
        return cls(
            id=step_task_run_id(final.execution_id),
            session_id=final.session_id,
            name=name,
            task_key=f"limit.{tag.step}",
            dynamic_key=str(final.execution_id),
            version=final.version,
            tags=[
                *where_tags(final),
                f"execution:{final.execution_id}",
                f"workflow-run:{tag.run_id}",
                f"step:{tag.step}",
            ],
            label=final.label,
            message=final.error,
            start=final.start,
            end=final.end,
            run_count=final.attempts,
            grouped=False,
            workflow_run_id=tag.run_id,
            task_inputs={
                "upstream": [
                    {"input_type": "task_run", "id": str(step_task_run_id(upstream))}
                    for upstream in tag.upstream
                ]
            },
        )

    def event(self, flow_run_id: uuid.UUID) -> dict[str, Any]:
        """The ``prefect.task-run.*`` event the server's task-run recorder turns into this run."""
        state_type, state_name = TASK_STATES[self.label]
        task_run: dict[str, Any] = {
            "name": self.name,
            "task_key": self.task_key,
            "dynamic_key": self.dynamic_key,
            "task_version": self.version,
            "tags": self.tags,
            "run_count": self.run_count,
            "flow_run_run_count": 1,
            "expected_start_time": self.start.isoformat(),
            "start_time": self.start.isoformat(),
            "end_time": self.end.isoformat(),
            "total_run_time": (self.end - self.start).total_seconds(),
        }
        if self.task_inputs is not None:
            task_run["task_inputs"] = self.task_inputs
        return {
            "id": str(uuid.uuid5(_IDS, f"event:{self.id}")),
            "occurred": self.end.isoformat(),
            "event": f"prefect.task-run.{state_name}",
            "resource": {
                "prefect.resource.id": f"prefect.task-run.{self.id}",
                "prefect.resource.name": self.name,
                "prefect.state-name": state_name,
                "prefect.state-type": state_type,
                "prefect.orchestration": "client",
            },
            "related": [
                {
                    "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                    "prefect.resource.role": "flow-run",
                }
            ],
            "payload": {
                "intended": {"from": None, "to": state_type},
                "initial_state": None,
                "validated_state": {
                    "type": state_type,
                    "name": state_name,
                    "message": self.message,
                    "state_details": {},
                    "data": None,
                },
                "task_run": task_run,
            },
        }


def step_task_run_id(execution_id: uuid.UUID) -> uuid.UUID:
    """The task run of a workflow step's execution: computable from the execution id alone.

    >>> step_task_run_id(uuid.UUID(int=1)) == step_task_run_id(uuid.UUID(int=1))
    True
    >>> step_task_run_id(uuid.UUID(int=1)) == step_task_run_id(uuid.UUID(int=2))
    False
    """
    return uuid.uuid5(_IDS, f"step:{execution_id}")


def executions_shown(state_name: str | None, tags: Sequence[str]) -> tuple[str, int]:
    """The platform state and the number of executions a mirrored task run stands for.

    >>> executions_shown("Cached", ["grouped", "count:240"])
    ('succeeded', 240)
    >>> executions_shown("TimedOut", ["agent:sleep"])
    ('timed_out', 1)
    """
    counts = [int(tag.removeprefix("count:")) for tag in tags if tag.startswith("count:")]
    state = PLATFORM_STATES.get(state_name or "", f"prefect:{state_name}")
    return state, counts[0] if counts else 1


def where_tags(final: FinishedExecution) -> list[str]:
    return [f"agent:{final.agent}", f"backend:{final.backend}", f"instance:{final.instance}"]


def execution_rows(executions: Sequence[Execution]) -> list[dict[str, Any]]:
    """The rows of a session's table artifact."""
    return [
        {
            "agent": e.agent,
            "backend": e.backend.value,
            "instance": e.instance,
            "state": e.state.value,
            "duration_s": (
                round((e.finished_at - e.started_at).total_seconds(), 6)
                if e.started_at and e.finished_at
                else None
            ),
            "link": f"/sessions/{e.session_id}/executions/{e.id}",
        }
        for e in executions
    ]


def summary_markdown(
    entry: ProvenanceEntry, counts: dict[tuple[ExecutionState, str], int], shown: int
) -> str:
    """Markdown: counts by backend and state, the ledger at that point, where results are."""
    session_id = entry.session_id
    states = sorted({state.value for state, _ in counts})
    by_cell = {(backend, state.value): n for (state, backend), n in counts.items()}
    total = sum(counts.values())
    lines = [
        f"# Session {entry.written().get('name', session_id)}: {entry.written()['state']}",
        "",
        f"{total:,} executions; the table artifact lists the first {shown:,} "
        f"(at most {TABLE_ROWS:,}); every one is at `/sessions/{session_id}/results`.",
        "",
        "| backend | " + " | ".join(states) + " |",
        "| --- |" + " ---: |" * len(states),
    ]
    for backend in sorted({backend for _, backend in counts}):
        cells = [f"{by_cell.get((backend, state), 0):,}" for state in states]
        lines.append(f"| {backend} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Ledger at this point: {entry.index + 1:,} entries; last leaf hash `{entry.leaf_hash}`.",
    ]
    return "\n".join(lines)
