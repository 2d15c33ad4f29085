"""What one API process knows of the shared queue: the rows per instance and state, and
the runners heard from (through any process), read every half second and adjusted at
once for this process's own changes; routing, ``/health``, the metrics (queue depth and
runners, read at each scrape) and the runner supervisor read it without a query."""

from __future__ import annotations

import time

from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import BackendKind
from limit_graph.orchestration.dispatch.results import DISPATCHED, SEEN_EVERY_S
from limit_graph.orchestration.router import Router
from limit_graph.storage.dispatch import DispatchQueue, RowState

__all__ = ["QueueView"]


class QueueView:
    def __init__(self, queue: DispatchQueue, router: Router, lease_s: float) -> None:
        self.queue = queue
        self.router = router
        self.lease_s = lease_s
        self._counts: dict[tuple[str, RowState], int] = {}
        self._runners: dict[str, tuple[str, float]] = {}  # runner -> (pool, last seen)
        self._told: dict[str, float] = {}  # runner -> when the store last heard of it here

    def kind(self, instance: str) -> BackendKind:
        try:
            return self.router.get(instance).kind
        except InvalidInput:  # an instance since removed from the settings
            return BackendKind.REMOTE

    def depth(self, instance: str) -> int:
        return self._counts.get((instance, RowState.QUEUED), 0)

    def depths(self) -> dict[str, int]:
        return {i: n for (i, state), n in self._counts.items() if state is RowState.QUEUED}

    def depth_samples(self) -> list[tuple[tuple[str, str], float]]:
        """``((pool, instance), queued)`` of every dispatched instance configured, and of
        any other the queue still holds work for: what ``limit_queue_depth`` shows."""
        depths = self.depths()
        names = {info.name for kind in DISPATCHED for info in self.router.instances(kind)}
        return [
            ((self.kind(name).value, name), float(depths.get(name, 0)))
            for name in sorted(names | depths.keys())
        ]

    def leased(self) -> int:
        return sum(n for (_, state), n in self._counts.items() if state is not RowState.QUEUED)

    def pools_with_work(self) -> set[BackendKind]:
        return {self.kind(instance) for (instance, _), n in self._counts.items() if n > 0}

    def live_runners(self, kind: BackendKind, within_s: float | None, now: float) -> int:
        horizon = now - (within_s or 3 * self.lease_s)
        return sum(1 for pool, seen in self._runners.values() if pool == kind and seen >= horizon)

    def count(self, instance: str, state: RowState, change: int) -> None:
        """This process's own change to the queue, counted before the next refresh."""
        key = (instance, state)
        self._counts[key] = max(0, self._counts.get(key, 0) + change)

    def seen(self, runner_id: str, pool: BackendKind, now: float) -> bool:
        """A runner was heard from here; whether to tell the store (every
        ``SEEN_EVERY_S`` per runner)."""
        self._runners[runner_id] = (pool.value, now)
        if now - self._told.get(runner_id, 0.0) < SEEN_EVERY_S:
            return False
        self._told[runner_id] = now
        return True

    def forget(self, runner_id: str) -> None:
        self._runners.pop(runner_id, None)
        self._told.pop(runner_id, None)

    async def refresh(self, now: float) -> None:
        """The queue's counts and the runners heard from, as every process sees them."""
        self._counts = await self.queue.counts()
        seen = await self.queue.runners(since=now - 3 * self.lease_s)
        monotonic = time.monotonic()
        for runner in seen:
            if runner.seen_at > self._runners.get(runner.runner_id, ("", 0.0))[1]:
                self._runners[runner.runner_id] = (runner.pool, runner.seen_at)
            for name in runner.instances:
                self.router.health.heartbeat(name, at=monotonic - (now - runner.seen_at))
        horizon = now - 3 * self.lease_s
        for runner_id in [r for r, (_, at) in self._runners.items() if at < horizon]:
            self.forget(runner_id)
