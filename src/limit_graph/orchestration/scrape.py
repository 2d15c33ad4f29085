"""What ``/metrics`` reads from the shared store at a scrape: the ledger's size, its
latest signed checkpoint, the last whole-ledger verification, the tenants' quota use, and
the Prefect mirror's lag where another process mirrors.

Every API process and every replica reads the same store, so each shows the same values
(dashboards take their ``max``).  A scrape costs a handful of small queries -- the
ledger's head, the latest checkpoint, one bookkeeping document, the tenants and their
stored limits and counters (at most :data:`MAX_QUOTA_TENANTS` tenants), the mirror's
cursor and one entry -- and readings are reused for ``min_interval_s`` so that many
scrapes at once make one read.  No request but ``/metrics`` pays for any of it.  A store
that cannot answer leaves the last readings in place and ``limit_store_up`` at 0.

>>> # readings = ScrapeReadings(storage, telemetry, quotas)
>>> # await readings.refresh(); generate_latest(telemetry.registry)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from limit_graph.core.errors import StorageUnavailable
from limit_graph.core.models import utcnow
from limit_graph.governance.quotas import QuotaService
from limit_graph.orchestration.maintenance import LAST_VERIFICATION
from limit_graph.orchestration.mirror import PrefectMirror
from limit_graph.orchestration.telemetry import Reader, Telemetry
from limit_graph.storage.base import Storage

__all__ = ["MAX_QUOTA_TENANTS", "ScrapeReadings"]

log = logging.getLogger(__name__)

MAX_QUOTA_TENANTS = 100
"""Tenants whose quotas ``/metrics`` shows (the first by name): a bound on its series."""

TENANT_SCOPE = "tenant:"
NO_PERIOD = "none"
"""The ``period`` label of a quota that never resets (``concurrent``)."""

Samples = list[tuple[tuple[str, ...], float]]


@dataclass
class _Readings:
    ledger: Samples = field(default_factory=list)
    checkpoint_size: Samples = field(default_factory=list)
    checkpoint_at: Samples = field(default_factory=list)
    checkpoint_age: Samples = field(default_factory=list)
    verified_ok: Samples = field(default_factory=list)
    verified_at: Samples = field(default_factory=list)
    verified_size: Samples = field(default_factory=list)
    quota_used: Samples = field(default_factory=list)
    quota_reserved: Samples = field(default_factory=list)
    quota_limit: Samples = field(default_factory=list)


class ScrapeReadings:
    """Reads the store for the read metrics of :mod:`telemetry` (module docstring)."""

    def __init__(
        self,
        storage: Storage,
        telemetry: Telemetry,
        quotas: QuotaService,
        *,
        min_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._quotas = quotas
        self._mirror: PrefectMirror | None = None
        self._min_interval_s = min_interval_s
        self._monotonic = monotonic
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self._up = 1.0
        self._now = _Readings()
        for name, attribute in (
            ("limit_ledger_entries", "ledger"),
            ("limit_ledger_checkpoint_tree_size", "checkpoint_size"),
            ("limit_ledger_checkpoint_timestamp_seconds", "checkpoint_at"),
            ("limit_ledger_checkpoint_age_seconds", "checkpoint_age"),
            ("limit_ledger_verification_ok", "verified_ok"),
            ("limit_ledger_verification_timestamp_seconds", "verified_at"),
            ("limit_ledger_verified_entries", "verified_size"),
            ("limit_quota_used", "quota_used"),
            ("limit_quota_reserved", "quota_reserved"),
            ("limit_quota_limit", "quota_limit"),
        ):
            telemetry.watch(name, self._reader(attribute))
        telemetry.watch("limit_store_up", lambda: [((), self._up)])

    def _reader(self, attribute: str) -> Reader:
        return lambda: list(getattr(self._now, attribute))

    def follow_mirror(self, mirror: PrefectMirror) -> None:
        """Measure ``mirror``'s lag from the store at each scrape where it does not run."""
        self._mirror = mirror

    async def refresh(self) -> None:
        """Read the store now, unless it was read less than ``min_interval_s`` ago."""
        async with self._lock:
            started = self._monotonic()
            if self._read_at is not None and started - self._read_at < self._min_interval_s:
                return
            try:
                self._now = await self._read()
                if self._mirror is not None:
                    await self._mirror.observe()
            except StorageUnavailable as exc:
                log.warning("metrics: the store cannot be read now: %s", exc)
                self._up = 0.0
                return
            self._up = 1.0
            self._read_at = started

    async def _read(self) -> _Readings:
        now = _Readings()
        now.ledger = [((), float(await self._storage.ledger_size()))]
        checkpoint = await self._storage.ledger.latest_checkpoint()
        if checkpoint is not None:
            made = checkpoint.timestamp
            now.checkpoint_size = [((), float(checkpoint.tree_size))]
            now.checkpoint_at = [((), made.timestamp())]
            now.checkpoint_age = [((), max(0.0, (utcnow() - made).total_seconds()))]
        else:
            now.checkpoint_size = [((), 0.0)]
        verified = await self._storage.get_value(*LAST_VERIFICATION)
        if verified is not None:
            now.verified_ok = [((), float(bool(verified.get("ok"))))]
            now.verified_at = [((), float(verified.get("at", 0.0)))]
            now.verified_size = [((), float(verified.get("size", 0)))]
        tenants = sorted(t.name for t in await self._storage.identity.list_tenants())
        scopes = [TENANT_SCOPE + name for name in tenants[:MAX_QUOTA_TENANTS]]
        for use in await self._quotas.scope_usage(scopes):
            labels = (
                use.scope.removeprefix(TENANT_SCOPE),
                use.resource.value,
                use.period.value if use.period is not None else NO_PERIOD,
            )
            now.quota_used.append((labels, use.used))
            now.quota_reserved.append((labels, use.reserved))
            now.quota_limit.append((labels, use.limit))
        return now
