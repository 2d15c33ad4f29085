"""The quota store of the memory and file backends.

Its writes are staged on the backend's own transaction (:class:`QuotaWrites`, beside the
records and ledger entries the transaction stages) and applied at commit, all or none;
the file backend persists them through its journal.  The transaction holds the
backend's write lock, so a claim's check and its update are one step; a reservation
stages its claims only once all of them fit.  An execution's write applies its quotas
on its own transaction (:class:`StagedQuotaWrite`).
Counters and reservations are kept in units (:func:`~limit_graph.storage.quotas.to_units`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from limit_graph.core.models import ProvenanceEntry, utcnow
from limit_graph.core.quotas import QuotaLimits, QuotaResource
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.quotas import (
    CounterKey,
    PreparedQuotaWrite,
    QuotaClaim,
    QuotaCounter,
    QuotaRefusal,
    QuotaReservation,
    ScopeLimits,
    UnitClaim,
    checked_scope,
    prepare_claims,
    prepare_used,
)
from limit_graph.storage.schema import to_micros

__all__ = [
    "Counter",
    "Held",
    "MemoryQuotaStore",
    "QuotaStaging",
    "QuotaState",
    "QuotaWrites",
    "StagedQuotaWrite",
]


@dataclass(frozen=True)
class Counter:
    """A counter's ``used`` and ``reserved``, in units."""

    used: int = 0
    reserved: int = 0


@dataclass(frozen=True)
class Held:
    """One reservation of an execution, in units."""

    scope: str
    resource: QuotaResource
    window: str
    amount: int
    taken_us: int = 0
    """When it was taken, in microseconds since the epoch."""

    @property
    def key(self) -> CounterKey:
        return (self.scope, self.resource, self.window)

    def reservation(self, execution_id: uuid.UUID) -> QuotaReservation:
        return QuotaReservation.from_units(execution_id, self.key, self.amount)


@dataclass
class QuotaWrites:
    """What one transaction changes in the quota records; applied at commit.

    Each value is the record's whole state after the change: ``limits`` maps a scope to
    its limits (``None``: removed), ``reservations`` an execution to what it holds (an
    empty list once settled), so that the file backend writes each as one file.
    """

    limits: dict[str, QuotaLimits | None] = field(default_factory=dict)
    counters: dict[CounterKey, Counter] = field(default_factory=dict)
    reservations: dict[uuid.UUID, list[Held]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.limits or self.counters or self.reservations)


@dataclass
class QuotaState:
    """The committed quota records."""

    limits: dict[str, QuotaLimits] = field(default_factory=dict)
    counters: dict[CounterKey, Counter] = field(default_factory=dict)
    reservations: dict[uuid.UUID, list[Held]] = field(default_factory=dict)

    def apply(self, writes: QuotaWrites) -> None:
        for scope, limits in writes.limits.items():
            if limits is None:
                self.limits.pop(scope, None)
            else:
                self.limits[scope] = limits
        self.counters.update(writes.counters)
        for execution_id, held in writes.reservations.items():
            if held:
                self.reservations[execution_id] = list(held)
            else:
                self.reservations.pop(execution_id, None)


class QuotaStaging(Protocol):
    """The part of the memory backend's transaction the quota store writes through."""

    @property
    def quotas(self) -> QuotaWrites: ...

    async def append_entry(self, draft: EntryDraft) -> ProvenanceEntry: ...


