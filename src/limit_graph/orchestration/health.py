"""Probes of what the platform depends on, each answered from a one-second cache.

Health checks are polled often (load balancers, Kubernetes, the Prefect UI); a probe
result is reused for a second so that they cost the database or Prefect at most one
call a second whatever the polling rate.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx

__all__ = ["Probe", "prefect_ping"]

PROBE_TTL_S = 1.0


class Probe:
    def __init__(self, check: Callable[[], Awaitable[None]], ttl_s: float = PROBE_TTL_S) -> None:
        self._check = check
        self.ttl_s = ttl_s
        self._checked_at = float("-inf")
        self._error: str | None = None

    async def error(self) -> str | None:
        """Why the dependency failed its last probe, or ``None`` when it passed."""
        now = time.monotonic()
        if now - self._checked_at >= self.ttl_s:
            try:
                await self._check()
                self._error = None
            except Exception as exc:
                self._error = f"{type(exc).__name__}: {exc}"
            self._checked_at = now
        return self._error

    def expire(self) -> None:
        self._checked_at = float("-inf")


def prefect_ping(api_url: str) -> Callable[[], Awaitable[None]]:
    """A check that Prefect's API at ``api_url`` answers its health endpoint."""

    async def ping() -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(api_url.rstrip("/") + "/health")
            response.raise_for_status()

    return ping
