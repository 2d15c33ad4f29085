"""Run an agent in this process: the local backend's inline path, and runners.

The agent's function is called directly (not through the Prefect engine, which
costs milliseconds per call); async agents run on the event loop, sync ones in a
worker thread so the loop never blocks, except those declared non-blocking (trivial
functions such as ``echo``, for which the thread hop would cost more than the work).
The outcome is a final state with either the validated result or the error.  While
an agent runs, :func:`current_instance` names the backend instance its execution was
routed to, so what it resolves (an IBM target's credentials) can be the instance's own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from limit_graph.core.agents import AgentSpec
from limit_graph.core.canonical import escape_surrogates, ijson_errors
from limit_graph.core.errors import BackendError, LimitError
from limit_graph.core.models import ErrorInfo, ExecutionState

log = logging.getLogger("limit_graph.agents")

__all__ = [
    "Outcome",
    "cancel_requested",
    "current_instance",
    "error_info",
    "run_agent",
    "running_on",
]


@dataclass(frozen=True)
class Outcome:
    state: ExecutionState
    result: Any = None
    error: ErrorInfo | None = None


def error_info(exc: BaseException) -> ErrorInfo:
    retryable = isinstance(exc, BackendError) and exc.retryable
    message = escape_surrogates(str(exc) or type(exc).__name__)  # it is recorded as JSON
    return ErrorInfo(type=type(exc).__name__, message=message[:4096], retryable=retryable)


_cancel: ContextVar[threading.Event | None] = ContextVar("limit_cancel", default=None)


def cancel_requested() -> threading.Event | None:
    """In a blocking agent's thread: set once its execution is cancelled or timed out.

    A thread cannot be stopped from outside, so long-running work (a device job) polls
    this and stops itself; ``None`` outside an agent.
    """
    return _cancel.get()


_instance: ContextVar[str | None] = ContextVar("limit_instance", default=None)


def current_instance() -> str | None:
    """The backend instance the execution being run was routed to; ``None`` outside one
    (the API validating inputs, a script)."""
    return _instance.get()


@contextmanager
def running_on(instance: str | None) -> Iterator[None]:
    """Make :func:`current_instance` answer ``instance`` in this context (and in the
    threads and tasks started from it).

    >>> with running_on("ibm-east"):
    ...     current_instance()
    'ibm-east'
    """
    token = _instance.set(instance)
    try:
        yield
    finally:
        _instance.reset(token)


async def _call(agent: AgentSpec, inputs: BaseModel) -> Any:
    if agent.is_async:
        return await agent.fn(inputs)
    if not agent.blocking:
        return agent.fn(inputs)
    event = threading.Event()
    token = _cancel.set(event)  # to_thread copies this context into the worker thread
    try:
        return await asyncio.to_thread(agent.fn, inputs)
    except asyncio.CancelledError:
        event.set()
        raise
    finally:
        _cancel.reset(token)


def _not_ijson(agent: AgentSpec, problem: dict[str, Any]) -> ErrorInfo:
    where = ".".join(str(part) for part in problem["loc"])
    return ErrorInfo(
        type="InvalidOutput",
        message=f"agent {agent.name!r} returned a result that is not I-JSON, so it cannot "
        f"be recorded: {problem['msg']} at {where}",
    )


def _log_failure(agent: AgentSpec, exc: Exception) -> None:
    """An agent's failure in the log: one line for an error the platform raises on
    purpose (a backend's, say), with its traceback for anything else (a bug, in the
    agent or below it); the execution records its type and message either way.  Lone
    surrogates in a message are escaped, as in the record: no log handler can write them.
    """
    if isinstance(exc, LimitError):
        shown = escape_surrogates(str(exc))
        log.warning("agent %s failed: %s: %s", agent.name, type(exc).__name__, shown)
    else:
        trace = escape_surrogates("".join(traceback.format_exception(exc)).rstrip())
        log.error("agent %s raised %s\n%s", agent.name, type(exc).__name__, trace)


async def run_agent(agent: AgentSpec, inputs: BaseModel, timeout_s: float | None) -> Outcome:
    """Run ``agent`` on validated ``inputs``; never raises except on cancellation.  The
    agent sees this context's :func:`current_instance` (``wait_for``'s task copies it)."""
    try:
        raw = await asyncio.wait_for(_call(agent, inputs), timeout=timeout_s)
    except TimeoutError:
        return Outcome(
            ExecutionState.TIMED_OUT,
            error=ErrorInfo(type="Timeout", message=f"no result within {timeout_s} s"),
        )
    except Exception as exc:
        _log_failure(agent, exc)
        return Outcome(ExecutionState.FAILED, error=error_info(exc))
    # Checked before validation: the JSON dump below would turn NaN into null unseen.
    plain = raw.model_dump() if isinstance(raw, BaseModel) else raw
    if problems := ijson_errors(plain, ["result"]):
        return Outcome(ExecutionState.FAILED, error=_not_ijson(agent, problems[0]))
    try:
        result = agent.output_model.model_validate(plain).model_dump(mode="json")
    except ValidationError as exc:
        return Outcome(
            ExecutionState.FAILED,
            error=ErrorInfo(
                type="InvalidOutput",
                message=f"agent {agent.name!r} returned output that does not match its "
                f"schema: {exc.errors(include_url=False)[0]['msg']}",
            ),
        )
    return Outcome(ExecutionState.SUCCEEDED, result=result)
