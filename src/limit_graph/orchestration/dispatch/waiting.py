"""In one API process: who waits for an execution's end (:class:`Finals`), and the
wake-ups of the claims that wait for work (:class:`Wakeups`).

Both are told at once of what this process does; of what other processes do, through
the queue's signals (``storage/dispatch.py``), which the dispatcher hands on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from limit_graph.core.models import Execution
from limit_graph.orchestration.dispatch.results import FinalFn
from limit_graph.storage.base import Storage

__all__ = ["Finals", "Wakeups"]

log = logging.getLogger(__name__)


class Finals:
    """Futures of callers waiting for final records, and the executions whose end
    ``on_final`` is told of wherever it is recorded (:meth:`follow`)."""

    def __init__(self, storage: Storage, on_final: FinalFn | None) -> None:
        self.storage = storage
        self._on_final = on_final
        self._waiters: dict[uuid.UUID, list[asyncio.Future[Execution]]] = {}
        self._followed: set[uuid.UUID] = set()

    @property
    def waiting(self) -> bool:
        return bool(self._waiters)

    def wants(self, execution_id: uuid.UUID) -> bool:
        """Whether anything here waits for, or follows, this execution's end."""
        return execution_id in self._waiters or execution_id in self._followed

    def follow(self, execution_id: uuid.UUID) -> None:
        self._followed.add(execution_id)

    def waiter(self, execution_id: uuid.UUID) -> asyncio.Future[Execution]:
        """A future resolved with the execution's final record, if it ends from now on."""
        future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, []).append(future)
        return future

    def unwait(self, execution_id: uuid.UUID, future: asyncio.Future[Execution]) -> None:
        waiting = self._waiters.get(execution_id)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._waiters[execution_id]

    async def wait_final(
        self,
        execution_id: uuid.UUID,
        timeout_s: float,
        waiting: asyncio.Future[Execution] | None = None,
    ) -> Execution | None:
        """The final record, waiting up to ``timeout_s``; ``None`` if it is not final by
        then.  ``waiting``, a :meth:`waiter` taken before the execution was queued, needs
        no read first: no end can have come before it."""
        future = waiting or self.waiter(execution_id)
        try:
            if waiting is None:
                stored = await self.storage.get_execution(execution_id)
                if stored is not None and stored.state.is_final:
                    return stored
            try:
                return await asyncio.wait_for(future, timeout_s)
            except TimeoutError:
                return None
        finally:
            self.unwait(execution_id, future)

    async def finished(self, execution: Execution, *, here: bool = True) -> None:
        """After the final record is written (``here``, or by another process): tell
        ``on_final`` (e.g. the result cache), then whoever waits for it, so a caller
        that got the answer also finds it cached."""
        followed = execution.id in self._followed
        self._followed.discard(execution.id)
        if self._on_final is not None and (here or followed):
            try:
                await self._on_final(execution, here)
            except Exception:
                log.exception("after execution %s ended", execution.id)
        for future in self._waiters.pop(execution.id, []):
            if not future.done():
                future.set_result(execution)

    async def ended_elsewhere(self, execution_ids: list[uuid.UUID]) -> None:
        """Other processes wrote these executions' final records."""
        for execution in (await self.storage.get_executions(execution_ids)).values():
            if execution.state.is_final:
                await self.finished(execution, here=False)


class Wakeups:
    """One event per instance, set when work for it may be ready."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, instance: str) -> asyncio.Event:
        event = self._events.get(instance)
        if event is None:
            event = self._events[instance] = asyncio.Event()
        return event

    def wake(self, instance: str, delay_s: float = 0.0) -> None:
        """Wake the claims of ``instance`` now, or after ``delay_s``."""
        if delay_s > 0:
            asyncio.get_running_loop().call_later(delay_s, self.wake, instance)
        else:
            self.event(instance).set()

    def wake_all(self) -> None:
        for event in self._events.values():
            event.set()

    def signalled(self, values: list[str], now: float) -> None:
        """A signal's ``instance@ready_at`` values: wake each when its work is ready."""
        for value in values:
            instance, _, ready = value.rpartition("@")
            try:
                delay = max(0.0, float(ready) - now)
            except ValueError:
                instance, delay = value, 0.0
            self.wake(instance, delay)
