"""Session event streams, read from the ledger.

Every state change of a session or an execution is a ledger entry, so the ledger is
the event log: an event's id is the entry's index, a client resumes after the last
id it saw, and nothing is lost across restarts.  Writers call :meth:`notify` with the
session they wrote after each commit, so that that session's streams in this process
wake at once and re-read; no other stream does (a stream re-reading on every commit of
any session cost more than the writes it followed).  Streams also re-read on a short
interval, which covers writes made by other processes.

Open streams are counted per holder (the API passes one per principal): a holder at
its limit is refused another (:meth:`SessionEvents.open_stream`, 429 ``open-streams``)
until one of its streams ends.  The count is per process, like the streams themselves.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from limit_graph.core.errors import RateLimited
from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.base import Storage, StorageTransaction

__all__ = ["OPEN_STREAMS_POLICY", "SessionEvents", "StreamSlot", "event_of"]

POLL_INTERVAL_S = 1.0
OPEN_STREAMS_POLICY = "open-streams"
"""The id a refusal names when a holder already has its limit of streams open."""


def event_of(entry: ProvenanceEntry) -> dict[str, Any]:
    """The public form of a ledger entry as a state-change event (no inputs or results)."""
    payload = entry.written()
    event: dict[str, Any] = {
        "index": entry.index,
        "timestamp": entry.timestamp.isoformat().replace("+00:00", "Z"),
        "action": entry.action,
        "actor": entry.actor,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
    }
    for key in ("state", "agent", "backend", "instance"):
        if key in payload:
            event[key] = payload[key]
    if entry.action == "execution.denied":
        event["policy_ids"] = payload.get("policy_ids", [])
    return event


class StreamSlot:
    """One open stream of a holder; :meth:`release` gives the slot back, once however
    often it is called (a stream may end by its generator closing or by its response
    finishing, whichever comes first)."""

    def __init__(self, counts: Counter[str], holder: str) -> None:
        self._counts = counts
        self.holder = holder
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._counts[self.holder] -= 1
        if self._counts[self.holder] <= 0:
            del self._counts[self.holder]


class SessionEvents:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._changed = asyncio.Event()
        self._changed_session: weakref.WeakValueDictionary[uuid.UUID, asyncio.Event] = (
            weakref.WeakValueDictionary()
        )
        """The event each session's streams wait on, while one waits (weakly held)."""
        self._draining = asyncio.Event()
        self._open: Counter[str] = Counter()

    def open_stream(self, holder: str, *, limit: int, retry_after_s: float) -> StreamSlot:
        """A slot for one more stream of ``holder``, or :class:`RateLimited` when it
        already holds ``limit``; the caller releases the slot when the stream ends."""
        if self._open[holder] >= limit:
            raise RateLimited(
                f"at most {limit} event streams may be open at once per principal; "
                "close one (or let one end) before opening another",
                [OPEN_STREAMS_POLICY],
                retry_after_s,
            )
        self._open[holder] += 1
        return StreamSlot(self._open, holder)

    def open_streams(self, holder: str) -> int:
        """How many streams ``holder`` holds open now."""
        return self._open.get(holder, 0)

    def drain(self) -> None:
        """End every stream (the server is shutting down); clients resume elsewhere."""
        self._draining.set()

    @asynccontextmanager
    async def write(self, session_id: uuid.UUID) -> AsyncIterator[StorageTransaction]:
        """A storage transaction on ``session_id`` whose commit wakes its streams."""
        async with self.storage.transaction() as tx:
            yield tx
        self.notify(session_id)

    def notify(self, session_id: uuid.UUID | None = None) -> None:
        """Wake the streams of ``session_id`` (``None``: every stream); they re-read the
        ledger."""
        if session_id is None:
            self._changed.set()
            self._changed = asyncio.Event()
            return
        waiter = self._changed_session.pop(session_id, None)
        if waiter is not None:
            waiter.set()

    def _waiter(self, session_id: uuid.UUID) -> asyncio.Event:
        waiter = self._changed_session.get(session_id)
        if waiter is None:
            waiter = self._changed_session[session_id] = asyncio.Event()
        return waiter

    async def stream(
        self,
        session_id: uuid.UUID,
        after: int = -1,
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
    ) -> AsyncIterator[ProvenanceEntry]:
        """The session's entries after index ``after``, then new ones as they land, until
        :meth:`drain` (the server shutting down: the stream then ends cleanly)."""
        while not self._draining.is_set():
            waiters = (self._changed, self._waiter(session_id))
            entries = await self.storage.list_entries(session_id=session_id, after=after)
            for entry in entries:
                yield entry
                after = entry.index
            if not entries:
                await self._wait(waiters, poll_interval_s)

    async def _wait(self, changed: tuple[asyncio.Event, ...], timeout_s: float) -> None:
        """Until a write here, :meth:`drain`, or ``timeout_s`` (writes of other processes)."""
        waits = [
            *(asyncio.ensure_future(event.wait()) for event in changed),
            asyncio.ensure_future(self._draining.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
