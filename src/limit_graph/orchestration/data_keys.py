"""Data-key rotation in the background, while the platform serves
(``POST /data-keys/rotate``, ``limit keys rotate-data``).

A rotation first re-wraps, under the current key-encryption key, every data key an
earlier KEK wrapped (so rotating the KEK is: configure the new one, keep the old in
``LIMIT_DATA_KEK_PREVIOUS``, rotate).  Then it makes a new active data key, and every
other key not yet retired is ``retiring``; from then on this process seals under the
new key, and other processes within ``key_refresh_s``.  The job then goes through:

``resealing``
    one pass over the records under each retiring key, a small batch per transaction
    (``rotation_batch_size``), each batch a few awaits among the requests being served;
``settling``
    a wait of ``key_refresh_s``, after which no process seals under a retiring key;
``sweeping``
    passes from the start again, until one finds nothing left (a process slower than
    the refresh may have sealed a record late): then the retiring keys are ``retired``;
``done`` (or ``failed``, with the reason, every key left as it was).

Its progress is saved after every batch (the store's bookkeeping, ``data-keys``), so a
platform restarted mid-rotation carries on where it was.  A retired key is kept: what a
process sealed under it later still opens, and the next rotation reseals it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from limit_graph.core.encryption_settings import EncryptionSettings
from limit_graph.core.errors import Conflict
from limit_graph.core.models import utcnow
from limit_graph.storage.base import Storage
from limit_graph.storage.keyring import DataKeyState

__all__ = ["NAMESPACE", "DataKeyRotation", "RotationPhase", "RotationProgress"]

NAMESPACE = "data-keys"
"""The bookkeeping namespace of the rotation's progress (key ``rotation``)."""
_PROGRESS = "rotation"

log = logging.getLogger(__name__)


class RotationPhase(StrEnum):
    RESEALING = "resealing"
    SETTLING = "settling"
    SWEEPING = "sweeping"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (RotationPhase.DONE, RotationPhase.FAILED)


