"""What the dispatcher and its callers exchange: a runner's result, a granted lease, a
report's outcome, and the write the dispatcher records state changes with."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from limit_graph.core.models import BackendKind, ErrorInfo, Execution, ExecutionState
from limit_graph.core.run_context import RunContext
from limit_graph.storage.dispatch import QueueChange

__all__ = [
    "CANCEL_GRACE_S",
    "DISPATCHED",
    "POLL_S",
    "RUNNER_LOST",
    "SEEN_EVERY_S",
    "STARTED_POLL_S",
    "ClaimedLease",
    "FinalFn",
    "ReportOutcome",
    "RunnerResult",
    "WriteFn",
]

DISPATCHED = (BackendKind.REMOTE, BackendKind.QUANTUM)
RUNNER_LOST = "RunnerLost"
CANCEL_GRACE_S = 5.0
POLL_S = 1.0
"""The longest a waiting claim goes without looking at the queue again."""
STARTED_POLL_S = 0.02
SEEN_EVERY_S = 1.0
"""How often a runner's claims and heartbeats tell the store it is alive."""


@dataclass(frozen=True)
class RunnerResult:
    """One result as a runner reports it."""

    execution_id: uuid.UUID
    attempt: int
    state: ExecutionState
    result: Any = None
    error: ErrorInfo | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_context: RunContext | None = None
    """What the run depended on, as the runner saw it (its libraries, seed, target)."""


@dataclass(frozen=True)
class ClaimedLease:
    execution: Execution
    attempt: int
    lease_s: float


@dataclass
class ReportOutcome:
    accepted: list[uuid.UUID] = field(default_factory=list)
    duplicates: list[uuid.UUID] = field(default_factory=list)
    rejected: list[tuple[uuid.UUID, str]] = field(default_factory=list)


class WriteFn(Protocol):
    """Record a state change durably, with the change to the execution's queue row."""

    def __call__(
        self,
        execution: Execution,
        action: str,
        *,
        queue: QueueChange | None = None,
        relaxed: bool = False,
    ) -> Awaitable[Execution]: ...


FinalFn = Callable[[Execution, bool], Awaitable[None]]
"""Told of a final record: ``True`` when this process wrote it, ``False`` when another
did and this one follows the execution (:meth:`Dispatcher.follow`)."""
