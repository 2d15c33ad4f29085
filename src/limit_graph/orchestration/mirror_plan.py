"""One read of the ledger, sorted by what shows it in Prefect, and the task runs it makes.

The mirror reads the ledger a chunk at a time (:class:`Chunk`); :class:`Read` sorts the
entries that Prefect shows (sessions' lifecycle entries, finished executions, workflow
runs' entries) and :func:`task_runs` turns its executions into task runs: one each, or
over the budget grouped per (session, agent, backend, instance, final state); the
executions of workflow steps always one each.  The mirror then plans the requests
(:data:`Step`) of the chunk in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from limit_graph.core.models import ProvenanceEntry
from limit_graph.orchestration.mirror_sessions import SESSION_ACTIONS
from limit_graph.orchestration.mirror_views import FinishedExecution, MirroredTaskRun
from limit_graph.orchestration.mirror_workflow_views import WorkflowEntry

__all__ = ["Chunk", "Read", "Step", "task_runs"]

Step = Callable[[bool], Awaitable[None]]
"""One request of a read; its argument says whether Prefect may have seen it before."""


@dataclass
class Chunk:
    """One read of the ledger and the requests that show it in Prefect, done in order.

    ``done`` counts the steps Prefect accepted, so a retry after an outage resumes
    where it stopped; that step itself may have reached Prefect (its answer was lost),
    which ``tried`` tells it.  ``replayed``: read again after a crash, so any step may
    have.  ``grouped``: whether executions go as grouped task runs (``None`` until
    planned, unless the interrupted read it repeats recorded it).
    """

    entries: list[ProvenanceEntry]
    replayed: bool
    grouped: bool | None
    task_runs: int = 0
    steps: list[Step] = field(default_factory=list)
    done: int = 0
    tried: int = -1

    @property
    def end(self) -> int:
        return self.entries[-1].index


@dataclass
class Read:
    """The entries of a chunk that Prefect shows, by kind, each in ledger order."""

    sessions: list[ProvenanceEntry] = field(default_factory=list)
    finals: list[FinishedExecution] = field(default_factory=list)
    """Finished executions that are not workflow steps."""
    steps: list[FinishedExecution] = field(default_factory=list)
    """Finished executions of workflow steps (map items, retries)."""
    workflows: list[WorkflowEntry] = field(default_factory=list)

    @classmethod
    def of(cls, entries: list[ProvenanceEntry]) -> Read:
        read = cls()
        for entry in entries:
            if entry.session_id is None:
                continue
            if entry.resource_type == "session" and entry.action in SESSION_ACTIONS:
                read.sessions.append(entry)
            elif entry.resource_type == "execution" and (final := FinishedExecution.parse(entry)):
                (read.finals if final.workflow is None else read.steps).append(final)
            elif run := WorkflowEntry.parse(entry):
                read.workflows.append(run)
        return read

    def first_of_each_run(self) -> list[WorkflowEntry]:
        """Each workflow run's first entry in this read (what its flow run is made from)."""
        first: dict[uuid.UUID, WorkflowEntry] = {}
        for run in self.workflows:
            first.setdefault(run.run_id, run)
        return list(first.values())


def task_runs(read: Read, chunk: Chunk) -> list[MirroredTaskRun]:
    """The read's task runs: executions grouped if the chunk is, workflow steps never."""
    steps = [MirroredTaskRun.step(final) for final in read.steps]
    if not chunk.grouped:
        return [MirroredTaskRun.single(final) for final in read.finals] + steps
    groups: dict[tuple[uuid.UUID, str, str, str, str], list[FinishedExecution]] = {}
    for final in read.finals:
        groups.setdefault(final.group, []).append(final)
    bounds = (chunk.entries[0].index, chunk.end)
    return [MirroredTaskRun.group_of(group, bounds) for group in groups.values()] + steps
