"""Running an agent in this process: a blocking agent's thread learns of its cancellation."""

from __future__ import annotations

import threading

from pydantic import BaseModel

from limit_graph.core.agents import AgentSpec
from limit_graph.core.models import ExecutionState
from limit_graph.core.running import cancel_requested, run_agent


class Nothing(BaseModel):
    pass


async def test_a_timed_out_blocking_agent_sees_its_cancel_event() -> None:
    seen: list[threading.Event | None] = []
    stopped = threading.Event()

    def patient(_: Nothing) -> Nothing:
        event = cancel_requested()
        seen.append(event)
        assert event is not None
        while not event.wait(0.01):
            pass
        stopped.set()
        return Nothing()

    agent = AgentSpec("patient", "1", "waits to be cancelled", Nothing, Nothing, patient)
    outcome = await run_agent(agent, Nothing(), timeout_s=0.1)
    assert outcome.state is ExecutionState.TIMED_OUT
    assert stopped.wait(5), "the agent's thread never learnt it was cancelled"
    assert cancel_requested() is None  # outside the agent there is none