class MemoryQuotaStore:
    """:class:`~limit_graph.storage.quotas.QuotaStore` over a :class:`QuotaState`,
    writing through the owning backend's transactions (one writer at a time)."""

    def __init__(
        self,
        state: QuotaState,
        transaction: Callable[[], AbstractAsyncContextManager[QuotaStaging]],
    ) -> None:
        self._state = state
        self._transaction = transaction

    async def set_limits(
        self, scope: str, limits: QuotaLimits, *, entry: EntryDraft
    ) -> QuotaLimits:
        checked_scope(scope)
        async with self._transaction() as tx:
            tx.quotas.limits[scope] = limits if limits.limits() else None
            await tx.append_entry(entry)
        return limits

    async def limits(self, scopes: Sequence[str]) -> list[ScopeLimits]:
        found = {s: self._state.limits[s] for s in scopes if s in self._state.limits}
        return [ScopeLimits(s, found[s]) for s in sorted(found)]

    async def reserve(
        self, execution_id: uuid.UUID, claims: Sequence[QuotaClaim]
    ) -> QuotaRefusal | None:
        prepared = prepare_claims(claims)
        if not prepared:
            return None
        async with self._transaction() as tx:
            return self.claim_in(tx.quotas, execution_id, prepared)

    async def reconcile(
        self, execution_id: uuid.UUID, used: Mapping[QuotaResource, float]
    ) -> list[QuotaReservation]:
        spent = prepare_used(used)
        async with self._transaction() as tx:
            held = self.settle_in(tx.quotas, execution_id, spent)
        return [h.reservation(execution_id) for h in held]

    def staged(self, tx: QuotaStaging, write: PreparedQuotaWrite) -> StagedQuotaWrite:
        """``write`` applied on ``tx``, for the backend's execution write."""
        return StagedQuotaWrite(self, tx.quotas, write)

    def claim_in(
        self, writes: QuotaWrites, execution_id: uuid.UUID, claims: Sequence[UnitClaim]
    ) -> QuotaRefusal | None:
        """Stage every claim for ``execution_id`` on ``writes``, or none (the refusal);
        nothing when it holds reservations already."""
        if not claims or self._held(writes, execution_id):
            return None
        taken: dict[CounterKey, Counter] = {}
        for claim in claims:
            counter = taken.get(claim.key) or self._counter(writes, claim.key)
            if counter.used + counter.reserved + claim.amount > claim.limit:
                return claim.refused(counter.used, counter.reserved).refusal
            taken[claim.key] = Counter(counter.used, counter.reserved + claim.amount)
        writes.counters.update(taken)
        now_us = to_micros(utcnow())
        writes.reservations[execution_id] = [Held(*c.key, c.amount, now_us) for c in claims]
        return None

    def settle_in(
        self, writes: QuotaWrites, execution_id: uuid.UUID, spent: Mapping[QuotaResource, int]
    ) -> list[Held]:
        """Stage the settling of what ``execution_id`` holds on ``writes``: what it held."""
        held = self._held(writes, execution_id)
        for item in held:
            counter = self._counter(writes, item.key)
            writes.counters[item.key] = Counter(
                counter.used + spent.get(item.resource, 0), counter.reserved - item.amount
            )
        if held:
            writes.reservations[execution_id] = []
        return held

    def _held(self, writes: QuotaWrites, execution_id: uuid.UUID) -> list[Held]:
        """What ``execution_id`` holds as ``writes`` leave it."""
        if execution_id in writes.reservations:
            return writes.reservations[execution_id]
        return self._state.reservations.get(execution_id, [])

    def _counter(self, writes: QuotaWrites, key: CounterKey) -> Counter:
        """The counter of ``key`` as ``writes`` leave it."""
        if key in writes.counters:
            return writes.counters[key]
        return self._state.counters.get(key, Counter())

    async def reservations(self, execution_id: uuid.UUID) -> list[QuotaReservation]:
        held = self._state.reservations.get(execution_id, [])
        return [h.reservation(execution_id) for h in held]

    async def usage(self, keys: Sequence[CounterKey]) -> list[QuotaCounter]:
        counted = [(key, self._state.counters.get(key, Counter())) for key in keys]
        return [QuotaCounter.from_units(key, c.used, c.reserved) for key, c in counted]


class StagedQuotaWrite:
    """A :class:`~limit_graph.storage.quotas.QuotaWrite` applied on one transaction of
    the memory or file backend (:func:`~limit_graph.storage.base.write_execution_in`)."""

    def __init__(self, store: MemoryQuotaStore, writes: QuotaWrites, write: PreparedQuotaWrite):
        self._store = store
        self._writes = writes
        self._write = write

    def claim(self, execution_id: uuid.UUID) -> QuotaRefusal | None:
        return self._store.claim_in(self._writes, execution_id, self._write.claims)

    def settle(self, execution_id: uuid.UUID) -> None:
        if self._write.spent is not None:
            self._store.settle_in(self._writes, execution_id, self._write.spent)

    def release(self, execution_id: uuid.UUID) -> None:
        self._store.settle_in(self._writes, execution_id, {})
