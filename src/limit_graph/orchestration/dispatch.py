"""Dispatch of remote and quantum executions to runners: queues, leases, long polls.

An execution is written ``queued`` (durably) before it is put in its instance's
queue.  A runner's claim takes up to ``max`` of them at once, or waits (a long
poll) until one arrives; each claimed execution is written ``running`` with the
claim's attempt number and held under a lease that the runner's heartbeats renew.
A result is recorded only for the attempt that holds the lease, once: a repeat is
a duplicate, a result of an attempt whose lease expired is rejected.  A lease that
expires puts the execution back in a queue as the next attempt, on the next
instance of the ring, while attempts remain; so does a retryable failure, after a
backoff.  See docs/orchestration.md for the protocol.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import BackendKind, ErrorInfo, Execution, ExecutionState, utcnow
from limit_graph.core.run_context import RunContext
from limit_graph.core.settings import DispatchSettings
from limit_graph.orchestration.router import Router, target_family
from limit_graph.orchestration.telemetry import Telemetry
from limit_graph.storage.base import Storage

__all__ = ["ClaimedLease", "Dispatcher", "ReportOutcome", "RunnerResult"]

log = logging.getLogger(__name__)

DISPATCHED = (BackendKind.REMOTE, BackendKind.QUANTUM)
RUNNER_LOST = "RunnerLost"
CANCEL_GRACE_S = 5.0


@dataclass(frozen=True)
class RunnerResult:
    """One result as a runner reports it."""

    execution_id: uuid.UUID
    attempt: int
    state: ExecutionState
    result: Any = None
    error: ErrorInfo | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_context: RunContext | None = None
    """What the run depended on, as the runner saw it (its libraries, seed, target)."""


@dataclass(frozen=True)
class ClaimedLease:
    execution: Execution
    attempt: int
    lease_s: float


@dataclass
class ReportOutcome:
    accepted: list[uuid.UUID] = field(default_factory=list)
    duplicates: list[uuid.UUID] = field(default_factory=list)
    rejected: list[tuple[uuid.UUID, str]] = field(default_factory=list)


@dataclass
class _Lease:
    execution: Execution
    runner_id: str
    expires_at: float
    cancel: bool = False
    recorded: asyncio.Future[Execution] | None = None


@dataclass
class _Queue:
    pending: deque[Execution] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


WriteFn = Callable[[Execution, str], Awaitable[Execution]]


class Dispatcher:
    """The queues of one API process; ``write`` records a state change durably."""

    def __init__(
        self,
        storage: Storage,
        router: Router,
        write: WriteFn,
        settings: DispatchSettings,
        *,
        telemetry: Telemetry | None = None,
        on_final: Callable[[Execution], Awaitable[None]] | None = None,
    ) -> None:
        self.storage = storage
        self.router = router
        self._write = write
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self._on_final = on_final
        self._queues: dict[str, _Queue] = {}
        self._leases: dict[uuid.UUID, _Lease] = {}
        self._reporting: set[tuple[uuid.UUID, int]] = set()
        self._delayed: list[tuple[float, int, Execution]] = []
        self._sequence = itertools.count()
        self._waiters: dict[uuid.UUID, list[asyncio.Future[Execution]]] = {}
        self._pinned: set[uuid.UUID] = set()
        self._families: dict[uuid.UUID, str] = {}  # target family each was routed for
        self._runners: dict[str, tuple[str, float]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._draining = False

    # --- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Put the store's unfinished executions back in the queues, then reap leases."""
        for execution in await self.storage.list_unfinished_executions(DISPATCHED):
            if execution.state is ExecutionState.RUNNING:
                await self._lose(execution, "the platform restarted while it ran")
            else:
                self._enqueue(execution)
        self._reaper = asyncio.create_task(self._reap_forever(), name="limit-dispatch-reaper")

    def drain(self) -> None:
        """The server is going down: answer every waiting claim now (with what it has
        taken), and later ones at once, so no long poll outlives the server's grace."""
        self._draining = True
        for queue in self._queues.values():
            queue.wakeup.set()

    async def close(self) -> None:
        self.drain()
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None

    # --- submitting ---------------------------------------------------------------

    def _queue(self, instance: str) -> _Queue:
        queue = self._queues.get(instance)
        if queue is None:
            queue = self._queues[instance] = _Queue()
        return queue

    def depth(self, instance: str) -> int:
        queue = self._queues.get(instance)
        return len(queue.pending) if queue else 0

    def depths(self) -> dict[str, int]:
        return {name: len(q.pending) for name, q in self._queues.items()}

    def leased(self) -> int:
        return len(self._leases)

    def pools_with_work(self) -> set[BackendKind]:
        kinds = {self.router.get(name).kind for name, q in self._queues.items() if q.pending}
        kinds.update(
            self.router.get(lease.execution.instance).kind for lease in self._leases.values()
        )
        return kinds

    def lease_pools(self, execution_ids: Iterable[uuid.UUID]) -> set[str]:
        """The pools of the executions among ``execution_ids`` that are leased now."""
        leased = (self._leases.get(execution_id) for execution_id in execution_ids)
        return {self.router.get(lease.execution.instance).kind.value for lease in leased if lease}

    def live_runners(self, kind: BackendKind, within_s: float | None = None) -> int:
        horizon = time.monotonic() - (within_s or 3 * self.settings.lease_s)
        return sum(1 for pool, seen in self._runners.values() if pool == kind and seen >= horizon)

    def submit(
        self, execution: Execution, *, pinned: bool = False, family: str | None = None
    ) -> None:
        """Queue an execution already written ``queued``; ``family``: the target family
        it was routed for, which a failover keeps."""
        if pinned:
            self._pinned.add(execution.id)
        if family is not None:
            self._families[execution.id] = family
        self._enqueue(execution)

    def _enqueue(self, execution: Execution) -> None:
        queue = self._queue(execution.instance)
        queue.pending.append(execution)
        queue.wakeup.set()
        self.telemetry.queue_depth.labels(execution.instance).set(len(queue.pending))

    def waiter(self, execution_id: uuid.UUID) -> asyncio.Future[Execution]:
        """A future resolved with the execution's final record, if it ends from now on."""
        future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, []).append(future)
        return future

    async def wait_final(self, execution_id: uuid.UUID, timeout_s: float) -> Execution | None:
        """The final record, waiting up to ``timeout_s``; ``None`` if it is not final by then."""
        future = self.waiter(execution_id)
        stored = await self.storage.get_execution(execution_id)
        if stored is not None and stored.state.is_final:
            future.cancel()
            return stored
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            waiting = self._waiters.get(execution_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[execution_id]

    async def _finished(self, execution: Execution) -> None:
        """After the final record is written: ``on_final`` (e.g. the result cache), then
        whoever waits for it, so a caller that got the answer also finds it cached."""
        self._pinned.discard(execution.id)
        self._families.pop(execution.id, None)
        if self._on_final is not None:
            try:
                await self._on_final(execution)
            except Exception:
                log.exception("after execution %s ended", execution.id)
        for future in self._waiters.pop(execution.id, []):
            if not future.done():
                future.set_result(execution)

    # --- runners ------------------------------------------------------------------

    def _instances_for(self, pool: BackendKind, instance: str | None) -> list[str]:
        if instance is not None:
            info = self.router.get(instance)
            if info.kind is not pool:
                raise InvalidInput(f"instance {instance!r} is a {info.kind.value} instance")
            return [instance]
        return [i.name for i in self.router.instances(pool)]

    def _seen(self, runner_id: str, pool: BackendKind, instances: Sequence[str]) -> None:
        self._runners[runner_id] = (pool, time.monotonic())
        for name in instances:
            self.router.health.heartbeat(name)

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
        ``max_claim_wait_s``) for the first."""
        names = self._instances_for(pool, instance)
        self._seen(runner_id, pool, names)
        deadline = time.monotonic() + min(wait_s, self.settings.max_claim_wait_s)
        taken: list[Execution] = []
        while True:
            for name in names:
                queue = self._queue(name)
                while queue.pending and len(taken) < max_items:
                    taken.append(queue.pending.popleft())
                self.telemetry.queue_depth.labels(name).set(len(queue.pending))
                if not queue.pending:
                    queue.wakeup.clear()
            remaining = deadline - time.monotonic()
            if taken or remaining <= 0 or self._draining:
                break
            waits = [asyncio.ensure_future(self._queue(n).wakeup.wait()) for n in names]
            try:
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        leases = [self._lease(runner_id, e) for e in taken]
        return leases, self._cancels(runner_id)

    def _lease(self, runner_id: str, queued: Execution) -> ClaimedLease:
        """Lease at once; the ``running`` record is written meanwhile (a crash before it
        lands leaves the execution ``queued``, and it runs again after the restart)."""
        running = queued.model_copy(
            update={"state": ExecutionState.RUNNING, "started_at": utcnow(), "error": None}
        )
        lease = _Lease(running, runner_id, time.monotonic() + self.settings.lease_s)
        lease.recorded = asyncio.ensure_future(self._write(running, "execution.started"))
        self._leases[queued.id] = lease
        return ClaimedLease(running, queued.attempts, self.settings.lease_s)

    @staticmethod
    async def _settled(lease: _Lease) -> Execution:
        """The leased record once its ``running`` write is done, so later writes follow it."""
        if lease.recorded is not None:
            try:
                lease.execution = await asyncio.shield(lease.recorded)
            except Exception:
                log.exception("recording execution %s as running failed", lease.execution.id)
        return lease.execution

    def _cancels(self, runner_id: str) -> list[uuid.UUID]:
        return [
            i for i, lease in self._leases.items() if lease.cancel and lease.runner_id == runner_id
        ]

    def heartbeat(
        self,
        runner_id: str,
        pool: BackendKind,
        instance: str | None,
        held: Sequence[uuid.UUID],
    ) -> list[uuid.UUID]:
        """Renew the leases ``runner_id`` holds; the ones it must cancel come back."""
        self._seen(runner_id, pool, self._instances_for(pool, instance))
        expires = time.monotonic() + self.settings.lease_s
        for execution_id in held:
            lease = self._leases.get(execution_id)
            if lease is not None and lease.runner_id == runner_id:
                lease.expires_at = expires
        return self._cancels(runner_id)

    async def report(self, runner_id: str, results: Sequence[RunnerResult]) -> ReportOutcome:
        outcome = ReportOutcome()
        writes: list[Awaitable[None]] = []
        for item in results:
            key = (item.execution_id, item.attempt)
            lease = self._leases.get(item.execution_id)
            if key in self._reporting:
                outcome.duplicates.append(item.execution_id)
            elif lease is not None and lease.execution.attempts == item.attempt:
                if lease.runner_id != runner_id:
                    outcome.rejected.append((item.execution_id, "leased to another runner"))
                    continue
                del self._leases[item.execution_id]
                self._reporting.add(key)
                outcome.accepted.append(item.execution_id)
                writes.append(self._record(lease, item))
            else:
                stored = await self.storage.get_execution(item.execution_id)
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

    async def _record(self, lease: _Lease, item: RunnerResult) -> None:
        try:
            running = await self._settled(lease)
            error = item.error
            instance = running.instance
            if item.state is ExecutionState.FAILED and error is not None and error.retryable:
                self.router.health.record_failure(instance)
                if await self._retry(running, error):
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
            await self._finished(await self._write(final, f"execution.{item.state.value}"))
        finally:
            self._reporting.discard((item.execution_id, item.attempt))

    async def _retry(self, execution: Execution, error: ErrorInfo) -> bool:
        """Queue the next attempt after a backoff, failing over to the next instance."""
        if execution.attempts >= self.settings.max_attempts:
            return False
        instance = execution.instance
        if execution.id not in self._pinned:
            info = self.router.get(instance)
            family = self._families.get(execution.id) or target_family(info.kind, execution.inputs)
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
        stored = await self._write(queued, "execution.retry")
        delay = self.settings.retry_backoff_s * 2 ** (execution.attempts - 1)
        heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._sequence), stored))
        return True

    async def _lose(self, execution: Execution, why: str) -> None:
        """A lease ended without a result: retry elsewhere, or fail for good."""
        self.router.health.record_failure(execution.instance)
        error = ErrorInfo(type=RUNNER_LOST, message=why, retryable=True)
        if await self._retry(execution, error):
            return
        final = execution.model_copy(
            update={"state": ExecutionState.FAILED, "error": error, "finished_at": utcnow()}
        )
        await self._finished(await self._write(final, "execution.failed"))

    # --- cancellation ---------------------------------------------------------------

    async def cancel(self, execution_id: uuid.UUID, actor: str) -> Execution | None:
        """Cancel a queued or leased execution; ``None`` when this process does not hold it."""
        for queue in self._queues.values():
            for queued in queue.pending:
                if queued.id == execution_id:
                    queue.pending.remove(queued)
                    return await self._cancelled(queued, actor)
        for index, (_, _, delayed) in enumerate(self._delayed):
            if delayed.id == execution_id:
                self._delayed.pop(index)
                heapq.heapify(self._delayed)
                return await self._cancelled(delayed, actor)
        lease = self._leases.get(execution_id)
        if lease is None:
            return None
        lease.cancel = True
        done = self.waiter(execution_id)
        try:
            return await asyncio.wait_for(asyncio.shield(done), CANCEL_GRACE_S)
        except TimeoutError:
            lease = self._leases.pop(execution_id, None)
            if lease is None:
                return await done
            return await self._cancelled(await self._settled(lease), actor)

    async def _cancelled(self, execution: Execution, actor: str) -> Execution:
        final = execution.model_copy(
            update={
                "state": ExecutionState.CANCELLED,
                "error": ErrorInfo(type="Cancelled", message=f"cancelled by {actor}"),
                "finished_at": utcnow(),
            }
        )
        stored = await self._write(final, "execution.cancelled")
        await self._finished(stored)
        return stored

    # --- leases ---------------------------------------------------------------------

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(0.5, self.settings.lease_s / 4))
            try:
                await self.reap()
            except Exception:
                log.exception("reaping leases failed; trying again")

    async def reap(self) -> None:
        """Expire leases, time out overdue work, and release delayed retries."""
        now = time.monotonic()
        wall = utcnow()
        lost = [i for i, lease in self._leases.items() if lease.expires_at < now]
        overdue = [
            i
            for i, lease in self._leases.items()
            if lease.execution.timeout_s is not None
            and lease.execution.started_at is not None
            and (wall - lease.execution.started_at).total_seconds()
            > lease.execution.timeout_s + self.settings.lease_s
        ]
        for execution_id in overdue:
            lease = self._leases.pop(execution_id, None)
            if lease is not None:
                await self._settled(lease)
                timed_out = lease.execution.model_copy(
                    update={
                        "state": ExecutionState.TIMED_OUT,
                        "error": ErrorInfo(
                            type="Timeout",
                            message=f"no result within {lease.execution.timeout_s} s",
                        ),
                        "finished_at": utcnow(),
                    }
                )
                await self._finished(await self._write(timed_out, "execution.timed_out"))
        for execution_id in lost:
            lease = self._leases.pop(execution_id, None)
            if lease is not None:
                log.warning(
                    "lease of execution %s on runner %s expired", execution_id, lease.runner_id
                )
                self._runners.pop(lease.runner_id, None)  # not live: the supervisor replaces it
                await self._lose(
                    await self._settled(lease), f"runner {lease.runner_id} stopped answering"
                )
        while self._delayed and self._delayed[0][0] <= now:
            _, _, execution = heapq.heappop(self._delayed)
            self._enqueue(execution)
