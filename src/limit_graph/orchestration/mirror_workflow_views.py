"""What the Prefect mirror shows of a workflow run: its flow run, states and artifacts.

A ``workflow_run`` ledger entry (payload: the whole ``WorkflowRun`` document) becomes
a :class:`WorkflowEntry`.  Its run is a flow run of flow :data:`WORKFLOW_FLOW_NAME`,
named ``<workflow name>-<first 8 hex of the run id>``, tagged ``session:<uuid>``,
``workflow:<name>`` and ``workflow-run:<uuid>``, with the run's params as parameters
and the run id as idempotency key, made a child of the session's flow run through
a task run there that stands for the subflow call (:func:`parent_task_run_id`, a
uuid5 of the run id).  Its states (:data:`RUN_STATES`): Pending; Running on
``workflow.started`` and ``workflow.resumed``; Completed, Failed or Cancelled on the
final entries, with the run's error as message; each transition carries a
``transition_id`` naming its ledger entry, so that one sent again is found in the
run's state history and skipped.

A final entry publishes the run's artifacts, which the workflow engine keeps in the
store's bookkeeping (namespace :data:`ARTIFACTS`): markdown and table ones as they
are, an image as a markdown artifact linking to where the platform's API serves it;
each under the key :func:`artifact_key`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from limit_graph.core.models import ProvenanceEntry
from limit_graph.orchestration.mirror_prefect import PrefectState
from limit_graph.orchestration.workflows.artifacts import ARTIFACTS

__all__ = [
    "ARTIFACTS",
    "PARAMS_SHOWN_BYTES",
    "RUN_STATES",
    "WORKFLOW_ACTIONS",
    "WORKFLOW_FINAL_ACTIONS",
    "WORKFLOW_STATE_ACTIONS",
    "WORKFLOW_FLOW_NAME",
    "WorkflowEntry",
    "artifact_body",
    "artifact_key",
    "parent_task_run_id",
]

WORKFLOW_FLOW_NAME = "limit-workflow"
PARAMS_SHOWN_BYTES = 65_536
"""Params larger than this (as JSON) are not copied into the flow run's parameters."""

_IDS = uuid.UUID("0b6f4a52-3c1e-4f7d-8e29-5d7a91c4e603")  # uuid5 namespace of workflow ids

WORKFLOW_FINAL_ACTIONS = frozenset({"workflow.succeeded", "workflow.failed", "workflow.cancelled"})
WORKFLOW_STATE_ACTIONS = frozenset(
    {"workflow.started", "workflow.resumed", *WORKFLOW_FINAL_ACTIONS}
)
"""Entries that move the run's flow run to the state they record."""
WORKFLOW_ACTIONS = frozenset({"workflow.created", "workflow.step", *WORKFLOW_STATE_ACTIONS})

# workflow run state -> the state of its flow run
RUN_STATES: dict[str, PrefectState] = {
    "pending": PrefectState("PENDING", "Pending"),
    "running": PrefectState("RUNNING", "Running"),
    "succeeded": PrefectState("COMPLETED", "Completed"),
    "failed": PrefectState("FAILED", "Failed"),
    "cancelled": PrefectState("CANCELLED", "Cancelled"),
}


