"""The lease store of the memory backend, which the file backend uses as it is.

A memory store lives in one process, and a file store's folder is owned by one process
(its ``flock``), so the leases only need to be right within one event loop: each
operation runs without awaiting, hence atomically.

>>> import asyncio
>>> leases = MemoryLeaseStore()
>>> asyncio.run(leases.acquire("mirror", "a", 5.0, now=100.0))
True
>>> asyncio.run(leases.acquire("mirror", "b", 5.0, now=104.0))
False
>>> asyncio.run(leases.acquire("mirror", "b", 5.0, now=105.0))
True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MemoryLeaseStore"]


@dataclass
class _Lease:
    holder: str
    expires_at: float
    acquired_at: float


class MemoryLeaseStore:
    """:class:`~limit_graph.storage.leases.LeaseStore` in a dict."""

    def __init__(self) -> None:
        self._leases: dict[str, _Lease] = {}

    async def acquire(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        lease = self._leases.get(name)
        if lease is not None and lease.holder == holder:
            lease.expires_at = now + ttl_s
            return True
        if lease is not None and lease.expires_at > now:
            return False
        self._leases[name] = _Lease(holder, now + ttl_s, now)
        return True

    async def release(self, name: str, holder: str) -> bool:
        lease = self._leases.get(name)
        if lease is None or lease.holder != holder:
            return False
        del self._leases[name]
        return True

    async def holder(self, name: str, now: float) -> str | None:
        lease = self._leases.get(name)
        return lease.holder if lease is not None and lease.expires_at > now else None
