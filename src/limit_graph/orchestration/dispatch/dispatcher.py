"""The dispatcher: one API process's side of the queue of work for runners (claims,
leases, reports, retries, cancellation, the reaping of expired leases); see the
package's docstring and docs/orchestration.md."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import BackendKind, Execution, ExecutionState, utcnow
from limit_graph.core.settings import DispatchSettings
from limit_graph.orchestration.dispatch.endings import Endings
from limit_graph.orchestration.dispatch.reaper import Reaper, stands
from limit_graph.orchestration.dispatch.results import (
    CANCEL_GRACE_S,
    DISPATCHED,
    POLL_S,
    ClaimedLease,
    FinalFn,
    ReportOutcome,
    RunnerResult,
    WriteFn,
)
from limit_graph.orchestration.dispatch.started import Starts
from limit_graph.orchestration.dispatch.view import QueueView
from limit_graph.orchestration.dispatch.waiting import Finals, Wakeups
from limit_graph.orchestration.router import Router
from limit_graph.orchestration.telemetry import Telemetry
from limit_graph.storage.base import Storage
from limit_graph.storage.dispatch import (
    FINAL_SIGNAL,
    QUEUED_SIGNAL,
    Held,
    QueueChange,
    QueuedWork,
    RowState,
    Settled,
)

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


class Dispatcher:
    """One API process's side of the shared queue; ``write`` records a state change."""

    def __init__(
        self,
        storage: Storage,
        router: Router,
        write: WriteFn,
        settings: DispatchSettings,
        *,
        telemetry: Telemetry | None = None,
        on_final: FinalFn | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.queue = storage.dispatch
        self.router = router
        self._write = write
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self._clock = clock
        self.wakeups = Wakeups()
        self.finals = Finals(storage, on_final)
        self._claiming = 0
        self.view = QueueView(self.queue, router, settings.lease_s)
        self.telemetry.watch("limit_queue_depth", self.view.depth_samples)
        self.telemetry.watch(
            "limit_runners",
            lambda: [((kind.value,), float(self.live_runners(kind))) for kind in DISPATCHED],
        )
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.starts = Starts(storage, write, settings.lease_s)
        self.endings = Endings(
            storage, router, write, settings, self.finals, self.view, self.wakeups, clock
        )
        self.reaper = Reaper(storage, self.view, self.starts, self.endings, settings, clock)
        self._draining = False

    # --- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Queue what the store holds unqueued (written before the queue was shared),
        follow the other processes' signals, then reap leases."""
        self.queue.listen(self._signalled, lambda: bool(self._claiming or self.finals.waiting))
        await self.queue.start()
        await self._adopt()
        await self.view.refresh(self._clock())
        self._reaper = asyncio.create_task(self.reaper.run(), name="limit-dispatch-reaper")

    async def _adopt(self) -> None:
        now = self._clock()
        queued: list[QueuedWork] = []
        running: list[QueuedWork] = []
        for execution in await self.storage.list_unfinished_executions(DISPATCHED):
            work = QueuedWork(
                execution.id, execution.instance, execution.attempts, now, execution.timeout_s
            )
            (running if execution.state is ExecutionState.RUNNING else queued).append(work)
        adopted = await self.queue.adopt(queued, running)
        if adopted:
            log.info("queued %d unfinished executions that the queue did not hold", adopted)

    def drain(self) -> None:
        """The server is going down: answer every waiting claim now (with what it has
        taken), and later ones at once, so no long poll outlives the server's grace."""
        self._draining = True
        self.wakeups.wake_all()

    async def close(self) -> None:
        self.drain()
        tasks = [t for t in (self._reaper, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reaper = None
        self._background.clear()
        await self.queue.close()

    # --- what is queued -----------------------------------------------------------

    def depth(self, instance: str) -> int:
        """Queued executions of ``instance``, as this process saw them last (its own
        submissions counted at once, the others' within half a second)."""
        return self.view.depth(instance)

    def depths(self) -> dict[str, int]:
        return self.view.depths()

    def leased(self) -> int:
        return self.view.leased()

    def pools_with_work(self) -> set[BackendKind]:
        return self.view.pools_with_work()

    async def lease_pools(self, execution_ids: Iterable[uuid.UUID]) -> set[str]:
        """The pools of the executions among ``execution_ids`` that the queue holds."""
        rows = await self.queue.held(list(dict.fromkeys(execution_ids)))
        return {self.view.kind(row.instance).value for row in rows}

    def live_runners(self, kind: BackendKind, within_s: float | None = None) -> int:
        return self.view.live_runners(kind, within_s, self._clock())

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
        return self.endings.work(execution, pinned=pinned, family=family, delay_s=delay_s)

    def queued(self, execution: Execution, delay_s: float = 0.0) -> None:
        """``execution`` was just written ``queued``: wake the claims of its instance
        (after ``delay_s``)."""
        self.endings.queued(execution, delay_s)

    def _signalled(self, kind: str, values: list[str]) -> None:
        """A signal of another process: work queued, or executions ended."""
        if kind == QUEUED_SIGNAL:
            self.wakeups.signalled(values, self._clock())
        elif kind == FINAL_SIGNAL:
            wanted = []
            for value in values:
                try:
                    execution_id = uuid.UUID(value)
                except ValueError:
                    continue
                if self.finals.wants(execution_id):
                    wanted.append(execution_id)
            if wanted:
                self._spawn(self.finals.ended_elsewhere(wanted))

    # --- waiting for the end --------------------------------------------------------

    def follow(self, execution_id: uuid.UUID) -> None:
        """Tell ``on_final`` of this execution's end wherever it is recorded."""
        self.finals.follow(execution_id)

    def waiter(self, execution_id: uuid.UUID) -> asyncio.Future[Execution]:
        """A future resolved with the execution's final record, if it ends from now on."""
        return self.finals.waiter(execution_id)

    def unwait(self, execution_id: uuid.UUID, future: asyncio.Future[Execution]) -> None:
        """Stop waiting with a :meth:`waiter`'s future."""
        self.finals.unwait(execution_id, future)

    async def wait_final(
        self,
        execution_id: uuid.UUID,
        timeout_s: float,
        waiting: asyncio.Future[Execution] | None = None,
    ) -> Execution | None:
        """The final record, waiting up to ``timeout_s``; ``None`` if it is not final by
        then (``waiting``: see :meth:`Finals.wait_final`)."""
        return await self.finals.wait_final(execution_id, timeout_s, waiting)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- runners ------------------------------------------------------------------

    def _instances_for(self, pool: BackendKind, instance: str | None) -> list[str]:
        if instance is not None:
            info = self.router.get(instance)
            if info.kind is not pool:
                raise InvalidInput(f"instance {instance!r} is a {info.kind.value} instance")
            return [instance]
        return [i.name for i in self.router.instances(pool)]

    async def _seen(self, runner_id: str, pool: BackendKind, instances: Sequence[str]) -> None:
        now = self._clock()
        for name in instances:
            self.router.health.heartbeat(name)
        if self.view.seen(runner_id, pool, now):  # the store hears of it now and then
            await self.queue.seen(runner_id, pool.value, instances, now=now)

    async def claim(
        self,
        runner_id: str,
        pool: BackendKind,
        instance: str | None,
        *,
        max_items: int,
        wait_s: float,
    ) -> tuple[list[ClaimedLease], list[uuid.UUID]]:
        """Up to ``max_items`` leases, waiting up to ``wait_s`` (at most the settings'
        ``max_claim_wait_s``) for the first; and the executions to cancel."""
        names = self._instances_for(pool, instance)
        await self._seen(runner_id, pool, names)
        deadline = time.monotonic() + min(wait_s, self.settings.max_claim_wait_s)
        leases: list[ClaimedLease] = []
        self._claiming += 1
        try:
            while True:
                events = [self.wakeups.event(n) for n in names]
                for event in events:
                    event.clear()  # before looking: a wake-up from now on is not missed
                leases = await self._lease(runner_id, names, max_items)
                remaining = deadline - time.monotonic()
                if leases or remaining <= 0 or self._draining:
                    break
                waits = [asyncio.ensure_future(e.wait()) for e in events]
                try:
                    await asyncio.wait(
                        waits, timeout=min(remaining, POLL_S), return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for w in waits:
                        w.cancel()
        finally:
            self._claiming -= 1
        cancels = await self.queue.renew(runner_id, (), self._clock() + self.settings.lease_s)
        return leases, cancels

    async def _lease(self, runner_id: str, names: list[str], limit: int) -> list[ClaimedLease]:
        """Lease what is ready; each is written ``running`` meanwhile (a result reported
        here waits for that write, one reported to another process finds it there)."""
        lease_s = self.settings.lease_s
        claimed = await self.queue.claim(
            names, runner_id, limit, now=self._clock(), lease_s=lease_s
        )
        if not claimed:
            return []
        missing = [row.execution_id for row, record in claimed if record is None]
        if missing:  # rows the queue holds without their record (adopted at start)
            found = await self.storage.get_executions(missing)
            claimed = [(row, record or found.get(row.execution_id)) for row, record in claimed]
        started = utcnow()
        running: list[Execution] = []
        stale: list[uuid.UUID] = []
        for row, record in claimed:
            self.view.count(row.instance, RowState.QUEUED, -1)
            if record is None or not stands(record, row):
                stale.append(row.execution_id)
                continue
            self.view.count(row.instance, RowState.LEASED, 1)
            running.append(
                record.model_copy(
                    update={"state": ExecutionState.RUNNING, "started_at": started, "error": None}
                )
            )
        if stale:
            await self.queue.drop(stale)
        for execution in running:
            self.starts.start(execution)
        return [ClaimedLease(e, e.attempts, lease_s) for e in running]

    async def heartbeat(
        self,
        runner_id: str,
        pool: BackendKind,
        instance: str | None,
        held: Sequence[uuid.UUID],
    ) -> list[uuid.UUID]:
        """Renew the leases ``runner_id`` holds; the ones it must cancel come back."""
        await self._seen(runner_id, pool, self._instances_for(pool, instance))
        return await self.queue.renew(runner_id, held, self._clock() + self.settings.lease_s)

    async def report(self, runner_id: str, results: Sequence[RunnerResult]) -> ReportOutcome:
        outcome = ReportOutcome()
        settled = await self.queue.settle(
            runner_id,
            [(item.execution_id, item.attempt) for item in results],
            hold_until=self._clock() + self.settings.lease_s,
        )
        gone = [i.execution_id for i in results if settled[i.execution_id][0] is Settled.GONE]
        stored_gone = await self.storage.get_executions(gone) if gone else {}
        writes: list[Awaitable[None]] = []
        reported: set[uuid.UUID] = set()
        for item in results:
            verdict, row, record = settled[item.execution_id]
            if verdict is Settled.ACCEPTED and item.execution_id not in reported:
                assert row is not None
                reported.add(item.execution_id)
                outcome.accepted.append(item.execution_id)
                writes.append(self._record(row, item, record))
            elif verdict is Settled.ACCEPTED or verdict is Settled.DUPLICATE:
                outcome.duplicates.append(item.execution_id)
            elif verdict is Settled.OTHER_RUNNER:
                outcome.rejected.append((item.execution_id, "leased to another runner"))
            else:
                stored = stored_gone.get(item.execution_id)
                if stored is not None and stored.attempts == item.attempt and stored.state.is_final:
                    outcome.duplicates.append(item.execution_id)
                elif stored is None:
                    outcome.rejected.append((item.execution_id, "no such execution"))
                else:
                    outcome.rejected.append(
                        (item.execution_id, f"attempt {item.attempt} no longer holds a lease")
                    )
        await asyncio.gather(*writes)
        return outcome

    async def _record(self, row: Held, item: RunnerResult, record: Execution | None) -> None:
        running = await self.starts.started(row, record)
        if running is None or running.state.is_final:
            await self.queue.drop([row.execution_id])
            return
        error = item.error
        instance = running.instance
        if item.state is ExecutionState.FAILED and error is not None and error.retryable:
            self.router.health.record_failure(instance)
            if not row.cancel and await self.endings.retry(running, error, row):
                return
        elif item.state is ExecutionState.SUCCEEDED:
            self.router.health.record_success(instance)
        context = item.run_context
        if context is not None and running.sensitive:
            context = context.without_inputs()  # its seed and target are sealed inputs
        final = running.model_copy(
            update={
                "state": item.state,
                "result": item.result if item.state is ExecutionState.SUCCEEDED else None,
                "error": error,
                "started_at": item.started_at or running.started_at,
                "finished_at": item.finished_at or utcnow(),
                "run_context": context,
            }
        )
        await self.endings.final(final, f"execution.{item.state.value}")

    # --- cancellation ---------------------------------------------------------------

    async def cancel(self, execution_id: uuid.UUID, actor: str) -> Execution | None:
        """Cancel a queued or leased execution; ``None`` when the queue does not hold it."""
        hold = self._clock() + self.settings.lease_s
        row = await self.queue.take(execution_id, states=[RowState.QUEUED], hold_until=hold)
        if row is not None:
            self.view.count(row.instance, RowState.QUEUED, -1)
            return await self.endings.cancelled(execution_id, actor)
        if await self.queue.ask_cancel(execution_id) is None:
            return None
        done = self.waiter(execution_id)
        try:
            return await asyncio.wait_for(asyncio.shield(done), CANCEL_GRACE_S)
        except TimeoutError:
            hold = self._clock() + self.settings.lease_s
            row = await self.queue.take(execution_id, states=[RowState.LEASED], hold_until=hold)
            if row is None:  # its result is being recorded
                return await self.wait_final(execution_id, self.settings.lease_s)
            return await self.endings.cancelled(execution_id, actor)
        finally:
            self.finals.unwait(execution_id, done)

    async def reap(self) -> None:
        """One round of the reaper (:meth:`Reaper.reap`)."""
        await self.reaper.reap()
