"""General-purpose agents: ``echo``, ``sleep`` and ``fail``.

They exist for smoke tests and for exercising the platform's own paths: results,
timeouts, cancellation and error handling.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from limit_graph.core.agents import AgentSpec
from limit_graph.core.errors import BackendError
from limit_graph.core.models import BackendKind

__all__ = ["AGENTS"]

ALL_BACKENDS = (BackendKind.LOCAL, BackendKind.REMOTE, BackendKind.QUANTUM)


class EchoIO(BaseModel):
    """Any JSON object; ``echo`` hands it back unchanged."""

    model_config = ConfigDict(extra="allow")


class SleepInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=3600, description="How long to sleep.")


class SleepOutput(BaseModel):
    slept_s: float


class FailInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(default="failed on purpose", max_length=4096)
    retryable: bool = False


class Nothing(BaseModel):
    """``fail`` never returns."""


@task(name="echo", persist_result=False)
def echo(inputs: EchoIO) -> EchoIO:
    """Return the inputs unchanged."""
    return inputs


@task(name="sleep", persist_result=False)
async def sleep(inputs: SleepInput) -> SleepOutput:
    """Sleep without blocking the event loop; cancellable."""
    await asyncio.sleep(inputs.seconds)
    return SleepOutput(slept_s=inputs.seconds)


@task(name="fail", persist_result=False)
def fail(inputs: FailInput) -> Any:
    """Raise a backend error, retryable or not."""
    raise BackendError(inputs.message, retryable=inputs.retryable)


def agreement(results: dict[str, Any]) -> dict[str, Any]:
    """Fan-out aggregate of ``echo``: whether every instance returned the same value."""
    values = list(results.values())
    return {"agree": all(v == values[0] for v in values), "value": values[0], "n": len(values)}


def longest(results: dict[str, Any]) -> dict[str, Any]:
    """Fan-out aggregate of ``sleep``: the longest sleep."""
    return {"slept_s": max(r["slept_s"] for r in results.values()), "n": len(results)}


AGENTS = (
    AgentSpec(
        name="echo",
        version="1.0.0",
        description="Returns its inputs unchanged.",
        input_model=EchoIO,
        output_model=EchoIO,
        fn=echo.fn,
        backends=ALL_BACKENDS,
        deterministic=True,
        blocking=False,
        aggregate=agreement,
        task=echo,
    ),
    AgentSpec(
        name="sleep",
        version="1.0.0",
        description="Sleeps for `seconds`; for timeouts and cancellation.",
        input_model=SleepInput,
        output_model=SleepOutput,
        fn=sleep.fn,
        backends=ALL_BACKENDS,
        aggregate=longest,
        task=sleep,
    ),
    AgentSpec(
        name="fail",
        version="1.0.0",
        description="Always fails with `message`; for error paths.",
        input_model=FailInput,
        output_model=Nothing,
        fn=fail.fn,
        backends=ALL_BACKENDS,
        task=fail,
    ),
)
