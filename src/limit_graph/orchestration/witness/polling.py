"""The witness's loop: read the log's checkpoint every interval, observe it, and push each
new cosigned checkpoint to a collector.

The transport is the caller's, behind :class:`LogSource`: whatever it cannot do this
time (nothing answers, a 5xx, a proof the log will not give yet) it raises as
:class:`LogUnavailable`, and the loop reports it and tries again after a backoff that
doubles from the interval up to :data:`MAX_BACKOFF_S` (or the interval, if longer).
With ``once`` it stops after one checkpoint, or gives up (:class:`GaveUp`) after
``attempts`` failures in a row.  A :class:`~.cosigning.Refusal` or a
:class:`~.state.StateError` ends the loop at once: those are not the network's fault.
A cosigned checkpoint that could not be pushed is pushed again on the next round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from limit_graph.orchestration.witness.cosigning import Observation, Witness
from limit_graph.orchestration.witness.state import WitnessError

__all__ = [
    "MAX_BACKOFF_S",
    "ONCE_ATTEMPTS",
    "Event",
    "GaveUp",
    "LogCheckpoint",
    "LogSource",
    "LogUnavailable",
    "Push",
    "Pushed",
    "Retrying",
    "Seen",
    "backoff_s",
    "run_witness",
]

MAX_BACKOFF_S = 300.0
ONCE_ATTEMPTS = 5


class LogUnavailable(WitnessError):
    """The log (or the collector pushed to) could not be reached this time: try again."""


class GaveUp(WitnessError):
    """``once`` and every attempt failed: the last failure is the message."""


@dataclass(frozen=True)
class LogCheckpoint:
    """The log's signed checkpoint note, and when the log says it signed it."""

    note: str
    signed_at: datetime | None = None


class LogSource(Protocol):
    """Where a witness reads a log; both calls raise :class:`LogUnavailable` for what
    may work later."""

    def checkpoint(self) -> LogCheckpoint: ...

    def consistency(self, first: int, second: int) -> Sequence[bytes]: ...


Push = Callable[[str], None]
"""Sends a cosigned note on (raising :class:`LogUnavailable` when it cannot)."""


@dataclass(frozen=True)
class Seen:
    """A checkpoint observed: cosigned, or unchanged; ``age_s`` since the log signed it."""

    observation: Observation
    age_s: float | None


@dataclass(frozen=True)
class Retrying:
    """A round failed (``error``); the next is in ``delay_s``."""

    error: str
    failures: int
    delay_s: float


@dataclass(frozen=True)
class Pushed:
    """A cosigned checkpoint was accepted by the collector."""

    tree_size: int


Event = Seen | Retrying | Pushed


def backoff_s(interval_s: float, failures: int) -> float:
    """The wait after ``failures`` failed rounds in a row: the interval, doubling.

    >>> [backoff_s(10, n) for n in (1, 2, 3, 6, 7)]
    [10.0, 20.0, 40.0, 300.0, 300.0]
    """
    doubled = float(interval_s) * 2.0 ** min(failures - 1, 64)
    return min(doubled, max(float(interval_s), MAX_BACKOFF_S))


def _age(signed_at: datetime | None, now: datetime) -> float | None:
    return None if signed_at is None else (now - signed_at).total_seconds()


def run_witness(
    witness: Witness,
    log: LogSource,
    on_event: Callable[[Event], None],
    *,
    interval_s: float = 10.0,
    once: bool = False,
    push: Push | None = None,
    attempts: int = ONCE_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Observation:
    """Watch ``log`` until stopped (module docstring); with ``once``, the observation."""
    if interval_s <= 0:
        raise ValueError(f"the interval is a positive number of seconds, not {interval_s}")
    failures = 0
    unpushed: Observation | None = None
    while True:
        try:
            answer = log.checkpoint()
            seen = witness.observe(answer.note, log.consistency)
            on_event(Seen(seen, _age(answer.signed_at, now())))
            if push is not None and (seen.cosigned or unpushed is not None):
                unpushed = seen
                push(seen.note)
                unpushed = None
                on_event(Pushed(seen.checkpoint.size))
        except LogUnavailable as exc:
            failures += 1
            if once and failures >= attempts:
                raise GaveUp(f"gave up after {failures} attempts: {exc}") from None
            delay = backoff_s(interval_s, failures)
            on_event(Retrying(str(exc), failures, delay))
            sleep(delay)
            continue
        failures = 0
        if once:
            return seen
        sleep(interval_s)
