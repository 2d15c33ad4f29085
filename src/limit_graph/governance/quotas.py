"""Quotas as governance applies them: reserved before each execution, reconciled after.

The quotas that apply to an execution are its tenant's and its principal's (stored,
set by admins, counted per period) and its session's (its config's ``quotas``, totals
for the session's life).  An execution claims every limited resource its demand names,
all or none, and is refused with a message that names the quota, its limit and its
use: a quota that resets answers 429 with the seconds to its reset
(:class:`QuotaExceeded`); a session's totals, or a request larger than the whole limit,
answer 403 (:class:`QuotaCapReached`), since waiting cannot help.

An execution's claims are taken with its first write (:meth:`QuotaService.plan` says
what they are), so that reserving costs no transaction of its own.  Planning is on the
path of every execution, so stored limits are cached in process for a second (other
processes see a change within that) and the cache is dropped when this service sets
limits; with no limits anywhere, nothing touches storage.

A demand should name every resource the execution may use, at 0 when it cannot be known
beforehand: reconciling records use only where something was reserved.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from limit_graph.core.errors import InvalidInput, QuotaCapReached, QuotaExceeded
from limit_graph.core.models import CheckResult, Session, utcnow
from limit_graph.core.quotas import (
    COUNTED,
    LIFETIME,
    QuotaLimits,
    QuotaPeriod,
    QuotaResource,
    QuotaUse,
    check_scope,
    period_window,
)
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.quotas import QuotaClaim, QuotaRefusal, QuotaStore

__all__ = ["QUOTA_CHECK", "QuotaPlan", "QuotaService", "quota_policy_id"]

QUOTA_CHECK = "quota"

_NOUNS = {
    QuotaResource.EXECUTIONS: "executions",
    QuotaResource.CONCURRENT: "concurrent executions",
    QuotaResource.SHOTS: "shots",
    QuotaResource.QPU_SECONDS: "QPU seconds",
    QuotaResource.STORAGE_BYTES: "bytes of storage",
}
_PERIOD_WORDS = {
    QuotaPeriod.HOUR: "this hour",
    QuotaPeriod.DAY: "today",
    QuotaPeriod.MONTH: "this month",
}


def quota_policy_id(scope: str, resource: QuotaResource) -> str:
    """How a quota is named among a verdict's ``policy_ids``."""
    return f"quota:{scope}:{resource.value}"


@dataclass(frozen=True)
class _Quota:
    """One limit that applies now, with the window it counts in."""

    scope: str
    resource: QuotaResource
    limit: float
    period: QuotaPeriod | None
    window: str
    resets_at: datetime | None

    @property
    def policy_id(self) -> str:
        return quota_policy_id(self.scope, self.resource)


@dataclass(frozen=True)
class QuotaPlan:
    """The quotas one execution asks of, with what it asks of each."""

    asked: tuple[tuple[_Quota, float], ...]
    at: datetime

    @property
    def claims(self) -> list[QuotaClaim]:
        """What storage takes, all or none, before the execution is recorded."""
        return [QuotaClaim(q.scope, q.resource, q.window, a, q.limit) for q, a in self.asked]

    @property
    def verdict(self) -> CheckResult:
        """The passed quota check the execution keeps once its claims are taken."""
        return CheckResult(
            check=QUOTA_CHECK,
            passed=True,
            policy_ids=[q.policy_id for q, _ in self.asked],
            detail="reserved "
            + ", ".join(
                f"{_number(q.resource, a)} {_NOUNS[q.resource]} of {q.scope}" for q, a in self.asked
            ),
        )

    def refusal(self, refused: QuotaRefusal) -> QuotaExceeded:
        """The denial of a claim of this plan that did not fit, in a user's words."""
        for quota, amount in self.asked:
            if (quota.scope, quota.resource, quota.window) == refused.claim.key:
                return _refusal(quota, amount, refused.used, refused.reserved, self.at)
        raise ValueError(f"{refused.claim.key} is not a claim of this plan")


