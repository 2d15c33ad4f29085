"""The key ring: data keys, wrapped by the key-encryption key, and the one that seals.

Each store keeps its data keys (:class:`DataKeyRecord`, the key itself only wrapped) in
a :class:`KeyRingBackend` of its own kind (memory, files, a database table) and serves
them through a :class:`KeyRing`, which unwraps them with the configured KEKs and knows
which one is **active**: the newest in state ``active``, the only one new fields are
sealed under.  A rotation makes a new active key and marks the others ``retiring``;
their records are sealed again under the new one a batch at a time
(:meth:`KeyRing.reseal`), and a key is ``retired`` once nothing is left under it.  A
retired key stays in the ring, so a record a slow process sealed late still opens.

Several processes share one ring through the store: each re-reads it at most every
``refresh_s`` seconds before sealing, so a rotation is seen everywhere within that
time.  Every change of a key is a ledger entry (``data_key.created``, ``.rotated``,
``.retired``, ``.rewrapped``) naming the key, never its material.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict

from limit_graph.core.errors import SealError
from limit_graph.core.models import utcnow
from limit_graph.core.sealing import (
    Aad,
    KeyEncryptionKeys,
    SecretKey,
    new_data_key,
    open_token,
    token_key_id,
)
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.sealed import Resealer

__all__ = [
    "DataKeyRecord",
    "DataKeyState",
    "KeyRing",
    "KeyRingBackend",
    "ResealProgress",
    "no_kek",
]


class DataKeyState(StrEnum):
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


class DataKeyRecord(BaseModel):
    """A data key as stored: its id, state and material wrapped by the KEK ``kek_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kid: str
    state: DataKeyState
    kek_id: str
    wrapped: str
    created_at: datetime
    retiring_at: datetime | None = None
    retired_at: datetime | None = None

    def public(self) -> dict[str, object]:
        """What may be shown: everything but the wrapped material."""
        return self.model_dump(mode="json", exclude={"wrapped"})


class ResealProgress(NamedTuple):
    """One batch of a rotation: how many records were sealed again, and where the next
    batch starts (``None``: nothing further under the key, as far as this pass saw)."""

    resealed: int
    cursor: str | None


class KeyRingBackend(Protocol):
    """Where a store keeps its data keys, and how it seals its records again."""

    async def list_data_keys(self) -> list[DataKeyRecord]:
        """Every data key, oldest first."""

    async def put_data_keys(self, records: Sequence[DataKeyRecord], *, entry: EntryDraft) -> None:
        """Insert or replace these keys, with ``entry`` in the ledger, in one transaction."""

    async def reseal(
        self, kid: str, reseal: Resealer, *, limit: int, cursor: str | None
    ) -> ResealProgress:
        """Seal again, with ``reseal``, up to ``limit`` records holding a field under
        ``kid``, starting after ``cursor``.  Each record is read and rewritten under its
        lock, so a write racing with the batch is never lost."""


def no_kek() -> SealError:
    return SealError(
        "no key-encryption key is configured (LIMIT_DATA_KEK or LIMIT_DATA_KEK_FILE): "
        "sensitive records cannot be sealed or opened"
    )


