"""The key ring backend of the memory store (and the base of the file store's).

The memory store keeps executions and archives in the clear (nothing of it is at rest),
so the only sealed records it holds are the token-signing keys, which the token service
seals before it stores them; a rotation seals those again through the store's own
transaction, as staged identity writes, so the file store persists them as it persists
any other.  Key changes and their ledger entries are written in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from limit_graph.core.identity import SigningKeyRecord
from limit_graph.core.models import ProvenanceEntry
from limit_graph.core.sealing import is_sealed, token_key_id
from limit_graph.storage.identity import IdentityStore
from limit_graph.storage.keyring import DataKeyRecord, ResealProgress
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.memory_identity import IdentityWrites
from limit_graph.storage.sealed import Resealer, signing_key_place

__all__ = ["KeyRingStaging", "MemoryKeyRingBackend", "reseal_signing_keys"]

SIGNING_CURSOR = "signing:"


class KeyRingStaging(Protocol):
    """What the key ring needs of the memory store's transaction."""

    @property
    def identity(self) -> IdentityWrites: ...

    async def append_entry(self, draft: EntryDraft) -> ProvenanceEntry: ...


class MemoryKeyRingBackend:
    """Data keys in a dictionary, written through the store's transactions."""

    def __init__(
        self,
        transaction: Callable[[], AbstractAsyncContextManager[KeyRingStaging]],
        identity: IdentityStore,
    ) -> None:
        self._transaction = transaction
        self._identity = identity
        self._records: dict[str, DataKeyRecord] = {}

    async def list_data_keys(self) -> list[DataKeyRecord]:
        return sorted(self._records.values(), key=lambda r: (r.created_at, r.kid))

    def load(self, records: Sequence[DataKeyRecord]) -> None:
        """Take records read from durable storage (the file store's start)."""
        self._records = {r.kid: r for r in records}

    async def put_data_keys(self, records: Sequence[DataKeyRecord], *, entry: EntryDraft) -> None:
        async with self._transaction() as tx:
            await self._persist(records)
            await tx.append_entry(entry)
        self._records.update((r.kid, r) for r in records)

    async def _persist(self, records: Sequence[DataKeyRecord]) -> None:
        """Make the keys durable before their entry commits; memory has nothing to do."""

    async def reseal(
        self, kid: str, reseal: Resealer, *, limit: int, cursor: str | None
    ) -> ResealProgress:
        if cursor is not None and not cursor.startswith(SIGNING_CURSOR):
            return ResealProgress(0, None)
        after = cursor[len(SIGNING_CURSOR) :] if cursor is not None else None
        return await reseal_signing_keys(
            self._transaction, self._identity, kid, reseal, limit=limit, after=after
        )


def _under(record: SigningKeyRecord, kid: str) -> bool:
    return is_sealed(record.private_key) and token_key_id(record.private_key) == kid


async def reseal_signing_keys(
    transaction: Callable[[], AbstractAsyncContextManager[KeyRingStaging]],
    identity: IdentityStore,
    kid: str,
    reseal: Resealer,
    *,
    limit: int,
    after: str | None,
) -> ResealProgress:
    """Seal again the signing keys under ``kid`` (in ``kid`` order, after ``after``):
    staged as identity writes of one transaction, read under its lock."""
    async with transaction() as tx:
        found = sorted(
            (k for k in await identity.list_signing_keys() if after is None or k.kid > after),
            key=lambda k: k.kid,
        )
        chosen = [k for k in found if _under(k, kid)][:limit]
        for record in chosen:
            sealed = reseal(record.private_key, signing_key_place(record.kid))
            tx.identity.signing_keys[record.kid] = record.model_copy(update={"private_key": sealed})
    more = len(chosen) == limit and any(_under(k, kid) for k in found if k.kid > chosen[-1].kid)
    return ResealProgress(len(chosen), SIGNING_CURSOR + chosen[-1].kid if more else None)
