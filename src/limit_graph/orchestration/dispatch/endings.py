"""How dispatched work ends or goes round again: a final record (with its queue row
dropped in the same transaction, and whoever waits told), a retry on the next instance
after a backoff, a lease lost, a cancellation."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from limit_graph.core.models import ErrorInfo, Execution, ExecutionState, utcnow
from limit_graph.core.settings import DispatchSettings
from limit_graph.orchestration.dispatch.results import RUNNER_LOST, WriteFn
from limit_graph.orchestration.dispatch.view import QueueView
from limit_graph.orchestration.dispatch.waiting import Finals, Wakeups
from limit_graph.orchestration.router import Router, target_family
from limit_graph.storage.base import Storage
from limit_graph.storage.dispatch import Held, QueueChange, QueuedWork, RowState

__all__ = ["Endings"]


class Endings:
    def __init__(
        self,
        storage: Storage,
        router: Router,
        write: WriteFn,
        settings: DispatchSettings,
        finals: Finals,
        view: QueueView,
        wakeups: Wakeups,
        clock: Callable[[], float],
    ) -> None:
        self.storage = storage
        self.queue = storage.dispatch
        self.router = router
        self._write = write
        self.settings = settings
        self.finals = finals
        self.view = view
        self.wakeups = wakeups
        self._clock = clock

    def work(
        self,
        execution: Execution,
        *,
        pinned: bool = False,
        family: str | None = None,
        delay_s: float = 0.0,
    ) -> QueueChange:
        """The queue change that queues ``execution`` (its current attempt and instance)
        in the transaction that writes it ``queued``."""
        return QueueChange.queue(
            QueuedWork(
                execution.id,
                execution.instance,
                execution.attempts,
                self._clock() + delay_s,
                execution.timeout_s,
                pinned=pinned,
                family=family,
            )
        )

    def queued(self, execution: Execution, delay_s: float = 0.0) -> None:
        """``execution`` was just written ``queued``: wake the claims of its instance
        (after ``delay_s``)."""
        self.view.count(execution.instance, RowState.QUEUED, 1)
        self.wakeups.wake(execution.instance, delay_s)

    async def final(self, final: Execution, action: str) -> Execution:
        stored = await self._write(final, action, queue=QueueChange.done(final.id))
        await self.finals.finished(stored)
        return stored

    async def retry(self, execution: Execution, error: ErrorInfo, row: Held) -> bool:
        """Queue the next attempt after a backoff, failing over to the next instance."""
        if execution.attempts >= self.settings.max_attempts:
            return False
        instance = execution.instance
        if not row.pinned:
            info = self.router.get(instance)
            family = row.family or target_family(info.kind, execution.inputs)
            instance = (
                self.router.failover(
                    info.kind,
                    execution.agent,
                    execution.session_id,
                    {execution.instance},
                    family=family,
                )
                or instance
            )
        queued = execution.model_copy(
            update={
                "state": ExecutionState.QUEUED,
                "attempts": execution.attempts + 1,
                "instance": instance,
                "error": error,
            }
        )
        delay = self.settings.retry_backoff_s * 2 ** (execution.attempts - 1)
        change = self.work(queued, pinned=row.pinned, family=row.family, delay_s=delay)
        stored = await self._write(queued, "execution.retry", queue=change)
        self.queued(stored, delay)
        return True

    async def lose(self, execution: Execution, why: str, row: Held) -> None:
        """A lease ended without a result: retry elsewhere, or fail for good."""
        self.router.health.record_failure(execution.instance)
        error = ErrorInfo(type=RUNNER_LOST, message=why, retryable=True)
        if await self.retry(execution, error, row):
            return
        final = execution.model_copy(
            update={"state": ExecutionState.FAILED, "error": error, "finished_at": utcnow()}
        )
        await self.final(final, "execution.failed")

    async def cancelled(self, execution_id: uuid.UUID, actor: str) -> Execution | None:
        execution = await self.storage.get_execution(execution_id)
        if execution is None or execution.state.is_final:
            await self.queue.drop([execution_id])
            return execution
        final = execution.model_copy(
            update={
                "state": ExecutionState.CANCELLED,
                "error": ErrorInfo(type="Cancelled", message=f"cancelled by {actor}"),
                "finished_at": utcnow(),
            }
        )
        return await self.final(final, "execution.cancelled")
