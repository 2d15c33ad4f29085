"""The reaper: every API process's rounds over the queue's expired leases and overdue
work, each row taken by one process (``DispatchQueue.expired``) and ended there: a
lost lease retried elsewhere, an overdue execution timed out, a cancellation whose
canceller stopped finished."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from limit_graph.core.models import ErrorInfo, Execution, ExecutionState, utcnow
from limit_graph.core.settings import DispatchSettings
from limit_graph.orchestration.dispatch.endings import Endings
from limit_graph.orchestration.dispatch.started import Starts
from limit_graph.orchestration.dispatch.view import QueueView
from limit_graph.storage.base import Storage
from limit_graph.storage.dispatch import Held, RowState

__all__ = ["Reaper", "stands"]

log = logging.getLogger(__name__)


class Reaper:
    def __init__(
        self,
        storage: Storage,
        view: QueueView,
        starts: Starts,
        endings: Endings,
        settings: DispatchSettings,
        clock: Callable[[], float],
    ) -> None:
        self.storage = storage
        self.queue = storage.dispatch
        self.view = view
        self.starts = starts
        self.endings = endings
        self.settings = settings
        self._clock = clock

    async def run(self) -> None:
        """A round every half second (a quarter lease if shorter), until cancelled."""
        while True:
            await asyncio.sleep(min(0.5, self.settings.lease_s / 4))
            try:
                await self.reap()
            except Exception as exc:
                log.warning("reaping leases failed (%s); trying again", exc)

    async def reap(self) -> None:
        """Expire leases, time out overdue work, refresh what this process knows of the
        queue; queued retries become claimable by themselves when their backoff ends."""
        await self.view.refresh(self._clock())
        self.starts.forget_old()
        if not self.view.leased():
            return
        now = self._clock()
        rows = await self.queue.expired(now=now, hold_until=now + self.settings.lease_s)
        if not rows:
            return
        records = await self.storage.get_executions([r.execution_id for r in rows])
        stale = {r.execution_id for r in rows if not stands(records.get(r.execution_id), r)}
        if stale:
            await self.queue.drop(list(stale))
        rows = [r for r in rows if r.execution_id not in stale]
        gone = {r.runner_id for r in rows if r.runner_id and _lost(r, now)}
        for runner_id in gone:  # not live: the supervisor replaces it
            self.view.forget(runner_id)
        await asyncio.gather(*(self.queue.forget_runner(r) for r in gone))
        # All at once: the group-commit writer makes their writes one batch; one after
        # the other, a burst of expiries outlasts the hold the queue gave them.
        ended = await asyncio.gather(
            *(self._expire(records[row.execution_id], row, now) for row in rows),
            return_exceptions=True,
        )
        for row, outcome in zip(rows, ended, strict=True):
            if isinstance(outcome, Exception):  # its row comes back after the hold
                log.warning(
                    "expiring the lease of execution %s failed: %s", row.execution_id, outcome
                )

    async def _expire(self, execution: Execution, row: Held, now: float) -> None:
        if row.cancel:
            await self.endings.cancelled(execution.id, "the platform (its canceller stopped)")
        elif not _lost(row, now):  # overdue
            timed_out = execution.model_copy(
                update={
                    "state": ExecutionState.TIMED_OUT,
                    "error": ErrorInfo(
                        type="Timeout", message=f"no result within {execution.timeout_s} s"
                    ),
                    "finished_at": utcnow(),
                }
            )
            await self.endings.final(timed_out, "execution.timed_out")
        else:
            runner = row.runner_id or "of an earlier start"
            log.warning("lease of execution %s on runner %s expired", execution.id, runner)
            why = (
                f"runner {row.runner_id} stopped answering"
                if row.runner_id
                else "the platform restarted while it ran"
            )
            await self.endings.lose(execution, why, row)


def _lost(row: Held, now: float) -> bool:
    """Whether the expired ``row`` is a lease lost (not a cancellation, nor overdue)."""
    overdue = row.state is RowState.LEASED and row.deadline is not None and row.deadline < now
    return not row.cancel and not overdue


def stands(execution: Execution | None, row: Held) -> bool:
    """Whether ``row`` still stands for an unfinished attempt of ``execution``."""
    return (
        execution is not None and not execution.state.is_final and execution.attempts == row.attempt
    )
