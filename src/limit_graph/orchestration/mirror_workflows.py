"""Workflow runs in Prefect: a child flow run of the session's each, its states, artifacts.

What is shown is in :mod:`.mirror_workflow_views`; this module makes it, by requests
that may all be sent again after a lost answer or a crash:

- the task run that stands for the workflow run in the session's flow run is made
  with ``POST /api/task_runs/`` and a uuid5 id (Prefect answers a second create of the
  same flow run, task key and dynamic key with the first); it has to exist before the
  flow run that names it as ``parent_task_run_id`` (a foreign key), so it cannot go
  through the asynchronous events path the executions take.  Prefect itself then keeps
  its state equal to the flow run's (the server's ``UpdateSubflowParentTask`` rule,
  which runs on every flow-run state change, forced ones included);
- the flow run is made with the run id as idempotency key, so a second create finds
  the first (and keeps the parent it was made with);
- each state names its ledger entry in ``state_details.transition_id``; sent again, it
  is skipped when the flow run's state history holds that id (whatever came after:
  a replayed read that took a run from Running to Completed adds no second pair);
- an artifact is published unless the newest version under its key on the flow run
  already has the same data and description, so a replay, or a final entry mirrored
  after a resume rewrote the artifacts, adds no version.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

from limit_graph.orchestration.mirror_prefect import PrefectApi, PrefectState, Unavailable
from limit_graph.orchestration.mirror_sessions import SessionRuns, remember
from limit_graph.orchestration.mirror_workflow_views import (
    ARTIFACTS,
    RUN_STATES,
    WORKFLOW_FLOW_NAME,
    WORKFLOW_STATE_ACTIONS,
    WorkflowEntry,
    artifact_body,
)
from limit_graph.storage.base import Storage

__all__ = ["WORKFLOW_FLOW_RUNS", "WorkflowRuns"]

WORKFLOW_FLOW_RUNS = "mirror-workflow-runs"
"""Bookkeeping namespace: workflow run id → its flow run id, for the API."""


class WorkflowRuns:
    """The workflow runs' flow runs: made or found under their session's, moved between
    states, given the run's artifacts."""

    def __init__(self, api: PrefectApi, storage: Storage, sessions: SessionRuns) -> None:
        self.api = api
        self.storage = storage
        self.sessions = sessions
        self.known: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()

    async def lookup(self, run_id: uuid.UUID) -> uuid.UUID | None:
        """The run's flow run, from memory or the store (never asks Prefect)."""
        known = self.known.get(run_id)
        if known is not None:
            return known
        stored = await self.storage.get_value(WORKFLOW_FLOW_RUNS, str(run_id))
        return uuid.UUID(stored["id"]) if stored is not None else None

    async def flow_run(
        self, run_id: uuid.UUID, session_id: uuid.UUID, run: WorkflowEntry | None = None
    ) -> uuid.UUID:
        """The run's flow run: remembered, or made (or found: idempotency key) under the
        session's flow run, which is made first if need be.

        ``run`` is what to make it from; without it, the run's stored record, and failing
        that (the ledger holds a step's execution but no entry of its run) a stand-in
        named ``workflow``.
        """
        known = self.known.get(run_id)
        if known is not None:
            self.known.move_to_end(run_id)
            return known
        if run is None:
            run = await self._stored(run_id, session_id)
        # an entry that moves the run on is sent as a transition after this creation
        state = RUN_STATES["pending"] if run.action in WORKFLOW_STATE_ACTIONS else run.prefect_state
        session_flow_run = await self.sessions.flow_run(run.session_id)
        parent = await self.api.call("POST", "task_runs/", run.parent_task_run(session_flow_run))
        body = run.flow_run(
            await self.api.flow_id(WORKFLOW_FLOW_NAME), str(parent.json()["id"]), state
        )
        flow_run_id = await self.api.create_flow_run(body)
        if self.known.get(run_id) != flow_run_id:
            await self.storage.put_value(WORKFLOW_FLOW_RUNS, str(run_id), {"id": str(flow_run_id)})
        remember(self.known, run_id, flow_run_id)
        return flow_run_id

    async def _stored(self, run_id: uuid.UUID, session_id: uuid.UUID) -> WorkflowEntry:
        record = await self.storage.get_workflow_run(run_id)
        if record is not None:
            return WorkflowEntry.of(record.document(), action="workflow.step", index=-1)
        doc = {"id": str(run_id), "session_id": str(session_id), "state": "running"}
        return WorkflowEntry.of(doc, action="workflow.step", index=-1)

    async def find(self, run: WorkflowEntry, _again: bool) -> None:
        """The run's flow run, before its steps' task runs are filed under it."""
        await self.flow_run(run.run_id, run.session_id, run)

    async def set_state(self, run: WorkflowEntry, again: bool) -> None:
        state: PrefectState = run.prefect_state
        for _ in range(2):
            flow_run_id = await self.flow_run(run.run_id, run.session_id, run)
            if await self.api.set_state(flow_run_id, state, again=again):
                return
            self.known.pop(run.run_id, None)  # deleted in Prefect: make anew
        raise Unavailable(f"the flow run of workflow run {run.run_id} keeps disappearing")

    async def publish(self, run: WorkflowEntry, _again: bool) -> None:
        """The run's artifacts on its flow run (what is already there is not sent again)."""
        listing = await self.storage.get_value(ARTIFACTS, str(run.run_id))
        if listing is None:
            return
        flow_run_id = await self.flow_run(run.run_id, run.session_id, run)
        for name in listing.get("names", []):
            doc = await self.storage.get_value(ARTIFACTS, f"{run.run_id}/{name}")
            artifact = artifact_body(run, doc, flow_run_id) if doc is not None else None
            if artifact is None:
                continue
            latest = await self.api.latest_artifact(artifact["key"], artifact["flow_run_id"])
            if latest is not None and all(
                latest.get(field) == artifact[field] for field in ("data", "description")
            ):
                continue
            await self.api.call("POST", "artifacts/", artifact)
