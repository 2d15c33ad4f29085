"""Named leases: which process runs a service that must run once per platform.

Several API processes may serve one store (one SQLite file, one Postgres database);
some services (the Prefect mirror, the runner supervisor) must then run in exactly
one of them.  A lease says which: it is held by one ``holder`` (a process's id) until
``expires_at``, and a holder that stops renewing it (a process killed without a word)
loses it once that time passes.  Every backend exposes one store as
``storage.leases``; the loop that takes and renews them is
:mod:`limit_graph.orchestration.leadership`.

Times are seconds since the epoch as the caller's clock tells them (the platform's,
not the database's), so tests drive leases with a fake clock.  A lease is free at
``now`` when nobody holds it or its ``expires_at`` is at or before ``now``.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["LeaseStore"]


class LeaseStore(Protocol):
    """Take, renew and give back named leases, atomically across processes."""

    async def acquire(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        """Take the lease ``name`` for ``holder`` until ``now + ttl_s`` if it is free at
        ``now`` or ``holder`` has it already (then this renews it); whether ``holder``
        holds it now.  One atomic step: of several holders asking at once, one gets it."""

    async def release(self, name: str, holder: str) -> bool:
        """Give the lease back if ``holder`` still has it (another may take it at once);
        whether it did."""

    async def holder(self, name: str, now: float) -> str | None:
        """Who holds the lease at ``now``; ``None`` when it is free."""
