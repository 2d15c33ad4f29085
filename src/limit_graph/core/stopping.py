"""Stopping a background loop between its rounds, not in the middle of one.

Cancelling a task that is inside a database transaction can leave the transaction
open: with SQLite through aiosqlite, a cancellation between ``BEGIN IMMEDIATE`` and
the commit can leave the connection holding the write lock, and every other writer
then waits out its busy timeout.  The platform's loops (lineage, checkpoints, the
quota sweep, the key-use flusher, the runner supervisor) therefore wait on a
:class:`Stopper` between rounds, and are stopped by it: the round under way finishes,
and only a round that overruns the grace is cancelled.

>>> async def demo() -> list[str]:
...     stopper, seen = Stopper(), []
...     async def loop() -> None:
...         while await stopper.wait(60):
...             seen.append("round")
...     task = asyncio.create_task(loop())
...     await asyncio.sleep(0)
...     await stopper.stop(task)
...     return seen
>>> asyncio.run(demo())
[]
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Stopper"]

GRACE_S = 10.0
"""How long a round under way may run on once its loop is told to stop."""


class Stopper:
    """The stop signal of one background loop (see the module's docstring)."""

    __slots__ = ("_stop",)

    def __init__(self) -> None:
        self._stop = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def wait(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        """Wait ``seconds``, or until ``wake`` is set (then cleared) or the loop is told to
        stop; whether the loop should run another round."""
        if self._stop.is_set():
            return False
        waits = [asyncio.ensure_future(self._stop.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if wake is not None:
            wake.clear()
        return not self._stop.is_set()

    async def stop(self, task: asyncio.Task[None] | None, grace_s: float = GRACE_S) -> None:
        """Tell the loop to stop and wait for ``task`` to end: the round under way
        finishes; one still running after ``grace_s`` is cancelled."""
        self._stop.set()
        if task is None:
            return
        done, _ = await asyncio.wait([task], timeout=grace_s)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
