"""Quotas: what may be used per tenant, principal and session, and in which period.

A quota is a limit on one :class:`QuotaResource` for one scope (``tenant:<name>``,
``principal:<id>``, ``session:<id>``).  Tenant and principal quotas count per period
(an hour, a day, a calendar month, in UTC); a session's quotas (its config's
``quotas``) are totals for the session's life.  ``concurrent`` is a gauge, not a count:
what is reserved is what runs now, and it is never used up.

>>> start, resets = period_window(QuotaPeriod.DAY, datetime(2026, 3, 9, 15, 30, tzinfo=UTC))
>>> start.isoformat(), resets.isoformat()
('2026-03-09T00:00:00+00:00', '2026-03-10T00:00:00+00:00')
>>> QuotaLimits.model_validate({"shots": 1000, "period": "day"}).limits()
{<QuotaResource.SHOTS: 'shots'>: 1000.0}
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "COUNTED",
    "LIFETIME",
    "QuotaLimits",
    "QuotaPeriod",
    "QuotaResource",
    "QuotaUse",
    "check_scope",
    "period_window",
]


class QuotaResource(StrEnum):
    EXECUTIONS = "executions"
    CONCURRENT = "concurrent"
    SHOTS = "shots"
    QPU_SECONDS = "qpu_seconds"
    STORAGE_BYTES = "storage_bytes"


COUNTED = frozenset(
    {
        QuotaResource.EXECUTIONS,
        QuotaResource.CONCURRENT,
        QuotaResource.SHOTS,
        QuotaResource.STORAGE_BYTES,
    }
)
"""Resources counted in whole units (their limits are integers)."""


class QuotaPeriod(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


LIFETIME = "life"
"""The window key of a quota that never resets (a session's, and ``concurrent``)."""


def period_window(period: QuotaPeriod, now: datetime) -> tuple[datetime, datetime]:
    """The UTC period ``now`` falls in: its start and when it resets."""
    now = now.astimezone(UTC)
    if period is QuotaPeriod.HOUR:
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    if period is QuotaPeriod.DAY:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


def check_scope(scope: str) -> str:
    """``scope`` if it names a quota scope: ``tenant:<name>``, ``principal:<uuid>`` or
    ``session:<uuid>``; else ValueError saying which forms there are.

    >>> check_scope("tenant:acme")
    'tenant:acme'
    >>> check_scope("team:acme")
    Traceback (most recent call last):
    ...
    ValueError: 'team:acme' is not a quota scope: use tenant:<name>, principal:<id> or session:<id>
    """
    kind, _, name = scope.partition(":")
    valid = bool(name) and kind in ("tenant", "principal", "session")
    if valid and kind != "tenant":
        try:
            uuid.UUID(name)
        except ValueError:
            valid = False
    if not valid:
        raise ValueError(
            f"{scope!r} is not a quota scope: use tenant:<name>, principal:<id> or session:<id>"
        )
    return scope


class QuotaLimits(BaseModel):
    """Limits of one scope, as a session's ``quotas`` or a ``PUT /quotas/{scope}`` body
    says them: a number per resource (none: no limit), and for tenants and principals
    the period they count over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executions: int | None = Field(default=None, ge=0, strict=True)
    concurrent: int | None = Field(default=None, ge=0, strict=True)
    shots: int | None = Field(default=None, ge=0, strict=True)
    qpu_seconds: float | None = Field(default=None, ge=0)
    storage_bytes: int | None = Field(default=None, ge=0, strict=True)
    period: QuotaPeriod | None = Field(
        default=None, description="hour, day or month (UTC); none: totals that never reset."
    )

    def limits(self) -> dict[QuotaResource, float]:
        """The resources it limits, with their limits."""
        found: dict[QuotaResource, float] = {}
        for resource in QuotaResource:
            value = getattr(self, resource.value)
            if value is not None:
                found[resource] = float(value)
        return found

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class QuotaUse(BaseModel):
    """One quota as ``GET /quotas`` shows it."""

    scope: str
    resource: QuotaResource
    limit: float
    used: float
    reserved: float
    period: QuotaPeriod | None = None
    resets_at: datetime | None = Field(
        default=None, description="When the period ends; none for totals that never reset."
    )
