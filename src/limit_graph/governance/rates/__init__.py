"""Rate limits: token buckets per key, principal and tenant for each route class.

:func:`build_limiter` picks where the buckets live from ``[governance]``: in Redis when
``redis_url`` is set (shared by every API process), else in this process's memory.
:class:`RateGuard` turns a request into its buckets and a refusal into
:class:`~limit_graph.core.errors.RateLimited` (429 with ``Retry-After``).

>>> from limit_graph.core.governance_settings import GovernanceSettings
>>> type(build_limiter(GovernanceSettings())).__name__
'MemoryRateLimiter'
"""

from __future__ import annotations

from limit_graph.core.governance_settings import GovernanceSettings
from limit_graph.governance.rates.guard import Dimension, RateGuard, route_class_of
from limit_graph.governance.rates.memory import MemoryRateLimiter
from limit_graph.governance.rates.redis import RedisRateLimiter
from limit_graph.governance.rates.types import ALLOWED, Bucket, Outcome, RateLimiter, RateVerdict

__all__ = [
    "ALLOWED",
    "Bucket",
    "Dimension",
    "MemoryRateLimiter",
    "Outcome",
    "RateGuard",
    "RateLimiter",
    "RateVerdict",
    "RedisRateLimiter",
    "build_limiter",
    "route_class_of",
]


def build_limiter(settings: GovernanceSettings) -> RateLimiter:
    """Redis when ``redis_url`` is set and some rate is configured, else memory (with no
    rates, nothing would ever ask Redis, so nothing connects to it)."""
    if settings.redis_url and settings.rates:
        return RedisRateLimiter(
            settings.redis_url, fail_open=settings.fail_open, timeout_s=settings.redis_timeout_s
        )
    return MemoryRateLimiter()
