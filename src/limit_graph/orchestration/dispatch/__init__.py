"""Dispatch of remote and quantum executions to runners: claims, leases, reports, retries.

The queue is the store's (``storage/dispatch.py``), shared by every API process of the
platform: an execution is queued in the transaction that writes it ``queued``, a
runner's claim (through any process) leases up to ``max`` ready ones at once or waits
(a long poll) until one is queued, and each claimed execution is written ``running``
with the claim's attempt number as the claim is answered.  A result is recorded
only for the attempt that holds the lease, once: a repeat is a duplicate, a result of
an attempt whose lease expired is rejected.  A lease that expires puts the execution
back in the queue as the next attempt, on the next instance of the ring, while
attempts remain; so does a retryable failure, after a backoff.  Every process reaps
expired leases; the queue hands each to one of them.

A process wakes its own waiting claims and waiters at once; the others learn from the
queue's signals (``LISTEN/NOTIFY`` on Postgres, a table SQLite readers follow), and
every waiting claim looks again at least every :data:`POLL_S`.  See
docs/orchestration.md for the protocol.
"""

from limit_graph.orchestration.dispatch.dispatcher import Dispatcher
from limit_graph.orchestration.dispatch.results import (
    DISPATCHED,
    ClaimedLease,
    ReportOutcome,
    RunnerResult,
)

__all__ = ["DISPATCHED", "ClaimedLease", "Dispatcher", "ReportOutcome", "RunnerResult"]
