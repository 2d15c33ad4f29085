"""The lineage follower: the ledger, read in the background, made into the lineage graph
and OpenLineage events.

The request path never derives lineage: every execution's final entry is already in
the ledger, so a follower reads the entries after its cursor, a batch at a time, and

- derives each final execution's nodes and edges (:mod:`.lineage_derive`) and writes
  them with the new cursor in one transaction of the lineage store
  (:class:`~limit_graph.storage.lineage.LineageStore`): a crash loses nothing and, the
  writes being idempotent upserts, doubles nothing;
- builds the run events of each execution entry (:mod:`.openlineage`) and sends them,
  then moves a second cursor (:data:`~limit_graph.storage.lineage.OPENLINEAGE_CURSOR`).
  While the sink fails, the events wait (the cursor stays, and the follower tries
  again after a backoff of up to a minute) and the graph goes on; after a crash between
  sending and moving the cursor the same events go again (at least once: each is the
  same event, by run id, type and time).

It reads the ledger every ``[lineage] poll_s``, and at once when woken
(:meth:`LineageFollower.wake`).  A read of lineage first derives what the graph lacks
of the ledger as it stood when the read arrived (:meth:`LineageFollower.catch_up`, for
up to ``read_wait_s``), so that an execution that has finished before the read is in
what it answers.  Several API processes on one database may each run one: each reads
the cursors where the others left them, and the upserts make a batch two of them
derive at once land once.  Deriving (hashing inputs, reading dataset files) and sending
run in a worker thread.

>>> # follower = LineageFollower(storage, settings.lineage, sink=FileSink(path))
>>> # follower.start(); ...; await follower.catch_up(); ...; await follower.close()
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from limit_graph.core.lineage_settings import LineageSettings
from limit_graph.core.models import ProvenanceEntry
from limit_graph.core.stopping import Stopper
from limit_graph.orchestration.lineage_derive import Derived, derive, execution_record
from limit_graph.orchestration.openlineage import EventSink, run_events
from limit_graph.storage.base import Storage
from limit_graph.storage.lineage import GRAPH_CURSOR, OPENLINEAGE_CURSOR, LineageBatch

__all__ = ["LineageFollower"]

log = logging.getLogger(__name__)

NAMES_KEPT = 4096
"""Workflow names remembered, by run id."""
MAX_BACKOFF_S = 60.0


class LineageFollower:
    """Derives the lineage graph from the ledger and sends its OpenLineage events;
    ``clock`` is what the sink's backoff is timed by."""

    def __init__(
        self,
        storage: Storage,
        settings: LineageSettings,
        *,
        sink: EventSink | None = None,
        data_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._store = storage.lineage
        self._settings = settings
        self._sink = sink
        self._data_dir = data_dir
        self._clock = clock
        self._wake = asyncio.Event()
        self._graph_turn = asyncio.Lock()
        self._events_turn = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopper = Stopper()
        self._names: OrderedDict[uuid.UUID, str | None] = OrderedDict()
        self._derived: dict[int, Derived] = {}
        self._failures = 0
        self._retry_at = 0.0
        self.cursor = -1
        """The last ledger index in the graph, as this follower last saw it."""

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._settings.enabled and self._task is None:
            self._stopper = Stopper()
            self._task = asyncio.create_task(self._run(), name="limit-lineage-follower")

    def wake(self) -> None:
        """Something was written: read the ledger now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        await self._stopper.stop(self._task)
        self._task = None
        if self._sink is not None:
            await asyncio.to_thread(self._sink.close)

    async def _run(self) -> None:
        while True:
            try:
                while not self._stopper.stopping and await self.step():
                    pass
            except Exception:
                log.exception("deriving lineage from the ledger failed; trying again")
            if not await self._stopper.wait(self._settings.poll_s, self._wake):
                return

    async def step(self) -> int:
        """Derive one batch into the graph and send one batch of events; how many ledger
        entries that read (0: nothing was new).  Each half runs one at a time (the loop's,
        a read's, a test's), and neither waits for the other: a slow sink holds no read."""
        async with self._graph_turn:
            read = await self._graph_step()
        async with self._events_turn:
            read += await self._events_step()
        return read

    async def catch_up(self, timeout_s: float | None = None) -> int:
        """Wait until the graph covers every entry the ledger held when called (or
        ``timeout_s``, by default ``read_wait_s``, has passed); the graph's cursor then."""
        target = await self._storage.ledger_size() - 1
        self.cursor = max(self.cursor, await self._store.cursor())
        if self._task is None:
            return self.cursor
        deadline = time.monotonic() + (
            self._settings.read_wait_s if timeout_s is None else timeout_s
        )
        while self.cursor < target and time.monotonic() < deadline:
            async with self._graph_turn:
                await self._graph_step()
        self.wake()  # the events of what was derived here, without waiting for the poll
        return self.cursor

    async def _entries(self, after: int) -> list[ProvenanceEntry]:
        return await self._storage.list_entries(after=after, limit=self._settings.batch)

    async def _graph_step(self) -> int:
        cursor = await self._store.cursor(GRAPH_CURSOR)
        self.cursor = max(self.cursor, cursor)
        entries = await self._entries(cursor)
        if not entries:
            return 0
        derived = await self._derive(entries)
        nodes = [n for d in derived if d.record.is_final for n in d.nodes]
        edges = [e for d in derived if d.record.is_final for e in d.edges]
        end = entries[-1].index
        await self._store.apply(LineageBatch(nodes, edges, end, GRAPH_CURSOR))
        self.cursor = max(self.cursor, end)
        self._derived = {d.record.entry: d for d in derived}
        return len(entries)

    async def _events_step(self) -> int:
        if self._sink is None or self._clock() < self._retry_at:
            return 0
        cursor = await self._store.cursor(OPENLINEAGE_CURSOR)
        entries = await self._entries(cursor)
        if not entries:
            return 0
        known = [self._derived.get(e.index) for e in entries]
        missing = [e for e, d in zip(entries, known, strict=True) if d is None]
        derived = [d for d in known if d is not None] + await self._derive(missing)
        derived.sort(key=lambda d: d.record.entry)
        names = {d.record.entry: self._name_of(d.record.workflow_run_id) for d in derived}
        namespace = self._settings.namespace
        sink = self._sink

        def send() -> int:
            events = [
                event
                for d in derived
                for event in run_events(d, namespace=namespace, workflow_name=names[d.record.entry])
            ]
            sink.send(events)
            return len(events)

        try:
            sent = await asyncio.to_thread(send)
        except Exception as exc:
            self._failures += 1
            delay = min(MAX_BACKOFF_S, self._settings.poll_s * 2**self._failures)
            self._retry_at = self._clock() + delay
            if self._failures == 1:
                log.warning("OpenLineage events could not be sent (%s); holding them", exc)
            return 0
        if self._failures:
            log.info("OpenLineage events are being sent again")
        self._failures = 0
        end = entries[-1].index
        await self._store.apply(LineageBatch((), (), end, OPENLINEAGE_CURSOR))
        log.debug("sent %d OpenLineage events up to ledger entry %d", sent, end)
        return len(entries)

    async def _derive(self, entries: Sequence[ProvenanceEntry]) -> list[Derived]:
        records = [r for e in entries if (r := execution_record(e)) is not None]
        for record in records:
            await self._workflow_name(record.workflow_run_id)
        names = {r.entry: self._name_of(r.workflow_run_id) for r in records}
        data_dir = self._data_dir

        def run() -> list[Derived]:
            return [derive(r, workflow_name=names[r.entry], data_dir=data_dir) for r in records]

        return await asyncio.to_thread(run)

    def _name_of(self, run_id: uuid.UUID | None) -> str | None:
        return self._names.get(run_id) if run_id is not None else None

    async def _workflow_name(self, run_id: uuid.UUID | None) -> None:
        """Remember the name of the workflow run ``run_id`` (it never changes)."""
        if run_id is None or run_id in self._names:
            return
        run = await self._storage.get_workflow_run(run_id)
        self._names[run_id] = run.name if run is not None else None
        while len(self._names) > NAMES_KEPT:
            self._names.popitem(last=False)