class KeyRing:
    """The data keys of one store, unwrapped with ``keks`` (``None``: none configured,
    so nothing can be sealed or opened, and any attempt says so)."""

    def __init__(
        self,
        backend: KeyRingBackend,
        keks: KeyEncryptionKeys | None,
        *,
        refresh_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.keks = keks
        self.refresh_s = refresh_s
        self._clock = clock
        self._monotonic = monotonic
        self._records: dict[str, DataKeyRecord] = {}
        self._keys: dict[str, SecretKey] = {}
        self._unusable: dict[str, SealError] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def available(self) -> bool:
        """Whether a KEK is configured, so that fields can be sealed and opened."""
        return self.keks is not None

    def records(self) -> list[DataKeyRecord]:
        """The keys as last read, oldest first."""
        return sorted(self._records.values(), key=lambda r: (r.created_at, r.kid))

    def adopt(self, records: Iterable[DataKeyRecord]) -> None:
        """Take these records as the ring (each unwrapped now, once)."""
        fresh = {r.kid: r for r in records}
        for kid, record in fresh.items():
            known = self._records.get(kid)
            if kid in self._keys and known is not None and known.wrapped == record.wrapped:
                continue
            if self.keks is None:
                continue
            try:
                self._keys[kid] = self.keks.unwrap(kid, record.wrapped)
                self._unusable.pop(kid, None)
            except SealError as exc:
                self._unusable[kid] = exc
        self._records = fresh

    async def start(self) -> None:
        """Read the ring; with a KEK and no active key, make the first one."""
        await self.refresh()
        if self.keks is not None and self._active_record() is None:
            await self._make("platform", "data_key.created", [])

    async def refresh(self) -> None:
        """Read the ring again from the store."""
        async with self._lock:
            self.adopt(await self.backend.list_data_keys())
            self._loaded_at = self._monotonic()

    def _active_record(self) -> DataKeyRecord | None:
        active = [r for r in self._records.values() if r.state is DataKeyState.ACTIVE]
        return max(active, key=lambda r: (r.created_at, r.kid), default=None)

    def active_id(self) -> str | None:
        record = self._active_record()
        return record.kid if record is not None else None

    async def active(self) -> SecretKey:
        """The key to seal with now (the ring re-read when older than ``refresh_s``)."""
        if self.keks is None:
            raise no_kek()
        stale = self._loaded_at is None or self._monotonic() - self._loaded_at >= self.refresh_s
        if stale:
            await self.refresh()
        record = self._active_record()
        if record is None:
            raise SealError("the key ring has no active data key: start the store first")
        key = self.key(record.kid)
        if key is None:
            raise SealError(f"active data key {record.kid} is not held by this process")
        return key

    def key(self, kid: str) -> SecretKey | None:
        """Data key ``kid`` if this process holds it (no store read)."""
        if self.keks is None:
            raise no_kek()
        if kid in self._unusable:
            raise self._unusable[kid]
        return self._keys.get(kid)

    async def load(self, kids: Iterable[str]) -> None:
        """Make sure every key of ``kids`` the store has is held (one re-read if not)."""
        if self.keks is None:
            raise no_kek()
        if any(k not in self._keys and k not in self._unusable for k in kids):
            await self.refresh()

    async def seal_bytes(self, plaintext: bytes, place: Aad) -> str:
        """``plaintext`` sealed for ``place`` under the active key."""
        return (await self.active()).seal(plaintext, place)

    async def open_bytes(self, token: str, place: Aad) -> bytes:
        """What :meth:`seal_bytes` (under any key of the ring) sealed for ``place``."""
        await self.load([token_key_id(token)])
        return open_token(token, place, self.key)

    def resealer(self, target: SecretKey) -> Resealer:
        """Opens a field with the key that sealed it, seals its bytes under ``target``."""

        def reseal(token: str, place: Aad) -> str:
            return target.seal(open_token(token, place, self.key), place)

        return reseal

    async def reseal(self, kid: str, *, limit: int, cursor: str | None) -> ResealProgress:
        """One batch of records under ``kid`` sealed again under the active key."""
        target = await self.active()
        if target.kid == kid:
            raise SealError(f"data key {kid} is the active one: rotate before resealing")
        await self.load([kid])
        return await self.backend.reseal(kid, self.resealer(target), limit=limit, cursor=cursor)

    async def rotate(self, actor: str) -> DataKeyRecord:
        """A new active key; every key active until now becomes ``retiring``."""
        if self.keks is None:
            raise no_kek()
        await self.refresh()
        active = [r for r in self._records.values() if r.state is DataKeyState.ACTIVE]
        return await self._make(actor, "data_key.rotated", active)

    async def _make(
        self, actor: str, action: str, retiring: Sequence[DataKeyRecord]
    ) -> DataKeyRecord:
        assert self.keks is not None
        key = new_data_key()
        now = self._clock()
        record = DataKeyRecord(
            kid=key.kid,
            state=DataKeyState.ACTIVE,
            kek_id=self.keks.current.kid,
            wrapped=self.keks.wrap(key),
            created_at=now,
        )
        changed = [
            record,
            *(
                r.model_copy(update={"state": DataKeyState.RETIRING, "retiring_at": now})
                for r in retiring
            ),
        ]
        payload = {"kid": key.kid, "kek_id": record.kek_id, "retiring": [r.kid for r in retiring]}
        await self.backend.put_data_keys(changed, entry=_entry(actor, action, key.kid, payload))
        self._keys[key.kid] = key
        await self.refresh()
        return record

    async def retire(self, kid: str, actor: str) -> DataKeyRecord:
        """Mark ``kid`` retired: nothing is sealed under it any more."""
        await self.refresh()
        record = self._records.get(kid)
        if record is None:
            raise SealError(f"there is no data key {kid}")
        retired = record.model_copy(
            update={"state": DataKeyState.RETIRED, "retired_at": self._clock()}
        )
        entry = _entry(actor, "data_key.retired", kid, {"kid": kid})
        await self.backend.put_data_keys([retired], entry=entry)
        await self.refresh()
        return retired

    async def rewrap(self, actor: str) -> list[str]:
        """Wrap every data key wrapped by an earlier KEK under the current one; the ids
        of those re-wrapped."""
        if self.keks is None:
            raise no_kek()
        await self.refresh()
        current = self.keks.current
        stale = [r for r in self._records.values() if r.kek_id != current.kid]
        if not stale:
            return []
        changed = []
        for record in stale:
            key = self.key(record.kid)
            if key is None:
                raise SealError(f"data key {record.kid} cannot be unwrapped to re-wrap it")
            changed.append(
                record.model_copy(update={"kek_id": current.kid, "wrapped": self.keks.wrap(key)})
            )
        kids = sorted(r.kid for r in changed)
        payload = {"kek_id": current.kid, "rewrapped": kids}
        await self.backend.put_data_keys(
            changed, entry=_entry(actor, "data_key.rewrapped", current.kid, payload)
        )
        await self.refresh()
        return kids


def _entry(actor: str, action: str, resource_id: str, payload: Mapping[str, Any]) -> EntryDraft:
    return EntryDraft(
        actor=actor,
        action=action,
        resource_type="data_key",
        resource_id=resource_id,
        session_id=None,
        payload=dict(payload),
    )
