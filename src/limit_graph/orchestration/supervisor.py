"""Keep runners where there is work: start them through Prefect, let idle ones exit.

Every second the supervisor looks at each pool (backend kind) the dispatcher holds
work for.  A pool with work and no live runner (none heartbeated within three
leases) and none starting gets one: a flow run of the pool's runner deployment
(``limit-runner/<pool>``), created through Prefect's API exactly as
``run_deployment(..., timeout=0)`` does, which the pool's worker picks up.  A deep
queue gets more runners, one per ``backlog_per_runner`` queued executions, up to the
pool's maximum (the sum of its instances' ``max_runners``).  A started runner counts
as starting until it heartbeats or ``start_grace_s`` passes.  Runners exit on their
own after ``idle_exit_s`` without work, so nothing here stops them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from limit_graph.core.models import BackendKind
from limit_graph.core.stopping import Stopper
from limit_graph.orchestration.dispatch import DISPATCHED, Dispatcher

__all__ = ["RunnerStarter", "RunnerSupervisor", "prefect_runner_starter"]

log = logging.getLogger(__name__)

RunnerStarter = Callable[[BackendKind, float], Awaitable[str]]
"""Start one runner of a pool (given its idle exit time); returns the flow run id."""

POOLS = (BackendKind.LOCAL, *DISPATCHED)


def prefect_runner_starter(api_url: str) -> RunnerStarter:
    """Start runners as flow runs of the ``limit-runner/<pool>`` deployments."""

    async def start(pool: BackendKind, idle_exit_s: float) -> str:
        from prefect.client.orchestration import PrefectClient

        async with PrefectClient(api_url) as client:
            deployment = await client.read_deployment_by_name(f"limit-runner/{pool.value}")
            flow_run = await client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"pool": pool.value, "idle_exit_s": idle_exit_s},
                name=f"runner-{pool.value}-{uuid.uuid4().hex[:6]}",
                tags=[f"pool:{pool.value}", "limit-runner"],
            )
        return str(flow_run.id)

    return start


class RunnerSupervisor:
    def __init__(
        self,
        dispatcher: Dispatcher,
        start_runner: RunnerStarter,
        *,
        idle_exit_s: float = 60.0,
        backlog_per_runner: int = 500,
        start_grace_s: float = 60.0,
        interval_s: float = 1.0,
    ) -> None:
        self.dispatcher = dispatcher
        self.start_runner = start_runner
        self.idle_exit_s = idle_exit_s
        self.backlog_per_runner = backlog_per_runner
        self.start_grace_s = start_grace_s
        self.interval_s = interval_s
        self.started: dict[BackendKind, list[float]] = {pool: [] for pool in POOLS}
        self._failing_since: dict[BackendKind, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopper = Stopper()

    def maximum(self, pool: BackendKind) -> int:
        return sum(i.max_runners for i in self.dispatcher.router.instances(pool))

    def wanted(self, pool: BackendKind, busy: set[BackendKind] | None = None) -> int:
        """Runners this pool should have now: none without work, else by its backlog.
        ``busy``: the pools with work, when the caller has them already."""
        if pool not in (busy if busy is not None else self.dispatcher.pools_with_work()):
            return 0
        depth = sum(self.dispatcher.depth(i.name) for i in self.dispatcher.router.instances(pool))
        return min(self.maximum(pool), 1 + depth // self.backlog_per_runner)

    async def tick(self) -> list[BackendKind]:
        """Start the runners that are missing; which pools got one."""
        now = time.monotonic()
        launched: list[BackendKind] = []
        busy = self.dispatcher.pools_with_work()
        for pool in POOLS:
            starting = [t for t in self.started[pool] if now - t < self.start_grace_s]
            live = self.dispatcher.live_runners(pool)
            if live:
                starting = [t for t in starting if now - t < 3 * self.dispatcher.settings.lease_s]
            self.started[pool] = starting
            if live + len(starting) >= self.wanted(pool, busy):
                continue
            try:
                flow_run = await self.start_runner(pool, self.idle_exit_s)
            except Exception as exc:
                if pool not in self._failing_since:
                    log.warning(
                        "could not start a %s runner through Prefect (%s); start one with "
                        "'limit runner --pool %s' or check the Prefect server",
                        pool.value,
                        exc,
                        pool.value,
                    )
                self._failing_since.setdefault(pool, now)
                continue
            self._failing_since.pop(pool, None)
            self.started[pool].append(now)
            launched.append(pool)
            log.info("started a %s runner: flow run %s", pool.value, flow_run)
        return launched

    async def _forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("runner supervision failed; trying again")
            if not await self._stopper.wait(self.interval_s):
                return

    def start(self) -> None:
        self._stopper = Stopper()
        self._task = asyncio.create_task(self._forever(), name="limit-runner-supervisor")

    async def close(self) -> None:
        await self._stopper.stop(self._task)
        self._task = None
