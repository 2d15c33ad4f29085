"""The Prefect mirror: sessions as flow runs, executions as task runs, from the ledger.

The request path never waits on Prefect (DESIGN.md, "Principles"): the mirror follows
the provenance ledger in a background task, from a cursor kept in the store, and makes

- each session a flow run of flow ``limit-session``, named ``session-<8 hex>``, tagged
  ``session:<uuid>`` and ``tenant:<name>``, created with the session id as idempotency
  key (a replay finds the same run); Running while active, Completed when completed
  or archived, Cancelled when deleted;
- each finished execution a task run under it, tagged ``agent:``, ``backend:``,
  ``instance:`` and ``execution:``, with the execution's own start and end and its
  final state (Completed, Cached, Failed, TimedOut (a Failed state), Cancelled);
- on completion or archive, a table artifact of the executions (first 1,000) and a
  markdown summary (counts, ledger size and last entry hash, link to the results).

How task runs get into Prefect, measured on this machine (2 cores; a Prefect 3.9.1
server on SQLite, default settings; one flow run holding the task runs):

- bulk ``POST /api/events`` of ``prefect.task-run.*`` events, 1,000 a request: the server
  accepts ~2,600 events/s and its task-run recorder makes 82-92 task runs/s, with the
  execution's own start and end;
- ``POST /api/task_runs/`` with an id and a final state: 42/s one at a time, 30/s four at
  a time, failing with 503s (SQLite busy) at 16; and the times shown are the call's, as
  the server stamps every state it is given;
- events again, the server started with ``PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_
  BATCH_SIZE=500`` and ``..._FLUSH_INTERVAL=1``: 360 task runs/s (its default batch is 1).

So events it is; the recorder upserts each task run by id and by (flow run, task key,
dynamic key), updating it only for a later state, and each event id becomes the state's
id (a repeated one is skipped), so deterministic ids (``mirror_views``) make a re-sent
event change nothing.  Flow runs have no bulk
path: ``POST /api/flow_runs/`` made 40/s one at a time, 33/s two at a time and 26/s
four at a time (SQLite contention), so the mirror creates them one at a time.

Above ``task_runs_per_s`` the mirror groups a read's finished executions per (session,
agent, backend, instance, final state) into one task run named e.g. ``echo ×240
succeeded``, tagged ``grouped``, ``count:240`` and ``results:/sessions/<id>/results``,
spanning the group's earliest start to latest end: the Prefect UI accounts for every
execution, the platform's store holds each one.

Durability and idempotency: the cursor (namespace ``mirror``, key ``cursor``,
``{"index": n}``: the last entry fully mirrored) advances only after Prefect accepted
everything up to it, so whatever was sent since may be sent again: after a lost or
late answer (the same request, retried) or after a crash (the whole read).  Before
sending anything for a read the mirror records where that read ends and whether it
is grouped (``chunk_end``, ``grouped``), so a restart re-reads exactly those entries
and groups them as before, whatever the budget is now, and so sends the same ids.
Everything it sends is keyed by what it shows: task runs and their events by uuid5
ids, a flow run by its session's idempotency key; a flow-run state sent again is
skipped when the run is already in it, and an artifact, which Prefect would keep as
one more version, is looked up by key and description before it is published again.
While Prefect is down the mirror keeps its cursor, logs once, retries with a capped
backoff and then catches up.

>>> # mirror = PrefectMirror(storage, "http://127.0.0.1:4200/api", telemetry=telemetry)
>>> # await mirror.start(); ...; await mirror.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from limit_graph.core.models import ProvenanceEntry, utcnow
from limit_graph.orchestration.mirror_views import (
    TABLE_ROWS,
    FinishedExecution,
    MirroredTaskRun,
    execution_rows,
    summary_markdown,
)
from limit_graph.orchestration.telemetry import Telemetry
from limit_graph.storage.base import Storage

__all__ = ["FLOW_NAME", "PrefectMirror", "TABLE_ROWS"]

log = logging.getLogger(__name__)

FLOW_NAME = "limit-session"
NAMESPACE = "mirror"
CURSOR_KEY = "cursor"
FLOW_RUNS = "mirror-flow-runs"
"""Bookkeeping namespace: session id → its flow run id, for the API's sessions."""
EVENTS_PER_REQUEST = 1000
MAX_BACKOFF_S = 5.0
CLOSE_TIMEOUT_S = 5.0
FLOW_RUNS_REMEMBERED = 100_000
BUSY_RETRIES = 4
BUSY_CODES = frozenset({408, 429, 502, 503})

SESSION_ACTIONS = frozenset(
    {
        "session.created",
        "session.restored",
        "session.completed",
        "session.archived",
        "session.deleted",
    }
)