@dataclass(frozen=True)
class WorkflowEntry:
    """A workflow run as one of its ledger entries (or its stored record) shows it."""

    run_id: uuid.UUID
    session_id: uuid.UUID
    name: str
    state: str
    params: dict[str, Any]
    error: str | None
    action: str
    index: int

    @classmethod
    def parse(cls, entry: ProvenanceEntry) -> WorkflowEntry | None:
        if entry.resource_type != "workflow_run" or entry.action not in WORKFLOW_ACTIONS:
            return None
        return cls.of(entry.written(), action=entry.action, index=entry.index)

    @classmethod
    def of(cls, doc: dict[str, Any], *, action: str, index: int) -> WorkflowEntry:
        """From a ``WorkflowRun`` document."""
        error = doc.get("error")
        return cls(
            run_id=uuid.UUID(str(doc["id"])),
            session_id=uuid.UUID(str(doc["session_id"])),
            name=str(doc.get("name") or "workflow"),
            state=str(doc.get("state") or "pending"),
            params=dict(doc.get("params") or {}),
            error=f"{error['type']}: {error['message']}"[:2000] if error else None,
            action=action,
            index=index,
        )

    @property
    def flow_run_name(self) -> str:
        """``<workflow name>-<first 8 hex of the run id>``.

        >>> WorkflowEntry.of(
        ...     {"id": str(uuid.UUID(int=0xABCDEF12 << 96)), "session_id": str(uuid.UUID(int=1)),
        ...      "name": "bell-sweep"}, action="workflow.created", index=0,
        ... ).flow_run_name
        'bell-sweep-abcdef12'
        """
        return f"{self.name}-{self.run_id.hex[:8]}"

    @property
    def tags(self) -> list[str]:
        return [
            f"session:{self.session_id}",
            f"workflow:{self.name}",
            f"workflow-run:{self.run_id}",
        ]

    @property
    def prefect_state(self) -> PrefectState:
        """The flow run's state for this entry (the run's error as a final's message),
        named by the entry, so that a replay can tell whether it was made."""
        state = RUN_STATES.get(self.state, RUN_STATES["running"])
        message = self.error if self.action in WORKFLOW_FINAL_ACTIONS else None
        return PrefectState(state.type, state.name, message, self.transition_id)

    @property
    def transition_id(self) -> uuid.UUID | None:
        """The id of the transition this entry makes (``None``: not from the ledger)."""
        if self.index < 0:
            return None
        return uuid.uuid5(_IDS, f"transition:{self.run_id}:{self.index}")

    def shown_params(self) -> dict[str, Any]:
        """The params as the flow run's parameters (a note instead, when too large)."""
        size = len(json.dumps(self.params, default=str).encode())
        if size <= PARAMS_SHOWN_BYTES:
            return self.params
        where = f"/sessions/{self.session_id}/workflows/{self.run_id}"
        return {"params": f"{size:,} bytes of params, too large to show here; see {where}"}

    def parent_task_run(self, session_flow_run_id: uuid.UUID) -> dict[str, Any]:
        """The task run in the session's flow run that stands for this run's flow run
        (Prefect nests a flow run under the one holding its ``parent_task_run_id``).

        Its id, task key and dynamic key follow from the run id alone, so a second
        create of it, from whatever the mirror knows of the run then, is answered with
        the first; it starts Pending and Prefect moves it with the flow run.
        """
        return {
            "id": str(parent_task_run_id(self.run_id)),
            "name": self.flow_run_name,
            "flow_run_id": str(session_flow_run_id),
            "task_key": WORKFLOW_FLOW_NAME,
            "dynamic_key": str(self.run_id),
            "tags": self.tags,
        }

    def flow_run(self, flow_id: str, parent_id: str, state: PrefectState) -> dict[str, Any]:
        """The body that creates (or, by idempotency key, finds) the run's flow run."""
        return {
            "flow_id": flow_id,
            "name": self.flow_run_name,
            "tags": self.tags,
            "parameters": self.shown_params(),
            "idempotency_key": str(self.run_id),
            "parent_task_run_id": parent_id,
            "state": state.body(),
        }


def parent_task_run_id(run_id: uuid.UUID) -> uuid.UUID:
    """The id of the task run that stands for the workflow run in its session's flow run.

    >>> parent_task_run_id(uuid.UUID(int=7)) == parent_task_run_id(uuid.UUID(int=7))
    True
    """
    return uuid.uuid5(_IDS, f"workflow-run:{run_id}")


def artifact_key(run_id: uuid.UUID, name: str) -> str:
    """``limit-workflow-<run id>-<name>`` in what Prefect allows in a key (lowercase
    letters, digits, dashes); a name changed to fit gets a hash of itself, so that two
    names never share a key.

    >>> artifact_key(uuid.UUID(int=0), "summary")
    'limit-workflow-00000000-0000-0000-0000-000000000000-summary'
    >>> artifact_key(uuid.UUID(int=0), "Sample_Plot").startswith(
    ...     "limit-workflow-00000000-0000-0000-0000-000000000000-sample-plot-")
    True
    """
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if slug != name:
        slug = f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}".lstrip("-")
    return f"limit-workflow-{run_id}-{slug}"


def artifact_body(
    run: WorkflowEntry, doc: dict[str, Any], flow_run_id: uuid.UUID
) -> dict[str, Any] | None:
    """The Prefect artifact for one of the run's stored artifacts (``None``: a kind the
    mirror does not show)."""
    name = str(doc.get("name") or "")
    kind = doc.get("kind")
    if not name:
        return None
    note = f"workflow run {run.flow_run_name}"
    description = f"{doc['description']} ({note})" if doc.get("description") else note.capitalize()
    data = doc.get("data", "")
    if kind == "image":
        path = f"/sessions/{run.session_id}/workflows/{run.run_id}/artifacts/{quote(name, safe='')}"
        data = "\n".join(
            [
                f"# {name}",
                "",
                str(doc.get("description") or f"A plot of workflow run {run.flow_run_name}."),
                "",
                f"The image ({doc.get('media_type', 'image/png')}) is at [`{path}`]({path}) "
                "on the platform's API.",
            ]
        )
        kind = "markdown"
    elif kind not in ("markdown", "table"):
        return None
    return {
        "key": artifact_key(run.run_id, name),
        "type": kind,
        "data": data,
        "description": description,
        "flow_run_id": str(flow_run_id),
    }