def _quotas(
    scope: str, limits: Mapping[QuotaResource, float], period: QuotaPeriod | None, now: datetime
) -> list[_Quota]:
    """``scope``'s limits in the windows ``now`` falls in (``concurrent`` is a gauge:
    it has no period)."""
    start, resets = period_window(period, now) if period is not None else (None, None)
    found: list[_Quota] = []
    for resource, limit in limits.items():
        if start is None or resource is QuotaResource.CONCURRENT:
            found.append(_Quota(scope, resource, limit, None, LIFETIME, None))
        else:
            found.append(_Quota(scope, resource, limit, period, start.isoformat(), resets))
    return found


def _scopes(tenant: str, principal_id: uuid.UUID | None) -> list[str]:
    """The stored scopes whose quotas apply to a caller: its tenant's, then its own."""
    scopes = [f"tenant:{tenant}"]
    if principal_id is not None:
        scopes.append(f"principal:{principal_id}")
    return scopes


def _session_limits(session: Session) -> dict[QuotaResource, float]:
    """The session's config ``quotas`` (validated when the session was made), in the
    order of :class:`QuotaResource`, as stored limits list theirs."""
    quotas = session.config.quotas
    return {r: float(quotas[r.value]) for r in QuotaResource if r.value in quotas}


def _applying(
    stored: list[tuple[str, QuotaLimits]], session: Session | None, now: datetime
) -> list[_Quota]:
    """The quotas in force at ``now``: each stored scope's, then the session's."""
    quotas: list[_Quota] = []
    for scope, limits in stored:
        quotas += _quotas(scope, limits.limits(), limits.period, now)
    if session is not None:
        quotas += _quotas(f"session:{session.id}", _session_limits(session), None, now)
    return quotas


