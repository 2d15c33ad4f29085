"""Local work run inline, in this process.

It is recorded ``running`` (with its ledger entry) before the agent starts and
``succeeded | failed | timed_out | cancelled`` when it ends, each in its own
transaction -- except a trivial agent (sync, not blocking), which runs first and has
its start and end recorded in one write, which costs half of recording them apart.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.trace import Span
from pydantic import BaseModel

from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.logs import log_context
from limit_graph.core.models import (
    BackendKind,
    CheckResult,
    ErrorInfo,
    Execution,
    ExecutionState,
    Session,
    utcnow,
)
from limit_graph.core.run_context import run_context, seed_of
from limit_graph.core.running import Outcome, run_agent
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.admission import validate_inputs
from limit_graph.orchestration.commands import ExecuteCommand
from limit_graph.orchestration.recording import ExecutionRecorder, Reservation
from limit_graph.orchestration.telemetry import tracer

__all__ = ["CANCELLED", "DEFAULT_TIMEOUT_S", "INTERRUPTED", "LOCAL_INSTANCE", "InlineRunner"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0
CANCELLED = ErrorInfo(type="Cancelled", message="cancelled before it finished")
INTERRUPTED = ErrorInfo(
    type="Interrupted", message="the platform stopped while it ran", retryable=True
)
LOCAL_INSTANCE = "local"


class InlineRunner:
    def __init__(self, registry: AgentRegistry, recorder: ExecutionRecorder) -> None:
        self.registry = registry
        self.recorder = recorder
        self._running: dict[uuid.UUID, asyncio.Task[Execution]] = {}
        self._closing = False

    def task(self, execution_id: uuid.UUID) -> asyncio.Task[Execution] | None:
        """The task running ``execution_id`` here, if any."""
        return self._running.get(execution_id)

    async def run(
        self,
        principal: Principal,
        session: Session,
        agent: AgentSpec,
        validated: BaseModel,
        command: ExecuteCommand,
        checks: Sequence[CheckResult] = (),
        *,
        execution_id: uuid.UUID | None = None,
        sensitive: bool = False,
        reservation: Reservation | None = None,
    ) -> Execution:
        """Run the agent here; the record, finished or (past ``wait_s``) running.  The
        ``reservation``'s claims are taken before the agent starts, or, for a quick
        deterministic agent, by its one write (see :meth:`_run_at_once`)."""
        now = utcnow()
        new = Execution(
            id=execution_id or uuid.uuid4(),
            session_id=session.id,
            agent=agent.name,
            agent_version=agent.version,
            backend=BackendKind.LOCAL,
            instance=LOCAL_INSTANCE,
            state=ExecutionState.RUNNING,
            inputs=command.inputs,
            attempts=1,
            submitted_at=now,
            started_at=now,
            idempotency_key=command.idempotency_key,
            timeout_s=command.timeout_s or session.config.timeout_s,
            actor=principal.name,
            workflow=command.workflow,
            checks=list(checks),
            sensitive=sensitive,
            replay_of=command.replay_of,
        )
        if not agent.is_async and not agent.blocking:
            if reservation is not None and not agent.deterministic:
                await self.recorder.reserve(reservation)
            return await self._run_at_once(agent, validated, new, reservation)
        execution = await self.recorder.write(
            new, "execution.started", require_active_session=True, reservation=reservation
        )
        if execution.id != new.id:
            return execution  # the same idempotency key won a race
        task = self._start(agent, validated, execution)
        done, _ = await asyncio.wait({task}, timeout=command.wait_s)
        return task.result() if done else execution

    def _start(
        self, agent: AgentSpec, validated: BaseModel, execution: Execution
    ) -> asyncio.Task[Execution]:
        self.recorder.telemetry.running.labels(execution.backend.value).inc()
        task = asyncio.create_task(self._run(agent, validated, execution))
        self._running[execution.id] = task
        task.add_done_callback(lambda _: self._running.pop(execution.id, None))
        return task

    async def carry_on(self, execution: Execution) -> Execution:
        """Local work a stopped process left unfinished (recorded ``running`` or
        ``queued``, run by nobody now): run it again here as its next attempt, in the
        same record.  A final execution is returned as it is."""
        current = await self.recorder.storage.get_execution(execution.id) or execution
        if current.state.is_final or current.id in self._running:
            return current
        agent = self.registry.get(current.agent, current.agent_version)
        validated = validate_inputs(agent, current.inputs)
        restarted = current.model_copy(
            update={
                "state": ExecutionState.RUNNING,
                "instance": LOCAL_INSTANCE,
                "attempts": current.attempts + 1,
                "started_at": utcnow(),
                "error": None,
            }
        )
        stored = await self.recorder.write(restarted, "execution.started")
        self._start(agent, validated, stored)
        return stored

    async def _run_at_once(
        self,
        agent: AgentSpec,
        inputs: BaseModel,
        started: Execution,
        reservation: Reservation | None = None,
    ) -> Execution:
        """Run a quick sync agent on the loop and record it once, started and ended.

        Its quota claims were taken before it ran, unless it is deterministic: then they
        ride its one write, and if one does not fit the result is dropped unrecorded
        (:class:`~limit_graph.storage.quotas.ClaimRefused`).  Running such an agent --
        which neither blocks nor burns CPU, and whose result the platform already treats
        as standing for its run (the result cache) -- uses nothing a quota counts, so
        refusing after it is refusing before it, without a write of its own.
        """
        with self._observed(agent, started) as span:
            outcome = await run_agent(agent, inputs, None)
            span.set_attribute("limit.state", outcome.state.value)
            final = _finished(started, outcome, inputs)
            stored = await self.recorder.write(
                final,
                f"execution.{outcome.state.value}",
                require_active_session=True,
                started=started,
                reservation=reservation,
            )
        if stored.id == final.id:
            self.recorder.finished(stored, was_running=False)
        return stored

    @contextmanager
    def _observed(self, agent: AgentSpec, execution: Execution) -> Iterator[Span]:
        """Log context and a trace span (a child of the request's) around one execution."""
        attributes = {
            "limit.session_id": str(execution.session_id),
            "limit.execution_id": str(execution.id),
            "limit.agent": agent.name,
            "limit.backend": execution.backend.value,
        }
        with (
            log_context(session_id=str(execution.session_id), execution_id=str(execution.id)),
            tracer.start_as_current_span(f"execute {agent.name}", attributes=attributes) as span,
        ):
            yield span

    async def _run(self, agent: AgentSpec, inputs: BaseModel, execution: Execution) -> Execution:
        with self._observed(agent, execution) as span:
            try:
                outcome = await run_agent(agent, inputs, execution.timeout_s or DEFAULT_TIMEOUT_S)
            except asyncio.CancelledError:
                if self._closing and execution.workflow is not None:
                    return execution  # left running: the workflow carries it on at next start
                if self._closing:
                    outcome = Outcome(ExecutionState.FAILED, error=INTERRUPTED)
                else:
                    outcome = Outcome(ExecutionState.CANCELLED, error=CANCELLED)
            span.set_attribute("limit.state", outcome.state.value)
            final = _finished(execution, outcome, inputs)
            finishing = asyncio.ensure_future(
                self.recorder.write(final, f"execution.{outcome.state.value}")
            )
            try:
                finished = await asyncio.shield(finishing)
            except asyncio.CancelledError:
                finished = await finishing  # cancelled while recording: record all the same
        self.recorder.finished(finished)
        if outcome.state is not ExecutionState.SUCCEEDED:
            log.info("execution %s ended %s", execution.id, outcome.state.value)
        return finished

    async def cancel(self, execution_id: uuid.UUID) -> bool:
        """Cancel work running here (an async agent at its next await; a sync agent's
        thread runs on, its result discarded); whether it was running here."""
        task = self._running.get(execution_id)
        if task is None:
            return False
        task.cancel()
        await asyncio.wait({task})
        return True

    async def close(self) -> None:
        """Stop work still running here; each is recorded ``failed`` with the retryable
        error ``Interrupted`` (the platform stopped, nobody cancelled it)."""
        self._closing = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _finished(execution: Execution, outcome: Outcome, inputs: BaseModel) -> Execution:
    """The final record, with the run's context (a sensitive one's seed stays sealed)."""
    seed = None if execution.sensitive else seed_of(inputs)
    return execution.model_copy(
        update={
            "state": outcome.state,
            "result": outcome.result,
            "error": outcome.error,
            "finished_at": utcnow(),
            "run_context": run_context(seed),
        }
    )