# session state -> Prefect state type and name of its flow run
FLOW_STATES: dict[str, tuple[str, str]] = {
    "active": ("RUNNING", "Running"),
    "completed": ("COMPLETED", "Completed"),
    "archived": ("COMPLETED", "Archived"),
    "deleted": ("CANCELLED", "Cancelled"),
}


class _Unavailable(Exception):
    """Prefect did not take a request (down, busy, or refused it); retried later."""


Step = Callable[[bool], Awaitable[None]]
"""One request of a read; its argument says whether Prefect may have seen it before."""


@dataclass
class _Chunk:
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


class PrefectMirror:
    """Shows the ledger in Prefect, asynchronously; see the module docstring.

    ``run_once`` mirrors one read of at most ``batch`` entries; ``start`` runs it in a
    background task every ``interval_s`` (at once while behind), creating at most about
    ``task_runs_per_s`` task runs a second.
    """

    def __init__(
        self,
        storage: Storage,
        api_url: str,
        *,
        telemetry: Telemetry,
        task_runs_per_s: float = 50.0,
        batch: int = 5000,
        interval_s: float = 0.5,
    ) -> None:
        self.storage = storage
        self.api_url = api_url.rstrip("/")
        self.telemetry = telemetry
        self.task_runs_per_s = task_runs_per_s
        self.batch = batch
        self.interval_s = interval_s
        self._http = httpx.AsyncClient(
            base_url=self.api_url + "/", timeout=httpx.Timeout(30.0, connect=5.0)
        )
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cursor: int | None = None
        self._pending_end: int | None = None
        self._pending_grouped: bool | None = None
        self._chunk: _Chunk | None = None
        self._flow_id: str | None = None
        self._flow_runs: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()
        self._oldest: datetime | None = None
        self._backlog = 0
        self._sent = 0
        self._failing_since: float | None = None
        self._backoff = 0.0
        telemetry.mirror_lag.set_function(lambda: self.lag_s)
        telemetry.mirror_backlog.set_function(lambda: self._backlog)

    # --- what the mirror knows ----------------------------------------------------------

    @property
    def lag_s(self) -> float:
        """Age of the oldest entry not yet mirrored (0 when caught up at the last read)."""
        if self._oldest is None:
            return 0.0
        return max(0.0, (utcnow() - self._oldest).total_seconds())

    @property
    def backlog(self) -> int:
        """Ledger entries after the cursor, as of the last read."""
        return self._backlog

    def flow_run_id(self, session_id: uuid.UUID) -> uuid.UUID | None:
        """The session's flow run, if this mirror has made or found it lately."""
        return self._flow_runs.get(session_id)

    async def lookup_flow_run(self, session_id: uuid.UUID) -> uuid.UUID | None:
        """The session's flow run, from memory or the store (never asks Prefect)."""
        known = self._flow_runs.get(session_id)
        if known is not None:
            return known
        stored = await self.storage.get_value(FLOW_RUNS, str(session_id))
        return uuid.UUID(stored["id"]) if stored is not None else None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="limit-prefect-mirror")

    async def close(self) -> None:
        """Stop the loop, mirror what Prefect will take within a few seconds, let go."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT_S)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._failing_since is None:
            try:
                await asyncio.wait_for(self.run_once(), CLOSE_TIMEOUT_S)
            except Exception:
                log.warning("the Prefect mirror stopped before it caught up", exc_info=True)
        await self._http.aclose()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                consumed = await self.run_once()
            except Exception as exc:  # the store failed, or a bug: never into the platform
                self._failed(f"{type(exc).__name__}: {exc}", exc_info=True)
                consumed = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._delay(consumed, started))

    def _delay(self, consumed: int, started: float) -> float:
        """Back off while failing; else keep to the task-run budget and, when caught up,
        to the interval."""
        if self._failing_since is not None:
            return self._backoff
        elapsed = time.monotonic() - started
        budget = self._sent / self.task_runs_per_s - elapsed
        if consumed == self.batch or (consumed and self._backlog):
            return max(0.0, budget)
        return max(self.interval_s - elapsed, budget, 0.0)

    def _failed(self, why: str, *, exc_info: bool = False) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "Prefect mirror paused at ledger entry %s (%s); retrying, nothing is lost",
                self._cursor,
                why,
                exc_info=exc_info,
            )
        self._backoff = min(MAX_BACKOFF_S, max(0.25, self._backoff * 2))

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.info(
                "Prefect mirror resumed after %.1f s; catching up",
                time.monotonic() - self._failing_since,
            )
        self._failing_since = None
        self._backoff = 0.0

    # --- one step -------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Mirror one read of the ledger; the entries consumed (0 if Prefect refused)."""
        async with self._lock:
            if self._cursor is None:
                saved = await self.storage.get_value(NAMESPACE, CURSOR_KEY) or {}
                self._cursor = int(saved.get("index", -1))
                self._pending_end = saved.get("chunk_end")
                self._pending_grouped = saved.get("grouped")
            if self._chunk is None:
                self._chunk = await self._read(self._cursor)
            chunk = self._chunk
            consumed = 0
            if chunk is not None:
                try:
                    while chunk.done < len(chunk.steps):
                        again = chunk.replayed or chunk.tried >= chunk.done
                        chunk.tried = chunk.done
                        await chunk.steps[chunk.done](again)
                        chunk.done += 1
                except _Unavailable as exc:
                    self._failed(str(exc))
                else:
                    await self.storage.put_value(NAMESPACE, CURSOR_KEY, {"index": chunk.end})
                    self._cursor, self._chunk = chunk.end, None
                    self._pending_end = self._pending_grouped = None
                    self._sent = chunk.task_runs
                    consumed = len(chunk.entries)
                    self._recovered()
            await self._measure(self._cursor)
            return consumed

    async def _read(self, cursor: int) -> _Chunk | None:
        """The next entries and their plan; a read cut short by a crash is re-read whole
        and grouped as it was."""
        replayed = self._pending_end is not None
        limit = self._pending_end - cursor if self._pending_end is not None else self.batch
        entries = await self.storage.list_entries(after=cursor, limit=limit)
        if not entries:
            return None
        chunk = self._plan(_Chunk(entries, replayed, self._pending_grouped))
        if chunk.steps and not replayed:
            intent = {"index": cursor, "chunk_end": chunk.end, "grouped": chunk.grouped}
            await self.storage.put_value(NAMESPACE, CURSOR_KEY, intent)
        return chunk

    async def _measure(self, cursor: int) -> None:
        size = await self.storage.ledger_size()
        self._backlog = max(0, size - cursor - 1)
        if self._chunk is not None:
            self._oldest = self._chunk.entries[0].timestamp
        elif self._backlog:
            oldest = await self.storage.list_entries(after=cursor, limit=1)
            self._oldest = oldest[0].timestamp if oldest else None
        else:
            self._oldest = None

    def _plan(self, chunk: _Chunk) -> _Chunk:
        """Flow runs first, then task runs (grouped when over budget), then session states."""
        finals: list[FinishedExecution] = []
        sessions: list[ProvenanceEntry] = []
        for entry in chunk.entries:
            if entry.session_id is None:
                continue
            if entry.resource_type == "session" and entry.action in SESSION_ACTIONS:
                sessions.append(entry)
            elif entry.resource_type == "execution" and (final := FinishedExecution.parse(entry)):
                finals.append(final)
        if chunk.grouped is None:
            chunk.grouped = len(finals) > max(1.0, self.task_runs_per_s * self.interval_s)
        runs = self._task_runs(finals, chunk)
        chunk.task_runs = len(runs)
        for entry in sessions:
            if entry.action in ("session.created", "session.restored"):
                chunk.steps.append(functools.partial(self._find_flow_run, entry))
        for start in range(0, len(runs), EVENTS_PER_REQUEST):
            batch = runs[start : start + EVENTS_PER_REQUEST]
            chunk.steps.append(functools.partial(self._send, batch))
        for entry in sessions:
            if entry.action != "session.created":
                chunk.steps.append(functools.partial(self._set_state, entry))
            if entry.action in ("session.completed", "session.archived"):
                for kind in ("table", "markdown"):
                    chunk.steps.append(functools.partial(self._publish, entry, kind))
        return chunk

    @staticmethod
    def _task_runs(finals: list[FinishedExecution], chunk: _Chunk) -> list[MirroredTaskRun]:
        if not chunk.grouped:
            return [MirroredTaskRun.single(f) for f in finals]
        groups: dict[tuple[uuid.UUID, str, str, str, str], list[FinishedExecution]] = {}
        for final in finals:
            groups.setdefault(final.group, []).append(final)
        read = (chunk.entries[0].index, chunk.end)
        return [MirroredTaskRun.group_of(group, read) for group in groups.values()]

    # --- Prefect requests -------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: Any) -> httpx.Response:
        """One request; a busy server (SQLite locked: 503) is retried briefly."""
        for attempt in range(BUSY_RETRIES + 1):
            try:
                response = await self._http.request(method, path, json=body)
            except httpx.TransportError as exc:
                raise _Unavailable(f"{type(exc).__name__} from {self.api_url}") from exc
            if response.status_code in BUSY_CODES and attempt < BUSY_RETRIES:
                await asyncio.sleep(0.1 * 2**attempt)
                continue
            if response.is_error:
                raise _Unavailable(
                    f"{method} {path}: HTTP {response.status_code} {response.text[:300]}"
                )
            return response
        raise AssertionError("unreachable")

    async def _flow(self) -> str:
        if self._flow_id is None:
            response = await self._call("POST", "flows/", {"name": FLOW_NAME})
            self._flow_id = str(response.json()["id"])
        return self._flow_id

    async def _flow_run(
        self, session_id: uuid.UUID, session: dict[str, Any] | None = None
    ) -> uuid.UUID:
        """The session's flow run: remembered, or created (or found: idempotency key)."""
        known = self._flow_runs.get(session_id)
        if known is not None:
            self._flow_runs.move_to_end(session_id)
            return known
        if session is None:
            stored = await self.storage.get_session(session_id)
            session = stored.document() if stored is not None else {}
        state_type, state_name = FLOW_STATES[session.get("state", "active")]
        tags = [f"session:{session_id}"]
        if "tenant" in session:
            tags.append(f"tenant:{session['tenant']}")
        body = {
            "flow_id": await self._flow(),
            "name": f"session-{session_id.hex[:8]}",
            "tags": tags,
            "idempotency_key": str(session_id),
            "state": {"type": state_type, "name": state_name},
        }
        response = await self._call("POST", "flow_runs/", body)
        flow_run_id = uuid.UUID(response.json()["id"])
        if self._flow_runs.get(session_id) != flow_run_id:
            await self.storage.put_value(FLOW_RUNS, str(session_id), {"id": str(flow_run_id)})
        self._flow_runs[session_id] = flow_run_id
        if len(self._flow_runs) > FLOW_RUNS_REMEMBERED:
            self._flow_runs.popitem(last=False)
        return flow_run_id

    async def _find_flow_run(self, entry: ProvenanceEntry, _again: bool) -> None:
        assert entry.session_id is not None
        await self._flow_run(entry.session_id, entry.payload)

    async def _send(self, runs: list[MirroredTaskRun], _again: bool) -> None:
        """Task-run events; sent again, their ids find what the first send made."""
        events = [run.event(await self._flow_run(run.session_id)) for run in runs]
        await self._call("POST", "events", events)
        grouped = sum(run.grouped for run in runs)
        self.telemetry.mirror_task_runs.labels("grouped").inc(grouped)
        self.telemetry.mirror_task_runs.labels("single").inc(len(runs) - grouped)

    async def _set_state(self, entry: ProvenanceEntry, again: bool) -> None:
        assert entry.session_id is not None
        state_type, state_name = FLOW_STATES[entry.payload["state"]]
        body = {"state": {"type": state_type, "name": state_name}, "force": True}
        for _ in range(2):
            flow_run_id = await self._flow_run(entry.session_id, entry.payload)
            if again and await self._in_state(flow_run_id, state_type, state_name):
                return  # the first try made it: no second, identical transition
            try:
                await self._call("POST", f"flow_runs/{flow_run_id}/set_state", body)
                return
            except _Unavailable:
                if await self._exists(f"flow_runs/{flow_run_id}"):
                    raise
                self._flow_runs.pop(entry.session_id, None)  # deleted in Prefect: make anew
        raise _Unavailable(f"the flow run of session {entry.session_id} keeps disappearing")

    async def _in_state(self, flow_run_id: uuid.UUID, state_type: str, state_name: str) -> bool:
        try:
            response = await self._http.get(f"flow_runs/{flow_run_id}")
        except httpx.TransportError:
            return False
        if not response.is_success:
            return False
        state = response.json().get("state") or {}
        return (state.get("type"), state.get("name")) == (state_type, state_name)

    async def _exists(self, path: str) -> bool:
        try:
            response = await self._http.get(path)
        except httpx.TransportError:
            return True
        return response.status_code != 404

    async def _publish(self, entry: ProvenanceEntry, kind: str, again: bool) -> None:
        """A table or markdown artifact on the flow run of a session that completed; sent
        ``again``, only if the first one did not make it."""
        assert entry.session_id is not None
        session_id = entry.session_id
        flow_run_id = await self._flow_run(session_id, entry.payload)
        counts = await self.storage.count_executions(session_id)
        total = sum(counts.values())
        shown = min(total, TABLE_ROWS)
        results = f"/sessions/{session_id}/results"
        description = (
            f"Session {entry.payload.get('name', session_id)} {entry.payload['state']} "
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
        if again and await self._published(key, flow_run_id, description):
            return
        body = {
            "key": key,
            "type": kind,
            "data": data,
            "description": description,
            "flow_run_id": str(flow_run_id),
        }
        await self._call("POST", "artifacts/", body)

    async def _published(self, key: str, flow_run_id: uuid.UUID, description: str) -> bool:
        """Whether this artifact made it before (a key keeps every version it is given)."""
        found = await self._call(
            "POST",
            "artifacts/filter",
            {"artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [str(flow_run_id)]}}},
        )
        return any(a.get("description") == description for a in found.json())
