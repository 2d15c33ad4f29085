"""Token buckets in this process's memory: the limiter without ``[governance] redis_url``.

Each API process then counts on its own, so N processes allow up to N times the
configured rate.  A check is a few dictionary operations (microseconds) and atomic, since
nothing in it awaits.  Memory is bounded: a bucket idle long enough to have refilled is
the same as no bucket, so it is dropped; past ``max_buckets`` the least recently used go
first, full or not (which can only ever be generous, never refuse wrongly).

>>> import asyncio
>>> limiter = MemoryRateLimiter(clock=lambda: 0.0)
>>> bucket = Bucket("rate:read:principal:p", rate=1.0, burst=1, policy_id="rate:read:principal")
>>> [asyncio.run(limiter.check([bucket])).allowed for _ in range(2)]
[True, False]
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from limit_graph.governance.rates.types import ALLOWED, Bucket, RateVerdict

__all__ = ["MAX_BUCKETS", "MemoryRateLimiter"]

MAX_BUCKETS = 100_000
"""Buckets kept at most; each is about 200 bytes."""


class _State:
    __slots__ = ("full_at", "tokens", "updated")

    def __init__(self, tokens: float, updated: float, full_at: float) -> None:
        self.tokens = tokens
        self.updated = updated
        self.full_at = full_at


class MemoryRateLimiter:
    """In-process buckets; ``clock`` is monotonic seconds (a fake one in tests)."""

    fail_open = True

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_BUCKETS
    ) -> None:
        self._clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[str, _State] = OrderedDict()

    @property
    def state(self) -> str:
        return "ok"

    def __len__(self) -> int:
        return len(self._buckets)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._buckets.clear()

    async def status(self) -> str:
        return "ok"

    async def check(self, buckets: Sequence[Bucket]) -> RateVerdict:
        now = self._clock()
        levels: list[float] = []
        wait, worst = 0.0, None
        for bucket in buckets:
            held = self._buckets.get(bucket.key)
            if held is None:
                tokens = float(bucket.burst)
            else:
                elapsed = max(0.0, now - held.updated)
                tokens = min(float(bucket.burst), held.tokens + elapsed * bucket.rate)
            levels.append(tokens)
            if tokens < 1.0 and (need := (1.0 - tokens) / bucket.rate) > wait:
                wait, worst = need, bucket
        if worst is not None:
            return RateVerdict(allowed=False, retry_after_s=wait, bucket=worst)
        for bucket, tokens in zip(buckets, levels, strict=True):
            left = tokens - 1.0
            full_at = now + (bucket.burst - left) / bucket.rate
            held = self._buckets.get(bucket.key)
            if held is None:
                self._buckets[bucket.key] = _State(left, now, full_at)
            else:
                held.tokens, held.updated, held.full_at = left, now, full_at
                self._buckets.move_to_end(bucket.key)
        self._evict(now)
        return ALLOWED

    def _evict(self, now: float) -> None:
        """Drop refilled buckets from the least recently used end, then any past the bound."""
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if oldest.full_at > now and len(buckets) <= self._max:
                return
            buckets.popitem(last=False)
