"""The quota store: limits per scope, counters per window, reservations per execution.

Every backend exposes one as ``storage.quotas``.  A quota's use is a *counter* per
(scope, resource, window), holding what finished work ``used`` and what running work
holds ``reserved``; a window is the start of a period (ISO 8601) or
:data:`~limit_graph.core.quotas.LIFETIME`.  Admission reserves before the task, one
claim per quota, and the store takes a claim only if ``used + reserved + amount <=
limit`` in one atomic step, so several API processes on one database never overshoot a
limit; after the task, reconciling turns each of the execution's reservations into what
it really used and gives the rest back.

Amounts are kept in whole *units*: counted resources in themselves (a fractional amount
is rounded up, a fractional limit down), QPU seconds in microseconds (an amount or a use
rounded up to the next microsecond, a limit down), so that every backend compares
exactly, never letting rounding carry use past a limit.

>>> to_units(QuotaResource.QPU_SECONDS, 0.1) + to_units(QuotaResource.QPU_SECONDS, 0.2)
300000
>>> to_units(QuotaResource.SHOTS, 2.5), to_units(QuotaResource.SHOTS, 2.5, limit=True)
(3, 2)
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Protocol

from limit_graph.core.errors import InvalidInput
from limit_graph.core.quotas import LIFETIME, QuotaLimits, QuotaResource, check_scope
from limit_graph.storage.ledger import EntryDraft

__all__ = [
    "ClaimRefused",
    "PreparedQuotaWrite",
    "CounterKey",
    "QuotaClaim",
    "QuotaCounter",
    "QuotaRefusal",
    "QuotaReservation",
    "QuotaStore",
    "QuotaWrite",
    "ScopeLimits",
    "UnitClaim",
    "checked_scope",
    "from_units",
    "prepare_claims",
    "prepare_used",
    "to_units",
]

CounterKey = tuple[str, QuotaResource, str]
"""Where a quota's use is counted: (scope, resource, window)."""

_SCALE = {QuotaResource.QPU_SECONDS: 1_000_000}


def to_units(resource: QuotaResource, value: float, *, limit: bool = False) -> int:
    """``value`` of ``resource`` in whole units: rounded up, or down for a ``limit``."""
    scaled = Decimal(repr(float(value))) * _SCALE.get(resource, 1)
    return int(scaled.to_integral_value(rounding=ROUND_FLOOR if limit else ROUND_CEILING))


def from_units(resource: QuotaResource, units: int) -> float:
    """What :func:`to_units` made ``units`` of, in the resource's own measure."""
    return units / _SCALE.get(resource, 1)


@dataclass(frozen=True)
class QuotaClaim:
    """One quota an execution reserves against: ``amount`` of ``resource`` in ``scope``'s
    ``window``, taken only while the counter stays within ``limit``."""

    scope: str
    resource: QuotaResource
    window: str
    amount: float
    limit: float

    @property
    def key(self) -> CounterKey:
        return (self.scope, self.resource, self.window)


@dataclass(frozen=True)
class UnitClaim:
    """A checked :class:`QuotaClaim` in units, as the backends apply it."""

    claim: QuotaClaim
    amount: int
    limit: int

    @property
    def key(self) -> CounterKey:
        return self.claim.key

    def refused(self, used: int, reserved: int) -> ClaimRefused:
        """What a backend raises when this claim does not fit its counter (``used`` and
        ``reserved`` in units), to roll the reservation's transaction back."""
        resource = self.claim.resource
        refusal = QuotaRefusal(
            self.claim, from_units(resource, used), from_units(resource, reserved)
        )
        return ClaimRefused(refusal)


@dataclass(frozen=True)
class QuotaRefusal:
    """The claim that did not fit, and the counter as it stood when it was refused."""

    claim: QuotaClaim
    used: float
    reserved: float


class ClaimRefused(Exception):
    """A claim did not fit: raised inside a reservation's transaction so that nothing it
    took stays (the quota store catches it and returns its :attr:`refusal`), and by an
    execution's write whose claims do not fit, which wrote nothing."""

    def __init__(self, refusal: QuotaRefusal) -> None:
        super().__init__(refusal.claim.key)
        self.refusal = refusal


@dataclass(frozen=True)
class QuotaCounter:
    """A quota's use in one window (zero where nothing was ever counted)."""

    scope: str
    resource: QuotaResource
    window: str
    used: float
    reserved: float

    @classmethod
    def from_units(cls, key: CounterKey, used: int, reserved: int) -> QuotaCounter:
        """The counter of ``key`` as a backend keeps it, in units."""
        resource = key[1]
        return cls(*key, from_units(resource, used), from_units(resource, reserved))


@dataclass(frozen=True)
class QuotaReservation:
    """What one execution holds of one quota until it is reconciled."""

    execution_id: uuid.UUID
    scope: str
    resource: QuotaResource
    window: str
    amount: float

    @classmethod
    def from_units(cls, execution_id: uuid.UUID, key: CounterKey, amount: int) -> QuotaReservation:
        """A reservation as a backend keeps it: the counter it holds of, ``amount`` in units."""
        return cls(execution_id, *key, from_units(key[1], amount))


@dataclass(frozen=True)
class ScopeLimits:
    """One scope's stored limits, as :meth:`QuotaStore.limits` lists them."""

    scope: str
    limits: QuotaLimits


