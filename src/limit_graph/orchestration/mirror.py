"""The Prefect mirror: sessions and workflow runs as flow runs, executions as task runs.

The request path never waits on Prefect (DESIGN.md, "Principles"): the mirror follows
the provenance ledger in a background task, from a cursor kept in the store, and makes

- each session a flow run of flow ``limit-session``, Running while active, Completed
  when completed or archived, Cancelled when deleted, with a table of its executions
  and a markdown summary as artifacts once it completes (``mirror_sessions``);
- each finished execution a task run under it, tagged ``agent:``, ``backend:``,
  ``instance:`` and ``execution:``, with the execution's own start and end and its
  final state (Completed, Cached, Failed, TimedOut (a Failed state), Cancelled)
  (``mirror_views``);
- each workflow run a flow run of flow ``limit-workflow``, a child of its session's
  (nested under it in the UI), Pending, Running, then Completed, Failed or Cancelled,
  with the run's artifacts once it ends (``mirror_workflow_views``,
  ``mirror_workflows``); each execution of one of its steps (each map item, each
  retry) a task run of that flow run, never grouped, whose ``task_inputs`` name the
  task runs of its upstream executions, so Prefect's run graph draws the DAG.

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
execution, the platform's store holds each one.  Workflow steps are never grouped (the
DAG needs every node); they count against the same budget, which paces the reads.

Durability and idempotency: the cursor (namespace ``mirror``, key ``cursor``,
``{"index": n}``: the last entry fully mirrored) advances only after Prefect accepted
everything up to it, so whatever was sent since may be sent again: after a lost or
late answer (the same request, retried) or after a crash (the whole read).  Before
sending anything for a read the mirror records where that read ends and whether it
is grouped (``chunk_end``, ``grouped``), so a restart re-reads exactly those entries
and groups them as before, whatever the budget is now, and so sends the same ids.
Everything it sends is keyed by what it shows: task runs and their events by uuid5
ids, a flow run by the idempotency key of its session or workflow run (the task run
standing for a workflow run in its session's flow run by a uuid5 id); a flow-run
state sent again is skipped when the run is already in it, and an artifact, which
Prefect would keep as one more version, is looked up before it is published again.
While Prefect is down the mirror keeps its cursor, logs once, retries with a capped
backoff and then catches up.

>>> # mirror = PrefectMirror(storage, "http://127.0.0.1:4200/api", telemetry=telemetry)
>>> # await mirror.start(); ...; await mirror.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from datetime import datetime

from limit_graph.core.models import utcnow
from limit_graph.orchestration.mirror_plan import Chunk, Read, task_runs
from limit_graph.orchestration.mirror_prefect import PrefectApi, Unavailable
from limit_graph.orchestration.mirror_sessions import FLOW_NAME, FLOW_RUNS, SessionRuns
from limit_graph.orchestration.mirror_views import TABLE_ROWS, MirroredTaskRun
from limit_graph.orchestration.mirror_workflow_views import (
    WORKFLOW_FINAL_ACTIONS,
    WORKFLOW_FLOW_NAME,
    WORKFLOW_STATE_ACTIONS,
)
from limit_graph.orchestration.mirror_workflows import WorkflowRuns
from limit_graph.orchestration.telemetry import Telemetry
from limit_graph.storage.base import Storage

__all__ = [
    "CURSOR_KEY",
    "FLOW_NAME",
    "FLOW_RUNS",
    "NAMESPACE",
    "TABLE_ROWS",
    "WORKFLOW_FLOW_NAME",
    "PrefectMirror",
]

log = logging.getLogger(__name__)

NAMESPACE = "mirror"
CURSOR_KEY = "cursor"
EVENTS_PER_REQUEST = 1000
MAX_BACKOFF_S = 5.0
CLOSE_TIMEOUT_S = 5.0


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
        self.api = PrefectApi(api_url)
        self.api_url = self.api.api_url
        self.sessions = SessionRuns(self.api, storage)
        self.workflows = WorkflowRuns(self.api, storage, self.sessions)
        self.telemetry = telemetry
        self.task_runs_per_s = task_runs_per_s
        self.batch = batch
        self.interval_s = interval_s
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cursor: int | None = None
        self._pending_end: int | None = None
        self._pending_grouped: bool | None = None
        self._chunk: Chunk | None = None
        self._oldest: datetime | None = None
        self._backlog = 0
        self._sent = 0
        self._failing_since: float | None = None
        self._backoff = 0.0
        telemetry.watch("limit_mirror_lag_seconds", lambda: [((), self.lag_s)])
        telemetry.watch("limit_mirror_backlog_entries", lambda: [((), float(self._backlog))])

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

    async def observe(self) -> None:
        """Where the loop does not run (another process holds the lease), measure the
        lag and backlog from the cursor in the store, for this process's ``/metrics``."""
        if self._task is not None:
            return
        async with self._lock:
            saved = await self.storage.get_value(NAMESPACE, CURSOR_KEY)
            await self._measure(int(saved.get("index", -1)) if saved else -1, None)

    def flow_run_id(self, session_id: uuid.UUID) -> uuid.UUID | None:
        """The session's flow run, if this mirror has made or found it lately."""
        return self.sessions.known.get(session_id)

    async def lookup_flow_run(self, session_id: uuid.UUID) -> uuid.UUID | None:
        """The session's flow run, from memory or the store (never asks Prefect)."""
        return await self.sessions.lookup(session_id)

    def workflow_flow_run_id(self, run_id: uuid.UUID) -> uuid.UUID | None:
        """The workflow run's flow run, if this mirror has made or found it lately."""
        return self.workflows.known.get(run_id)

    async def lookup_workflow_flow_run(self, run_id: uuid.UUID) -> uuid.UUID | None:
        """The workflow run's flow run, from memory or the store (never asks Prefect)."""
        return await self.workflows.lookup(run_id)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the loop runs (in this process: it holds the mirror's lease)."""
        return self._task is not None

    async def start(self) -> None:
        """Run the loop, from the cursor in the store: another process that held the
        mirror's lease meanwhile may have moved it."""
        if self._task is None:
            self._stopping.clear()
            self._cursor = self._chunk = None
            self._task = asyncio.create_task(self._loop(), name="limit-prefect-mirror")

    async def stop(self) -> None:
        """Stop the loop, with no last read (another process mirrors now); the lookups
        still answer, from the store."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT_S)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def close(self, *, flush: bool = True) -> None:
        """Stop the loop, mirror what Prefect will take within a few seconds (unless not
        ``flush``: another process mirrors), let go."""
        await self.stop()
        if flush and self._failing_since is None:
            try:
                await asyncio.wait_for(self.run_once(), CLOSE_TIMEOUT_S)
            except Exception:
                log.warning("the Prefect mirror stopped before it caught up", exc_info=True)
        await self.api.aclose()

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
                except Unavailable as exc:
                    self._failed(str(exc))
                else:
                    await self.storage.put_value(NAMESPACE, CURSOR_KEY, {"index": chunk.end})
                    self._cursor, self._chunk = chunk.end, None
                    self._pending_end = self._pending_grouped = None
                    self._sent = chunk.task_runs
                    consumed = len(chunk.entries)
                    self._recovered()
            await self._measure(self._cursor, self._chunk)
            return consumed

    async def _read(self, cursor: int) -> Chunk | None:
        """The next entries and their plan; a read cut short by a crash is re-read whole
        and grouped as it was."""
        replayed = self._pending_end is not None
        limit = self._pending_end - cursor if self._pending_end is not None else self.batch
        entries = await self.storage.list_entries(after=cursor, limit=limit)
        if not entries:
            return None
        chunk = self._plan(Chunk(entries, replayed, self._pending_grouped))
        if chunk.steps and not replayed:
            intent = {"index": cursor, "chunk_end": chunk.end, "grouped": chunk.grouped}
            await self.storage.put_value(NAMESPACE, CURSOR_KEY, intent)
        return chunk

    async def _measure(self, cursor: int, chunk: Chunk | None) -> None:
        """The backlog after ``cursor`` and the age of its oldest entry (``chunk``'s
        first, when a read is in flight)."""
        size = await self.storage.ledger_size()
        self._backlog = max(0, size - cursor - 1)
        if chunk is not None:
            self._oldest = chunk.entries[0].timestamp
        elif self._backlog:
            oldest = await self.storage.list_entries(after=cursor, limit=1)
            self._oldest = oldest[0].timestamp if oldest else None
        else:
            self._oldest = None

    def _plan(self, chunk: Chunk) -> Chunk:
        """Flow runs first (sessions', then workflow runs'), then task runs (executions
        grouped when over budget, workflow steps never), then workflow-run states and
        artifacts, then session states and artifacts."""
        read = Read.of(chunk.entries)
        if chunk.grouped is None:
            chunk.grouped = len(read.finals) > max(1.0, self.task_runs_per_s * self.interval_s)
        runs = task_runs(read, chunk)
        chunk.task_runs = len(runs)
        for entry in read.sessions:
            if entry.action in ("session.created", "session.restored"):
                chunk.steps.append(functools.partial(self.sessions.find, entry))
        for run in read.first_of_each_run():
            chunk.steps.append(functools.partial(self.workflows.find, run))
        for start in range(0, len(runs), EVENTS_PER_REQUEST):
            batch = runs[start : start + EVENTS_PER_REQUEST]
            chunk.steps.append(functools.partial(self._send, batch))
        for run in read.workflows:
            if run.action in WORKFLOW_STATE_ACTIONS:
                chunk.steps.append(functools.partial(self.workflows.set_state, run))
            if run.action in WORKFLOW_FINAL_ACTIONS:
                chunk.steps.append(functools.partial(self.workflows.publish, run))
        for entry in read.sessions:
            if entry.action != "session.created":
                chunk.steps.append(functools.partial(self.sessions.set_state, entry))
            if entry.action in ("session.completed", "session.archived"):
                for kind in ("table", "markdown"):
                    chunk.steps.append(functools.partial(self.sessions.publish, entry, kind))
        return chunk

    # --- Prefect requests -------------------------------------------------------------------

    async def _send(self, runs: list[MirroredTaskRun], _again: bool) -> None:
        """Task-run events; sent again, their ids find what the first send made."""
        events = []
        for run in runs:
            if run.workflow_run_id is not None:
                flow_run_id = await self.workflows.flow_run(run.workflow_run_id, run.session_id)
            else:
                flow_run_id = await self.sessions.flow_run(run.session_id)
            events.append(run.event(flow_run_id))
        await self.api.call("POST", "events", events)
        grouped = sum(run.grouped for run in runs)
        self.telemetry.mirror_task_runs.labels("grouped").inc(grouped)
        self.telemetry.mirror_task_runs.labels("single").inc(len(runs) - grouped)
