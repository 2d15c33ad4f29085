"""What a rate limiter is asked and answers: buckets in, a verdict out.

A request draws one token from each of its buckets (``rate:<route class>:<dimension>:<id>``,
say ``rate:execute:principal:<uuid>``) or from none; the limiter behind the
:class:`RateLimiter` protocol keeps the buckets -- in this process's memory
(:mod:`.memory`) or in Redis, shared by every API process (:mod:`.redis`).

>>> bucket = Bucket("rate:read:tenant:acme", rate=10.0, burst=20, policy_id="rate:read:tenant")
>>> RateVerdict(allowed=False, retry_after_s=0.1, bucket=bucket).outcome
'limited'
>>> ALLOWED.outcome
'allowed'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["ALLOWED", "Bucket", "Outcome", "RateLimiter", "RateVerdict"]

Outcome = Literal["allowed", "limited", "failed_open", "failed_closed"]
"""How a check ended: a token taken, none left, or the shared store out of reach and the
request let through (``failed_open``) or refused (``failed_closed``)."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One token bucket: ``rate`` tokens a second, holding at most ``burst``; a new one
    starts full."""

    key: str
    rate: float
    burst: int
    policy_id: str
    """What a refusal names in its ``policy_ids``: ``rate:<route class>:<dimension>``."""


@dataclass(frozen=True, slots=True)
class RateVerdict:
    """A limiter's answer.  Refused: ``bucket`` is the one to wait longest for (``None``
    when the store was unreachable) and ``retry_after_s`` how long until it holds a token.
    ``degraded``: decided without the shared store, by ``fail_open``."""

    allowed: bool
    retry_after_s: float = 0.0
    bucket: Bucket | None = None
    degraded: bool = False

    @property
    def outcome(self) -> Outcome:
        if self.degraded:
            return "failed_open" if self.allowed else "failed_closed"
        return "allowed" if self.allowed else "limited"


ALLOWED = RateVerdict(allowed=True)
"""A token was taken from every bucket."""


class RateLimiter(Protocol):
    """Keeps token buckets; never raises from :meth:`check` -- a store it cannot reach is
    a verdict (``degraded``), decided by ``fail_open``."""

    fail_open: bool
    """When the store is unreachable: let requests through (true) or refuse them."""

    @property
    def state(self) -> str:
        """``"ok"``, or ``"degraded: <why>"`` since the last check or probe that failed."""
        ...

    async def start(self) -> None:
        """Connect (or try to: a store that is down degrades, it does not stop the start)."""
        ...

    async def close(self) -> None: ...

    async def check(self, buckets: Sequence[Bucket]) -> RateVerdict:
        """Take one token from each of ``buckets``, all or none, atomically."""
        ...

    async def status(self) -> str:
        """:attr:`state`, after probing a store that was down if a probe is due (for
        ``/health``, so that it tells a store come back without waiting for a request)."""
        ...