class RotationProgress(BaseModel):
    """Where the latest rotation is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: RotationPhase
    actor: str
    active: str = Field(description="The data key it made, which seals from now on.")
    retiring: list[str] = Field(description="The keys whose records it seals again.")
    rewrapped: list[str] = Field(
        default_factory=list, description="Data keys re-wrapped under the current KEK."
    )
    resealed: int = Field(default=0, description="Records sealed again so far, all passes.")
    pending: list[str] = Field(
        default_factory=list, description="Retiring keys the current pass has yet to finish."
    )
    cursor: str | None = Field(default=None, description="Where the current pass resumes.")
    pass_resealed: int = Field(default=0, description="Records the current pass resealed.")
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


class DataKeyRotation:
    """Runs one rotation at a time in this process, and reports on the key ring.

    ``sleep`` waits out ``key_refresh_s`` (tests give one that returns at once).
    """

    def __init__(
        self,
        storage: Storage,
        settings: EncryptionSettings,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self._task: asyncio.Task[RotationProgress] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Carry on a rotation a restart interrupted."""
        progress = await self.progress()
        if progress is not None and not progress.phase.is_final and self.storage.keyring.available:
            self._spawn(progress)

    async def progress(self) -> RotationProgress | None:
        found = await self.storage.get_value(NAMESPACE, _PROGRESS)
        return RotationProgress.model_validate(found) if found is not None else None

    async def rotate(self, actor: str) -> RotationProgress:
        """Start a rotation (re-wrap, new active key, reseal in the background)."""
        ring = self.storage.keyring
        if not ring.available:
            raise Conflict(
                "no key-encryption key is configured (LIMIT_DATA_KEK or LIMIT_DATA_KEK_FILE): "
                "there are no data keys to rotate"
            )
        if self.running:
            raise Conflict("a data-key rotation is running; GET /data-keys shows its progress")
        rewrapped = await ring.rewrap(actor)
        made = await ring.rotate(actor)
        retiring = [
            r.kid
            for r in ring.records()
            if r.kid != made.kid and r.state is not DataKeyState.RETIRED
        ]
        progress = RotationProgress(
            phase=RotationPhase.RESEALING,
            actor=actor,
            active=made.kid,
            retiring=retiring,
            rewrapped=rewrapped,
            pending=retiring,
            started_at=self._clock(),
        )
        await self._save(progress)
        self._spawn(progress)
        return progress

    async def status(self) -> dict[str, Any]:
        """The key ring (no material) and the latest rotation's progress."""
        ring = self.storage.keyring
        await ring.refresh()
        progress = await self.progress()
        return {
            "kek_id": ring.keks.current.kid if ring.keks is not None else None,
            "active": ring.active_id(),
            "keys": [record.public() for record in ring.records()],
            "rotation": progress.model_dump(mode="json") if progress is not None else None,
        }

    async def wait(self) -> RotationProgress | None:
        """The running rotation's end (or the latest one's progress if none runs)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                return await asyncio.shield(self._task)
        return await self.progress()

    async def close(self) -> None:
        """Stop the job between two batches (a batch is never cut short: its records are
        written whole); its progress stays saved, and a restart resumes it."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _spawn(self, progress: RotationProgress) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(progress), name="limit-data-key-rotation")

    async def _save(self, progress: RotationProgress) -> None:
        await self.storage.put_value(NAMESPACE, _PROGRESS, progress.model_dump(mode="json"))

    async def _run(self, progress: RotationProgress) -> RotationProgress:
        try:
            while not progress.phase.is_final and not self._stopping.is_set():
                progress = await self._step(progress)
                await self._save(progress)
        except Exception as exc:  # left as it was, said why: a retry is a new rotation
            log.exception("data-key rotation failed")
            progress = progress.model_copy(
                update={
                    "phase": RotationPhase.FAILED,
                    "error": f"{type(exc).__name__}: {getattr(exc, 'detail', exc)}",
                    "finished_at": self._clock(),
                }
            )
            await self._save(progress)
        return progress

    async def _step(self, progress: RotationProgress) -> RotationProgress:
        """One batch of a pass, or the move to the next phase."""
        if progress.phase is RotationPhase.SETTLING:
            settle = asyncio.ensure_future(self._sleep(self.settings.key_refresh_s))
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({settle, stop}, return_when=asyncio.FIRST_COMPLETED)
            for waiting in (settle, stop):
                waiting.cancel()
            if self._stopping.is_set():
                return progress
            return self._new_pass(progress, RotationPhase.SWEEPING)
        if progress.pending:
            kid = progress.pending[0]
            batch = await self.storage.keyring.reseal(
                kid, limit=self.settings.rotation_batch_size, cursor=progress.cursor
            )
            return progress.model_copy(
                update={
                    "resealed": progress.resealed + batch.resealed,
                    "pass_resealed": progress.pass_resealed + batch.resealed,
                    "cursor": batch.cursor,
                    "pending": progress.pending if batch.cursor else progress.pending[1:],
                }
            )
        if progress.phase is RotationPhase.RESEALING:
            return progress.model_copy(update={"phase": RotationPhase.SETTLING})
        if progress.pass_resealed:  # a late writer sealed under a retiring key: go again
            return self._new_pass(progress, RotationPhase.SWEEPING)
        for kid in progress.retiring:
            await self.storage.keyring.retire(kid, progress.actor)
        return progress.model_copy(
            update={"phase": RotationPhase.DONE, "finished_at": self._clock()}
        )

    @staticmethod
    def _new_pass(progress: RotationProgress, phase: RotationPhase) -> RotationProgress:
        return progress.model_copy(
            update={
                "phase": phase,
                "pending": list(progress.retiring),
                "cursor": None,
                "pass_resealed": 0,
            }
        )
