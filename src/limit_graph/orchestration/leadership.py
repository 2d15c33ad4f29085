"""Run a service in exactly one of the processes sharing a store, by holding its lease.

Several API processes may serve one platform (one SQLite file, one Postgres database).
The Prefect mirror and the runner supervisor must then run in one of them at a time:
two mirrors would race each other's cursor, two supervisors would start twice the
runners.  A :class:`Leadership` takes the service's lease in the store
(:class:`~limit_graph.storage.leases.LeaseStore`) and renews it every ``ttl_s / 3``;
while it holds the lease the service runs here (``on_gained`` started it), and when it
loses the lease it stops it (``on_lost``).  It loses the lease when a renewal is
refused (another process took it: this one was too late) and when the store has not
renewed it for ``ttl_s``: unable to tell, it must assume another process has it by
then.  A process that dies without a word (``kill -9``) stops renewing, so another
takes over once the lease runs out: within ``ttl_s`` plus one round (``ttl_s / 3``).

The guarded services are idempotent (the mirror sends what it shows under ids made
from it, the supervisor counts live runners), so the moment two processes may both
run one -- clocks apart, a holder stalled past its lease -- costs repeated requests,
not wrong results.

>>> from limit_graph.storage.memory_leases import MemoryLeaseStore
>>> async def demo() -> list[str]:
...     seen: list[str] = []
...     async def gained() -> None:
...         seen.append("gained")
...     async def lost() -> None:
...         seen.append("lost")
...     lead = Leadership(MemoryLeaseStore(), "mirror", "p1", on_gained=gained, on_lost=lost)
...     await lead.start()
...     seen.append(f"leader: {lead.is_leader}")
...     await lead.close()
...     return seen
>>> asyncio.run(demo())
['gained', 'leader: True', 'lost']
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from limit_graph.core.stopping import Stopper
from limit_graph.storage.leases import LeaseStore

__all__ = ["DEFAULT_TTL_S", "Leadership", "Service", "process_holder"]

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 5.0

Service = Callable[[], Awaitable[None] | None]
"""Starts or stops a guarded service (a coroutine function, or a plain one)."""


def process_holder() -> str:
    """This process's name as a lease holder: host, pid and a random part (a pid is
    reused; a restarted process is another holder)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    """Holds the lease ``name`` for ``holder`` and runs a service while it does; see the
    module's docstring.  ``on_resign`` stops the service when :meth:`close` lets go of
    a lease it still holds (``on_lost`` when not given): the last thing the service does
    here, under the lease."""

    def __init__(
        self,
        leases: LeaseStore,
        name: str,
        holder: str,
        *,
        on_gained: Service,
        on_lost: Service,
        on_resign: Service | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.leases = leases
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self.interval_s = ttl_s / 3
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._on_resign = on_resign or on_lost
        self._clock = clock
        self._held_until: float | None = None
        self._seen: str | None = None
        self._failing_since: float | None = None
        self._stopper = Stopper()
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        """Whether the service runs here: this process holds the lease."""
        return self._held_until is not None

    @property
    def current_holder(self) -> str | None:
        """Who held the lease at the last round (this process, another, or nobody)."""
        return self.holder if self.is_leader else self._seen

    async def tick(self) -> bool:
        """One round: take or renew the lease, and start or stop the service to match;
        whether this process leads afterwards."""
        now = self._clock()
        asking = asyncio.ensure_future(self._ask(now))
        if self._held_until is not None:
            # Not cancelled (a transaction cut short can keep SQLite's write lock), but
            # not waited on past the lease either: by then another process may have it.
            done, _ = await asyncio.wait({asking}, timeout=max(0.0, self._held_until - now))
            if not done:
                await self._lose("the lease store did not answer before the lease ran out")
        try:
            taken = await asking
        except Exception as exc:
            self._unreachable(exc)
            if self._held_until is not None and self._clock() >= self._held_until:
                await self._lose(f"the lease store is unreachable ({type(exc).__name__})")
            return self.is_leader
        self._reachable()
        if not taken:
            if self._held_until is not None:
                await self._lose(f"{self._seen or 'another process'} holds it now")
            return False
        expires = now + self.ttl_s
        if self._clock() >= expires:  # answered too late to count
            if self._held_until is not None:
                await self._lose("the lease store answered after the lease ran out")
            return False
        gained = self._held_until is None
        self._held_until = expires
        if gained:
            await self._gain()
        return self.is_leader

    async def _ask(self, now: float) -> bool:
        taken = await self.leases.acquire(self.name, self.holder, self.ttl_s, now)
        if not taken:
            self._seen = await self.leases.holder(self.name, now)
        return taken

    async def _gain(self) -> None:
        log.info("took the %s lease as %s; starting it here", self.name, self.holder)
        try:
            await _run(self._on_gained)
        except Exception:
            log.exception("could not start %s; giving its lease back", self.name)
            self._held_until = None
            await _run(self._on_lost)
            await self._release()

    async def _lose(self, why: str) -> None:
        if self._held_until is None:
            return
        self._held_until = None
        log.warning("lost the %s lease (%s); stopping it here", self.name, why)
        try:
            await _run(self._on_lost)
        except Exception:
            log.exception("stopping %s after its lease was lost failed", self.name)

    def _unreachable(self, exc: Exception) -> None:
        if self._failing_since is None:
            self._failing_since = self._clock()
            log.warning(
                "could not renew the %s lease (%s: %s); retrying every %.1f s",
                self.name,
                type(exc).__name__,
                exc,
                self.interval_s,
            )

    def _reachable(self) -> None:
        if self._failing_since is not None:
            log.info(
                "the %s lease's store answers again after %.1f s",
                self.name,
                self._clock() - self._failing_since,
            )
            self._failing_since = None

    async def _release(self) -> None:
        try:
            await self.leases.release(self.name, self.holder)
        except Exception as exc:  # it runs out by itself
            log.warning("could not give back the %s lease (%s)", self.name, exc)

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Renew every ``ttl_s / 3`` until :meth:`close`."""
        while await self._stopper.wait(self.interval_s):
            try:
                await self.tick()
            except Exception:  # a bug: the next round tries again
                log.exception("the %s lease's round failed", self.name)

    async def start(self) -> None:
        """One round now (a lone process leads at once), then the loop."""
        self._stopper = Stopper()
        await self.tick()
        self._task = asyncio.create_task(self.run(), name=f"limit-lease-{self.name}")

    async def close(self) -> None:
        """Stop renewing; if the lease is held, renew it once more, stop the service
        (``on_resign``) and give the lease back, so another process takes over at once."""
        await self._stopper.stop(self._task)
        self._task = None
        if self._held_until is None or not await self.tick():
            return
        self._held_until = None
        log.info("giving back the %s lease", self.name)
        try:
            await _run(self._on_resign)
        finally:
            await self._release()


async def _run(service: Service) -> None:
    started = service()
    if started is not None:
        await started
