"""Noticing identity changes made by any process sharing the store.

Every identity write (a key revoked, a principal deleted, a grant, a policy) moves the
store's identity epoch on in its own transaction.  Each API process polls the epoch
and, when it moved, tells its listeners to drop what they cached; a change made in
this process is announced at once (:meth:`IdentityWatch.changed`), without waiting for
the next poll.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from limit_graph.storage.identity import IdentityStore

__all__ = ["POLL_S", "IdentityWatch"]

log = logging.getLogger(__name__)

POLL_S = 0.25
"""How often the epoch is read: a revoked key is refused everywhere within this (plus
one request's time), well inside the one second promised."""

Listener = Callable[[], Awaitable[None] | None]


class IdentityWatch:
    """Polls the identity epoch and calls every listener when it moves."""

    def __init__(self, identity: IdentityStore, *, poll_s: float = POLL_S) -> None:
        self.identity = identity
        self.poll_s = poll_s
        self.epoch: int | None = None
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        self.epoch = await self.identity.identity_epoch()
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.check()
            except Exception:  # a store that is down now answers the next poll
                log.warning("could not read the identity epoch", exc_info=True)

    async def check(self) -> bool:
        """Read the epoch; when it moved, call the listeners.  Whether it moved."""
        async with self._lock:
            epoch = await self.identity.identity_epoch()
            if epoch == self.epoch:
                return False
            self.epoch = epoch
            for listener in self._listeners:
                outcome = listener()
                if inspect.isawaitable(outcome):
                    await outcome
            return True

    async def changed(self) -> None:
        """This process changed identity records: listeners drop their caches now."""
        await self.check()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
