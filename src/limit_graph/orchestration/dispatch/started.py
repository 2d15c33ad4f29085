"""The ``running`` records of the leases one API process grants.

A claim is answered as soon as its leases are taken; each execution is written
``running`` meanwhile (relaxed: lost with the machine, the execution is still
``queued`` and runs again).  A result reported to this process waits for that write,
so the final record follows it; one reported to another process finds it in the
store, where it waits for it a little (:meth:`Starts.started`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from limit_graph.core.models import Execution, ExecutionState
from limit_graph.orchestration.dispatch.results import STARTED_POLL_S, WriteFn
from limit_graph.storage.base import Storage
from limit_graph.storage.dispatch import Held

__all__ = ["Starts"]

log = logging.getLogger(__name__)


class Starts:
    """The ``running`` writes of leases granted here, and when each was made."""

    def __init__(self, storage: Storage, write: WriteFn, lease_s: float) -> None:
        self.storage = storage
        self._write = write
        self.lease_s = lease_s
        self._starting: dict[uuid.UUID, tuple[asyncio.Future[Execution], float]] = {}

    def start(self, running: Execution) -> None:
        """Write ``running`` (relaxed: lost with the machine, the execution is still
        queued), remembering the write."""
        write = asyncio.ensure_future(self._write(running, "execution.started", relaxed=True))
        self._starting[running.id] = (write, time.monotonic())

        def written(done: asyncio.Future[Execution]) -> None:
            if not done.cancelled() and (error := done.exception()) is not None:
                log.error("recording execution %s as running failed: %s", running.id, error)

        write.add_done_callback(written)

    def forget_old(self) -> None:
        """Drop the ``running`` writes of leases whose results went to other processes."""
        horizon = time.monotonic() - 3 * self.lease_s
        for execution_id in [
            i for i, (w, at) in self._starting.items() if w.done() and at < horizon
        ]:
            del self._starting[execution_id]

    async def started(self, row: Held, record: Execution | None) -> Execution | None:
        """The ``running`` record of the lease ``row`` stands for, once it is written:
        here, the write this process made; else the store's, which the process that
        granted the lease is writing (waited for up to half a lease; a process that died
        before writing it leaves the ``queued`` record, which is as good a base)."""
        writing = self._starting.pop(row.execution_id, None)
        if writing is not None:
            try:
                return await asyncio.shield(writing[0])
            except Exception:
                return record
        deadline = time.monotonic() + self.lease_s / 2
        while (
            record is not None
            and record.state is ExecutionState.QUEUED
            and record.attempts == row.attempt
        ):
            record = await self.storage.get_execution(row.execution_id)
            if time.monotonic() > deadline or (
                record and record.state is not ExecutionState.QUEUED
            ):
                break
            await asyncio.sleep(STARTED_POLL_S)
        return record
