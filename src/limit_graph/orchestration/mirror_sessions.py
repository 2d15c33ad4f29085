"""Sessions in Prefect: a flow run each, its state, and the artifacts of a completed one.

A session is a flow run of flow :data:`FLOW_NAME`, named ``session-<8 hex>``, tagged
``session:<uuid>`` and ``tenant:<name>``, created with the session id as idempotency
key (so a replay finds the same run): Running while active, Completed when completed
or archived, Cancelled when deleted.  On completion or archive it gets a table
artifact of the executions (the first :data:`~.mirror_views.TABLE_ROWS`) and a
markdown summary.  The flow-run ids are remembered (the newest
:data:`FLOW_RUNS_REMEMBERED` in memory, each in the store's bookkeeping under
:data:`FLOW_RUNS` for the API, which shows it as ``prefect_flow_run_id``).
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from typing import Any

from limit_graph.core.models import ProvenanceEntry
from limit_graph.orchestration.mirror_prefect import PrefectApi, PrefectState, Unavailable
from limit_graph.orchestration.mirror_views import TABLE_ROWS, execution_rows, summary_markdown
from limit_graph.storage.base import Storage

__all__ = [
    "FLOW_NAME",
    "FLOW_RUNS",
    "FLOW_STATES",
    "SESSION_ACTIONS",
    "SessionRuns",
    "remember",
]

FLOW_NAME = "limit-session"
FLOW_RUNS = "mirror-flow-runs"
"""Bookkeeping namespace: session id → its flow run id, for the API's sessions."""
FLOW_RUNS_REMEMBERED = 100_000

SESSION_ACTIONS = frozenset(
    {
        "session.created",
        "session.restored",
        "session.completed",
        "session.archived",
        "session.deleted",
    }
)

# session state -> the state of its flow run
FLOW_STATES: dict[str, PrefectState] = {
    "active": PrefectState("RUNNING", "Running"),
    "completed": PrefectState("COMPLETED", "Completed"),
    "archived": PrefectState("COMPLETED", "Archived"),
    "deleted": PrefectState("CANCELLED", "Cancelled"),
}


def remember(known: OrderedDict[uuid.UUID, uuid.UUID], key: uuid.UUID, value: uuid.UUID) -> None:
    """Keep ``key → value`` among the newest :data:`FLOW_RUNS_REMEMBERED`."""
    known[key] = value
    known.move_to_end(key)
    if len(known) > FLOW_RUNS_REMEMBERED:
        known.popitem(last=False)


class SessionRuns:
    """The sessions' flow runs: made or found, moved between states, given artifacts."""

    def __init__(self, api: PrefectApi, storage: Storage) -> None:
        self.api = api
        self.storage = storage
        self.known: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()

    async def lookup(self, session_id: uuid.UUID) -> uuid.UUID | None:
        """The session's flow run, from memory or the store (never asks Prefect)."""
        known = self.known.get(session_id)
        if known is not None:
            return known
        stored = await self.storage.get_value(FLOW_RUNS, str(session_id))
        return uuid.UUID(stored["id"]) if stored is not None else None

    async def flow_run(
        self, session_id: uuid.UUID, session: dict[str, Any] | None = None
    ) -> uuid.UUID:
        """The session's flow run: remembered, or created (or found: idempotency key)."""
        known = self.known.get(session_id)
        if known is not None:
            self.known.move_to_end(session_id)
            return known
        if session is None:
            stored = await self.storage.get_session(session_id)
            session = stored.document() if stored is not None else {}
        tags = [f"session:{session_id}"]
        if "tenant" in session:
            tags.append(f"tenant:{session['tenant']}")
        body = {
            "flow_id": await self.api.flow_id(FLOW_NAME),
            "name": f"session-{session_id.hex[:8]}",
            "tags": tags,
            "idempotency_key": str(session_id),
            "state": FLOW_STATES[session.get("state", "active")].body(),
        }
        flow_run_id = await self.api.create_flow_run(body)
        if self.known.get(session_id) != flow_run_id:
            await self.storage.put_value(FLOW_RUNS, str(session_id), {"id": str(flow_run_id)})
        remember(self.known, session_id, flow_run_id)
        return flow_run_id

    async def find(self, entry: ProvenanceEntry, _again: bool) -> None:
        """A created or restored session's flow run, before anything is filed under it."""
        assert entry.session_id is not None
        await self.flow_run(entry.session_id, entry.written())

    async def set_state(self, entry: ProvenanceEntry, again: bool) -> None:
        assert entry.session_id is not None
        state = FLOW_STATES[entry.written()["state"]]
        for _ in range(2):
            flow_run_id = await self.flow_run(entry.session_id, entry.written())
            if await self.api.set_state(flow_run_id, state, again=again):
                return
            self.known.pop(entry.session_id, None)  # deleted in Prefect: make anew
        raise Unavailable(f"the flow run of session {entry.session_id} keeps disappearing")

    async def publish(self, entry: ProvenanceEntry, kind: str, again: bool) -> None:
        """A table or markdown artifact on the flow run of a session that completed; sent
        ``again``, only if the first one did not make it."""
        assert entry.session_id is not None
        session_id = entry.session_id
        flow_run_id = await self.flow_run(session_id, entry.written())
        counts = await self.storage.count_executions(session_id)
        total = sum(counts.values())
        shown = min(total, TABLE_ROWS)
        results = f"/sessions/{session_id}/results"
        description = (
            f"Session {entry.written().get('name', session_id)} {entry.written()['state']} "
            f"at ledger entry {entry.index}"
        )
        if kind == "table":
            page = await self.storage.list_executions(
                session_id, state=None, limit=TABLE_ROWS, cursor=None
            )
            data: str = json.dumps(execution_rows(page.items))
            description += f"; the first {shown:,} of {total:,} executions, all at {results}"
        else:
            data = summary_markdown(entry, counts, shown)
        key = f"limit-session-{session_id}-{'executions' if kind == 'table' else 'summary'}"
        artifact = {
            "key": key,
            "type": kind,
            "data": data,
            "description": description,
            "flow_run_id": str(flow_run_id),
        }
        await self.api.publish(artifact, again=again)
