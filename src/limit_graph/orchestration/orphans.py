"""Inline executions whose API process stopped while they ran: ended, not left running.

A local execution that runs inline runs inside the API process that accepted it; its
record says ``running`` until that process writes the end.  A process killed meanwhile
(``kill -9``, the machine lost) writes nothing, and no runner's lease expires for it:
nothing else would ever end the record.  The sweeper ends it once no process can still
be running it, that is once its timeout (which the inline runner enforces) and a grace
have passed since it started: ``failed``, with a ``ProcessLost`` error that says so,
settling its quota reservation in the same write, as any final record does.

Exactly one API process of a store sweeps, under the lease ``orphans`` (as the runner
supervisor runs under its own), so each such execution is ended once.  Executions the
dispatch queue holds (local work run by a runner of the local pool) are the reaper's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from limit_graph.core.models import BackendKind, ErrorInfo, Execution, ExecutionState, utcnow
from limit_graph.core.stopping import Stopper
from limit_graph.orchestration.inline import DEFAULT_TIMEOUT_S
from limit_graph.orchestration.recording import ExecutionRecorder
from limit_graph.storage.base import Storage

__all__ = ["PROCESS_LOST", "OrphanSweeper"]

log = logging.getLogger(__name__)

PROCESS_LOST = "ProcessLost"


class OrphanSweeper:
    """Ends the inline executions no process is running any more (the module's
    docstring); ``clock`` is the time they age by."""

    def __init__(
        self,
        storage: Storage,
        recorder: ExecutionRecorder,
        *,
        grace_s: float,
        every_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._storage = storage
        self._recorder = recorder
        self._grace = timedelta(seconds=grace_s)
        self._every_s = every_s
        self._clock = clock
        self._stopper = Stopper()
        self._task: asyncio.Task[None] | None = None

    def _abandoned(self, execution: Execution, now: datetime) -> bool:
        if execution.state is not ExecutionState.RUNNING:
            return False
        began = execution.started_at or execution.submitted_at
        timeout = timedelta(seconds=execution.timeout_s or DEFAULT_TIMEOUT_S)
        return began + timeout + self._grace < now

    async def sweep(self) -> list[Execution]:
        """End every inline execution abandoned by now; the records as written."""
        now = self._clock()
        unfinished = await self._storage.list_unfinished_executions([BackendKind.LOCAL])
        abandoned = [e for e in unfinished if self._abandoned(e, now)]
        if not abandoned:
            return []
        held = {
            row.execution_id for row in await self._storage.dispatch.held([e.id for e in abandoned])
        }
        ended: list[Execution] = []
        for execution in abandoned:
            if execution.id in held:
                continue
            timeout = execution.timeout_s or DEFAULT_TIMEOUT_S
            error = ErrorInfo(
                type=PROCESS_LOST,
                message=(
                    "the API process running it stopped: no result within its timeout "
                    f"of {timeout:g} s and a grace of {self._grace.total_seconds():g} s"
                ),
            )
            final = execution.model_copy(
                update={"state": ExecutionState.FAILED, "error": error, "finished_at": now}
            )
            ended.append(await self._recorder.write(final, "execution.failed"))
            self._recorder.finished(final, was_running=False)
        if ended:
            log.warning(
                "ended %d inline executions whose API process stopped while they ran",
                len(ended),
            )
        return ended

    async def start(self) -> None:
        self._stopper = Stopper()
        self._task = asyncio.create_task(self._run(), name="limit-orphan-sweep")

    async def _run(self) -> None:
        while await self._stopper.wait(self._every_s):
            try:
                await self.sweep()
            except Exception:
                log.exception("the sweep for abandoned inline executions failed; trying again")

    async def close(self) -> None:
        await self._stopper.stop(self._task)
        self._task = None
