"""Quota reservations nobody is left to settle: given back, or settled, after a while.

An execution's claims are taken by its first write and settled by its final one, so in
the normal course nothing is left over.  A process that dies can leave a reservation
behind in two places: between reserving for work that runs before it is recorded and
recording it (a reservation with no execution), and between recording an execution
final in a transaction of its own (a cancel) and reconciling it.  Every API process
looks for reservations older than ``[governance] stale_reservation_s`` every
``reservation_sweep_s``: one whose execution was never recorded is given back, one whose
execution is final is settled with what it used, and one of unfinished work stays for
its final write.  Several processes sweeping at once settle each reservation once (the
store settles exactly the rows it deletes).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from limit_graph.core.models import utcnow
from limit_graph.core.stopping import Stopper
from limit_graph.governance.quotas import QuotaService
from limit_graph.orchestration.recording import ExecutionRecorder
from limit_graph.storage.base import Storage

__all__ = ["ReservationSweeper", "SweepReport"]

log = logging.getLogger(__name__)

PAGE = 100


@dataclass(frozen=True)
class SweepReport:
    released: int
    """Reservations of executions never recorded, given back."""
    settled: int
    """Reservations of finished executions, settled with what they used."""


class ReservationSweeper:
    """Gives back or settles stale reservations; ``clock`` is the time they age by."""

    def __init__(
        self,
        storage: Storage,
        recorder: ExecutionRecorder,
        quotas: QuotaService,
        *,
        stale_s: float,
        every_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._storage = storage
        self._recorder = recorder
        self._quotas = quotas
        self._stale = timedelta(seconds=stale_s)
        self._every_s = every_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._stopper = Stopper()

    async def sweep(self) -> SweepReport:
        """Give back or settle every reservation that is stale now."""
        released = settled = 0
        cutoff = self._clock() - self._stale
        seen: set[uuid.UUID] = set()
        while True:
            stale = await self._storage.stale_reservations(cutoff, limit=PAGE)
            fresh = [e for e in stale if e not in seen]
            for execution_id in fresh:
                seen.add(execution_id)
                execution = await self._storage.get_execution(execution_id)
                if execution is None:
                    await self._quotas.release(execution_id)
                    released += 1
                elif execution.state.is_final:
                    await self._quotas.reconcile(execution_id, self._recorder.used(execution))
                    settled += 1
            if len(stale) < PAGE or not fresh:
                break
        if released or settled:
            log.info(
                "stale quota reservations: gave back %d of executions never recorded, "
                "settled %d of finished ones",
                released,
                settled,
            )
        return SweepReport(released, settled)

    def start(self) -> None:
        self._stopper = Stopper()
        self._task = asyncio.create_task(self._run(), name="limit-reservation-sweep")

    async def _run(self) -> None:
        while await self._stopper.wait(self._every_s):
            try:
                await self.sweep()
            except Exception:
                log.exception("the sweep for stale quota reservations failed; trying again")

    async def close(self) -> None:
        await self._stopper.stop(self._task)
        self._task = None