@dataclass(frozen=True)
class QuotaWrite:
    """What recording one execution does to its quotas, in the record's own transaction
    (:meth:`~limit_graph.storage.base.Storage.write_execution`).

    ``claims`` are taken for the execution before it is recorded, all or none, as
    :meth:`QuotaStore.reserve` takes them (none when it holds reservations already); when
    one does not fit, the write raises :class:`ClaimRefused` and writes nothing.
    ``used``, given with a final record, settles the execution's reservations once it is
    recorded, as :meth:`QuotaStore.reconcile` does.  A write that does not record the
    execution (an earlier one answers its idempotency key, or its session is not
    active) takes nothing and gives back everything the execution holds.
    """

    claims: Sequence[QuotaClaim] = ()
    used: Mapping[QuotaResource, float] | None = None

    def prepared(self) -> PreparedQuotaWrite:
        """Checked and in units (:class:`InvalidInput` naming a bad claim or use)."""
        spent = prepare_used(self.used) if self.used is not None else None
        return PreparedQuotaWrite(prepare_claims(self.claims), spent)


@dataclass(frozen=True)
class PreparedQuotaWrite:
    """A :class:`QuotaWrite` as the backends apply it: claims in units and in lock
    order, and what was used in units (``None``: nothing is settled)."""

    claims: list[UnitClaim]
    spent: dict[QuotaResource, int] | None


class QuotaStore(Protocol):
    """Durable quota limits, counters and reservations (see the module docstring).

    A call that raises (:class:`InvalidInput`) has written nothing, ledger included.
    """

    async def set_limits(
        self, scope: str, limits: QuotaLimits, *, entry: EntryDraft
    ) -> QuotaLimits:
        """Replace ``scope``'s limits (limits that limit nothing remove them) and append
        ``entry``, in one transaction."""

    async def limits(self, scopes: Sequence[str]) -> list[ScopeLimits]:
        """The limits stored for those of ``scopes`` that have any, by scope."""

    async def reserve(
        self, execution_id: uuid.UUID, claims: Sequence[QuotaClaim]
    ) -> QuotaRefusal | None:
        """Take every claim for ``execution_id``, or none of them.

        Each claim is one conditional step on its counter (``used + reserved + amount
        <= limit``), in a fixed order of counters so that concurrent reservations never
        deadlock; when one does not fit, those taken before it are given back and the
        refusal is returned.  Idempotent: while ``execution_id`` holds reservations, a
        second call takes nothing and returns ``None`` (the first reservation stands).
        """

    async def reconcile(
        self, execution_id: uuid.UUID, used: Mapping[QuotaResource, float]
    ) -> list[QuotaReservation]:
        """Settle the execution's reservations: each counter's ``used`` grows by what
        ``used`` says of its resource (nothing when it is absent, and never for the
        ``concurrent`` gauge), its ``reserved`` shrinks by the amount held, and the
        reservation goes.  What it settled; a second call settles nothing."""

    async def reservations(self, execution_id: uuid.UUID) -> list[QuotaReservation]:
        """What the execution holds now, by (scope, resource)."""

    async def usage(self, keys: Sequence[CounterKey]) -> list[QuotaCounter]:
        """The counter of each key, in the order given (zero where none was kept)."""


def prepare_claims(claims: Sequence[QuotaClaim]) -> list[UnitClaim]:
    """``claims`` checked and in units, in the order every backend takes them (by
    counter key: one lock order for all); :class:`InvalidInput` naming the bad ones."""
    errors: list[dict[str, object]] = []
    seen: set[tuple[str, QuotaResource]] = set()
    prepared: list[UnitClaim] = []
    for index, claim in enumerate(claims):
        problem = _claim_problem(claim)
        if problem is None and (claim.scope, claim.resource) in seen:
            problem = f"{claim.scope} is claimed twice for {claim.resource.value}"
        if problem is not None:
            errors.append({"loc": ["claims", index], "msg": problem, "type": "value_error"})
            continue
        seen.add((claim.scope, claim.resource))
        prepared.append(
            UnitClaim(
                claim,
                to_units(claim.resource, claim.amount),
                to_units(claim.resource, claim.limit, limit=True),
            )
        )
    if errors:
        raise InvalidInput("the quota claims are not valid", errors)
    return sorted(prepared, key=lambda c: c.key)  # QuotaResource is a str: sorts by value


def _claim_problem(claim: QuotaClaim) -> str | None:
    try:
        check_scope(claim.scope)
        resource = QuotaResource(claim.resource)
    except ValueError as exc:
        return str(exc)
    if claim.window != LIFETIME:
        try:
            datetime.fromisoformat(claim.window)
        except ValueError:
            return f"window {claim.window!r} is neither a period's start nor {LIFETIME!r}"
    for name, value in (("amount", claim.amount), ("limit", claim.limit)):
        if not math.isfinite(value) or value < 0:
            return f"the {name} of {resource.value} must be a number >= 0, not {value!r}"
    return None


def prepare_used(used: Mapping[QuotaResource, float]) -> dict[QuotaResource, int]:
    """What an execution used, checked (finite, >= 0, known resources) and in units, as
    reconciling adds it to counters: without ``concurrent``, a gauge that is never used
    up.  :class:`InvalidInput` naming each bad one."""
    errors: list[dict[str, object]] = []
    spent: dict[QuotaResource, int] = {}
    for name, value in used.items():
        try:
            resource = QuotaResource(name)
        except ValueError:
            errors.append({"loc": ["used", str(name)], "msg": "not a quota resource"})
            continue
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            errors.append({"loc": ["used", resource.value], "msg": "must be a number >= 0"})
            continue
        if resource is not QuotaResource.CONCURRENT:
            spent[resource] = to_units(resource, value)
    if errors:
        raise InvalidInput("what the execution used is not valid", errors)
    return spent


def checked_scope(scope: str) -> str:
    """``scope``, or :class:`InvalidInput` when it names no quota scope."""
    try:
        return check_scope(scope)
    except ValueError as exc:
        raise InvalidInput(str(exc), [{"loc": ["scope"], "msg": str(exc)}]) from None