class QuotaService:
    """Reserves, reconciles and reports quotas, and lets admins set them.

    ``clock`` gives the time periods are counted in and the cache ages by.
    """

    def __init__(
        self,
        store: QuotaStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        cache_ttl_s: float = 1.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = timedelta(seconds=cache_ttl_s)
        self._cache: dict[str, tuple[datetime, QuotaLimits | None]] = {}
        self._generation = 0

    async def _stored(self, scopes: list[str], now: datetime) -> list[tuple[str, QuotaLimits]]:
        """The stored limits of ``scopes``, in their order, from the cache while it is
        fresh."""
        found: dict[str, QuotaLimits | None] = {}
        missing: list[str] = []
        for scope in scopes:
            cached = self._cache.get(scope)
            if cached is None or cached[0] <= now:
                missing.append(scope)
            else:
                found[scope] = cached[1]
        if missing:
            generation = self._generation
            fetched = {s.scope: s.limits for s in await self._store.limits(missing)}
            found.update((s, fetched.get(s)) for s in missing)
            if generation == self._generation:  # no set_limits meanwhile: safe to keep
                expires = now + self._ttl
                self._cache.update((s, (expires, found[s])) for s in missing)
        return [(s, limits) for s in scopes if (limits := found[s]) is not None]

    async def plan(
        self,
        *,
        tenant: str,
        principal_id: uuid.UUID | None,
        session: Session,
        demand: Mapping[QuotaResource, float],
    ) -> QuotaPlan | None:
        """What ``demand`` asks of every quota that limits it, to be claimed with the
        execution's first write; ``None`` when no quota applies.  A demand larger than a
        whole limit is refused here (:class:`QuotaCapReached`): it can never fit."""
        now = self._clock()
        stored = await self._stored(_scopes(tenant, principal_id), now)
        asked: list[tuple[_Quota, float]] = []
        for quota in _applying(stored, session, now):
            amount = demand.get(quota.resource)
            if amount is not None:
                asked.append((quota, _demanded(quota.resource, amount)))
        if not asked:
            return None
        for quota, amount in asked:
            if amount > quota.limit:
                [counter] = await self._store.usage([(quota.scope, quota.resource, quota.window)])
                raise _refusal(quota, amount, counter.used, counter.reserved, now)
        return QuotaPlan(tuple(asked), now)

    async def reserve(
        self,
        execution_id: uuid.UUID,
        *,
        tenant: str,
        principal_id: uuid.UUID | None,
        session: Session,
        demand: Mapping[QuotaResource, float],
    ) -> CheckResult | None:
        """Claim what ``demand`` asks of every quota that limits it, in a write of its
        own; the verdict to keep with the execution, or ``None`` when no quota applies
        (nothing was reserved)."""
        plan = await self.plan(
            tenant=tenant, principal_id=principal_id, session=session, demand=demand
        )
        if plan is None:
            return None
        refusal = await self._store.reserve(execution_id, plan.claims)
        if refusal is not None:
            raise plan.refusal(refusal)
        return plan.verdict

    async def reconcile(self, execution_id: uuid.UUID, used: Mapping[QuotaResource, float]) -> None:
        """Settle what ``execution_id`` reserved with what it ``used`` (a resource it does
        not name used nothing: pass ``executions: 1`` for an execution that ran); the
        rest is given back.  A second call changes nothing."""
        await self._store.reconcile(execution_id, used)

    async def release(self, execution_id: uuid.UUID) -> None:
        """Give back all ``execution_id`` reserved: it never ran."""
        await self._store.reconcile(execution_id, {})

    async def set_limits(
        self, scope: str, limits: QuotaLimits | Mapping[str, Any], *, actor: str
    ) -> QuotaLimits:
        """Replace the quotas of a tenant or principal scope, as ``actor``; limits that
        limit nothing remove them.  :class:`InvalidInput` listing every problem, with
        nothing written, for a bad scope, a session's scope (its quotas are in its
        config, which never changes), bad limits or counts without a period."""
        errors: list[dict[str, Any]] = []
        kind = scope.partition(":")[0]
        try:
            check_scope(scope)
        except ValueError as exc:
            errors.append({"loc": ["scope"], "msg": str(exc), "type": "value_error"})
        if kind == "session":
            errors.append(
                {
                    "loc": ["scope"],
                    "msg": "a session's quotas are in its config, which never changes: "
                    "start a session with the quotas it needs",
                    "type": "value_error",
                }
            )
        parsed: QuotaLimits | None = None
        document = limits.model_dump() if isinstance(limits, QuotaLimits) else dict(limits)
        try:
            parsed = QuotaLimits.model_validate(document)
        except ValidationError as exc:
            errors += [
                {"loc": ["limits", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
        if parsed is not None and parsed.period is None:
            counted = sorted(r.value for r in parsed.limits() if r is not QuotaResource.CONCURRENT)
            if counted and kind in ("tenant", "principal"):
                errors.append(
                    {
                        "loc": ["limits", "period"],
                        "msg": f"{', '.join(counted)} of a {kind} count per period: "
                        "give a period of hour, day or month",
                        "type": "missing",
                    }
                )
        if errors or parsed is None:
            raise InvalidInput(f"the quotas of {scope!r} cannot be set: {errors[0]['msg']}", errors)
        entry = EntryDraft(
            actor=actor,
            action="quota.set" if parsed.limits() else "quota.removed",
            resource_type="quota",
            resource_id=scope,
            session_id=None,
            payload={"scope": scope, "limits": parsed.document()},
            tenant=scope.partition(":")[2] if scope.startswith("tenant:") else None,
        )
        stored = await self._store.set_limits(scope, parsed, entry=entry)
        self._generation += 1
        self._cache.clear()
        return stored

    async def usage(
        self, *, tenant: str, principal_id: uuid.UUID | None, session: Session | None
    ) -> list[QuotaUse]:
        """The quotas that apply to the caller (its tenant's and its own) and, given one,
        to ``session``: each limit with its use and reset in the window that holds now."""
        scopes = _scopes(tenant, principal_id)
        return await self._use(scopes, session)

    async def scope_usage(self, scopes: Sequence[str]) -> list[QuotaUse]:
        """The stored quotas of ``scopes`` (those that have any), each with its use now:
        two reads however many scopes (``/metrics`` reads the tenants' this way)."""
        return await self._use(scopes, None)

    async def _use(self, scopes: Sequence[str], session: Session | None) -> list[QuotaUse]:
        now = self._clock()
        found = {s.scope: s.limits for s in await self._store.limits(scopes)}
        stored = [(s, found[s]) for s in scopes if s in found]
        quotas = _applying(stored, session, now)
        counters = await self._store.usage([(q.scope, q.resource, q.window) for q in quotas])
        return [
            QuotaUse(
                scope=q.scope,
                resource=q.resource,
                limit=q.limit,
                used=c.used,
                reserved=c.reserved,
                period=q.period,
                resets_at=q.resets_at,
            )
            for q, c in zip(quotas, counters, strict=True)
        ]


def _demanded(resource: QuotaResource, amount: float) -> float:
    """A demand checked: a number >= 0, counted resources rounded up to whole units."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise InvalidInput(f"the demand for {resource.value} must be a number, not {amount!r}")
    if not math.isfinite(amount) or amount < 0:
        raise InvalidInput(f"the demand for {resource.value} must be >= 0, not {amount!r}")
    return float(math.ceil(amount)) if resource in COUNTED else float(amount)


def _number(resource: QuotaResource, value: float) -> str:
    if resource in COUNTED:
        return f"{round(value):,}"
    return f"{value:,.6f}".rstrip("0").rstrip(".")


def _value(resource: QuotaResource, value: float) -> float | int:
    """As the refusal's ``quota`` shows it: counted resources as whole numbers."""
    return round(value) if resource in COUNTED else value


def _who(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f"tenant {name}" if kind == "tenant" else f"{kind} {name[:8]}…"


def _after(seconds: float) -> str:
    """A wait in words: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    whole = max(0, math.ceil(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = math.ceil(whole / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _refusal(
    quota: _Quota, requested: float, used: float, reserved: float, now: datetime
) -> QuotaExceeded:
    """The denial of ``requested`` against ``quota``, in words a user understands."""
    r = quota.resource
    noun = _NOUNS[r]
    who = _who(quota.scope)
    limit, asks = _number(r, quota.limit), _number(r, requested)
    info: dict[str, Any] = {
        "scope": quota.scope,
        "resource": r.value,
        "limit": _value(r, quota.limit),
        "used": _value(r, used),
        "reserved": _value(r, reserved),
        "requested": _value(r, requested),
        "resets_at": _stamp(quota.resets_at) if quota.resets_at else None,
    }
    policy_ids = [quota.policy_id]
    per = f" {_PERIOD_WORDS[quota.period]}" if quota.period else ""
    if requested > quota.limit:
        detail = (
            f"this execution asks for {asks} {noun}, more than {who} may use{per or ' in all'} "
            f"(its quota is {limit}): it can never fit"
        )
        return QuotaCapReached(detail, policy_ids, quota=info)
    if r is QuotaResource.CONCURRENT:
        detail = (
            f"{who} already has {_number(r, reserved)} of its {limit} {noun} running; this "
            f"execution asks for {asks} more: retry when one has finished"
        )
        return QuotaExceeded(detail, policy_ids, quota=info)
    detail = (
        f"{who} has used {_number(r, used)} of its {limit} {noun}{per} "
        f"({_number(r, reserved)} reserved); this execution asks for {asks}"
    )
    if quota.resets_at is None:
        detail += "; a session's quotas are totals for its life: start a session with more"
        return QuotaCapReached(detail, policy_ids, quota=info)
    wait = (quota.resets_at - now).total_seconds()
    detail += f"; the quota resets at {_stamp(quota.resets_at)} (in {_after(wait)})"
    return QuotaExceeded(detail, policy_ids, quota=info, retry_after_s=max(0.0, wait))
