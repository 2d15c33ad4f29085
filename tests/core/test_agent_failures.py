"""An agent's failure is recorded with its type and logged: a bug with its traceback,
an error the platform raises on purpose (a backend's) in one line."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel

from limit_graph.core.errors import BackendError
from limit_graph.core.models import ExecutionState
from limit_graph.core.running import run_agent
from limit_graph.tasks.authoring import agent


class Empty(BaseModel):
    pass


class Nothing(BaseModel):
    pass


@agent(name="test.buggy", version="1.0.0")
async def buggy(_inputs: Empty) -> Nothing:
    return {}["missing"]  # type: ignore[no-any-return]


@agent(name="test.surrogate", version="1.0.0")
async def surrogate(_inputs: Empty) -> Nothing:
    raise ValueError("bad \ud800 text")


@agent(name="test.backend-down", version="1.0.0")
async def backend_down(_inputs: Empty) -> Nothing:
    raise BackendError("the device is in maintenance", retryable=True)


async def test_a_bug_in_an_agent_is_recorded_by_type_and_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="limit_graph.agents"):
        outcome = await run_agent(buggy.spec, Empty(), timeout_s=10)
    assert outcome.state == ExecutionState.FAILED and outcome.error is not None
    assert outcome.error.type == "KeyError"
    [record] = caplog.records
    assert record.levelno == logging.ERROR and "test.buggy" in record.getMessage()
    assert "Traceback (most recent call last)" in record.getMessage()
    assert 'return {}["missing"]' in record.getMessage()  # the frame that raised


async def test_a_backend_error_is_logged_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="limit_graph.agents"):
        outcome = await run_agent(backend_down.spec, Empty(), timeout_s=10)
    assert outcome.error is not None and outcome.error.type == "BackendError"
    assert outcome.error.retryable
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "Traceback" not in record.getMessage()
    assert "the device is in maintenance" in record.getMessage()


async def test_a_message_with_a_lone_surrogate_is_logged_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="limit_graph.agents"):
        outcome = await run_agent(surrogate.spec, Empty(), timeout_s=10)
    assert outcome.error is not None and outcome.error.type == "ValueError"
    [record] = caplog.records
    record.getMessage().encode("utf-8")  # a handler can write it
    assert "bad \\ud800 text" in record.getMessage()
