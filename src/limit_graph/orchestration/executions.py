"""The execution service: check, record, run and finish one agent execution.

An execution is recorded ``running`` (with its ledger entry) before the agent
starts and ``succeeded | failed | timed_out | cancelled`` when it ends, each in its
own transaction.  The caller waits up to ``wait_s`` for the end; past that the work
goes on in the background and the caller gets the running record.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from opentelemetry.trace import Span
from pydantic import BaseModel, ValidationError

from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
)
from limit_graph.core.logs import log_context
from limit_graph.core.models import (
    BackendKind,
    ErrorInfo,
    Execution,
    ExecutionState,
    Session,
    utcnow,
)
from limit_graph.governance.auth import Principal
from limit_graph.governance.checks import CheckContext, CheckPipeline
from limit_graph.orchestration.events import SessionEvents
from limit_graph.orchestration.inline import Outcome, run_inline
from limit_graph.orchestration.sessions import SessionCache, require_visible, visible_to
from limit_graph.orchestration.telemetry import Telemetry, tracer
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.paging import Page

__all__ = ["ExecuteCommand", "ExecutionService", "SessionStatus"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0
CANCELLED = ErrorInfo(type="Cancelled", message="cancelled before it finished")
LOCAL_INSTANCE = "local"


@dataclass(frozen=True)
class ExecuteCommand:
    agent: str
    inputs: dict[str, Any]
    backend: BackendKind | None = None
    timeout_s: float | None = None
    idempotency_key: str | None = None
    wait_s: float = 30.0


@dataclass(frozen=True)
class SessionStatus:
    session: Session
    counts: dict[str, int]
    backends: dict[str, dict[str, int]]


class ExecutionService:
    def __init__(
        self,
        storage: Storage,
        registry: AgentRegistry,
        checks: CheckPipeline,
        events: SessionEvents,
        sessions: SessionCache,
        *,
        telemetry: Telemetry | None = None,
        default_backend: BackendKind = BackendKind.LOCAL,
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.checks = checks
        self.events = events
        self.sessions = sessions
        self.telemetry = telemetry or Telemetry()
        self.default_backend = default_backend
        self._running: dict[uuid.UUID, asyncio.Task[Execution]] = {}

    def _validate_inputs(self, agent: AgentSpec, inputs: dict[str, Any]) -> BaseModel:
        try:
            return agent.input_model.model_validate(inputs)
        except ValidationError as exc:
            errors = [
                {"loc": ["body", "inputs", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            raise InvalidInput(f"inputs do not match agent {agent.name!r}", errors) from None

    async def execute(
        self, principal: Principal, session_id: uuid.UUID, command: ExecuteCommand
    ) -> Execution:
        """Run ``command`` in the session and return the execution, finished or not.

        >>> # done = await executions.execute(p, sid, ExecuteCommand("echo", {"x": 1}))
        """
        if command.agent not in self.registry:
            raise InvalidInput(
                f"no agent named {command.agent!r}",
                [{"loc": ["body", "agent"], "msg": "unknown agent", "type": "value_error"}],
            )
        agent = self.registry.get(command.agent)
        validated = self._validate_inputs(agent, command.inputs)
        session = require_visible(await self.sessions.load(session_id), principal, session_id)
        if command.idempotency_key is not None:
            earlier = await self.storage.find_execution_by_key(session_id, command.idempotency_key)
            if earlier is not None:
                return earlier
        backend = command.backend or session.config.default_backend or self.default_backend
        denial = await self.checks.evaluate(
            CheckContext(principal, session, agent, backend, command.inputs)
        )
        if denial is not None:
            await self._deny(principal, session_id, agent, backend, denial)
        if backend is not BackendKind.LOCAL:
            raise InvalidInput(
                f"no runner serves the {backend.value!r} backend on this platform yet; "
                "use the 'local' backend",
                [{"loc": ["body", "backend"], "msg": "no runner", "type": "value_error"}],
            )
        now = utcnow()
        new = Execution(
            id=uuid.uuid4(),
            session_id=session_id,
            agent=agent.name,
            agent_version=agent.version,
            backend=backend,
            instance=LOCAL_INSTANCE,
            state=ExecutionState.RUNNING,
            inputs=command.inputs,
            attempts=1,
            submitted_at=now,
            started_at=now,
            idempotency_key=command.idempotency_key,
            timeout_s=command.timeout_s or session.config.timeout_s,
            actor=principal.name,
        )
        if not agent.is_async and not agent.blocking:
            return await self._run_at_once(agent, validated, new)
        execution = await self._write(new, "execution.started", require_active_session=True)
        if execution.id != new.id:
            return execution  # the same idempotency key won a race
        self.telemetry.running.labels(execution.backend.value).inc()
        task = asyncio.create_task(self._run(agent, validated, execution))
        self._running[execution.id] = task
        task.add_done_callback(lambda _: self._running.pop(execution.id, None))
        done, _ = await asyncio.wait({task}, timeout=command.wait_s)
        return task.result() if done else execution

    async def _run_at_once(
        self, agent: AgentSpec, inputs: BaseModel, started: Execution
    ) -> Execution:
        """A trivial agent runs before anything is written; its start and end are then
        recorded in one write, which costs half of recording them apart."""
        with self._observed(agent, started) as span:
            outcome = await run_inline(agent, inputs, None)
            span.set_attribute("limit.state", outcome.state.value)
            final = self._finished(started, outcome)
            stored = await self._write(
                final,
                f"execution.{outcome.state.value}",
                require_active_session=True,
                started=started,
            )
        if stored.id == final.id:
            self._record(stored, was_running=False)
        return stored

    async def _write(
        self,
        execution: Execution,
        action: str,
        *,
        require_active_session: bool = False,
        started: Execution | None = None,
    ) -> Execution:
        stored = await self.storage.write_execution(
            execution,
            actor=execution.actor,
            action=action,
            require_active_session=require_active_session,
            started=started,
        )
        self.events.notify()
        return stored

    async def _deny(
        self,
        principal: Principal,
        session_id: uuid.UUID,
        agent: AgentSpec,
        backend: BackendKind,
        denial: PolicyDenied,
    ) -> NoReturn:
        """Record the denial in the ledger, count it, and raise it."""
        await self.storage.write_entry(
            EntryDraft(
                actor=principal.name,
                action="execution.denied",
                resource_type="execution",
                resource_id=agent.name,
                session_id=session_id,
                payload={
                    "agent": agent.name,
                    "backend": backend.value,
                    "policy_ids": denial.policy_ids,
                    "reason": denial.detail,
                },
            )
        )
        self.events.notify()
        for policy_id in denial.policy_ids:
            self.telemetry.denials.labels(policy_id).inc()
        raise denial

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
                outcome = await run_inline(agent, inputs, execution.timeout_s or DEFAULT_TIMEOUT_S)
            except asyncio.CancelledError:
                outcome = Outcome(ExecutionState.CANCELLED, error=CANCELLED)
            span.set_attribute("limit.state", outcome.state.value)
            finishing = asyncio.ensure_future(self._finish(execution, outcome))
            try:
                finished = await asyncio.shield(finishing)
            except asyncio.CancelledError:
                finished = await finishing  # cancelled while recording: record all the same
        self._record(finished)
        if outcome.state is not ExecutionState.SUCCEEDED:
            log.info("execution %s ended %s", execution.id, outcome.state.value)
        return finished

    def _record(self, execution: Execution, *, was_running: bool = True) -> None:
        backend = execution.backend.value
        if was_running:
            self.telemetry.running.labels(backend).dec()
        self.telemetry.executions.labels(execution.agent, backend, execution.state.value).inc()
        if execution.started_at and execution.finished_at:
            seconds = (execution.finished_at - execution.started_at).total_seconds()
            self.telemetry.execution_seconds.labels(execution.agent, backend).observe(seconds)

    @staticmethod
    def _finished(execution: Execution, outcome: Outcome) -> Execution:
        return execution.model_copy(
            update={
                "state": outcome.state,
                "result": outcome.result,
                "error": outcome.error,
                "finished_at": utcnow(),
            }
        )

    async def _finish(self, execution: Execution, outcome: Outcome) -> Execution:
        final = self._finished(execution, outcome)
        return await self._write(final, f"execution.{outcome.state.value}")

    async def cancel(
        self, principal: Principal, session_id: uuid.UUID, execution_id: uuid.UUID
    ) -> Execution:
        """Stop an unfinished execution; it ends ``cancelled``.

        Work running in this process is cancelled where it stands (an async agent at
        its next await; a sync agent's thread runs on, its result discarded).
        """
        execution = await self.get(principal, session_id, execution_id)
        if execution.state.is_final:
            raise Conflict(f"execution {execution_id} already {execution.state.value}")
        task = self._running.get(execution_id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
            return await self.get(principal, session_id, execution_id)
        async with self.events.write() as tx:
            current = await tx.get_execution(execution_id)
            if current is None or current.state.is_final:
                return current or execution
            return await tx.save_execution(
                current.model_copy(
                    update={
                        "state": ExecutionState.CANCELLED,
                        "error": CANCELLED,
                        "finished_at": utcnow(),
                    }
                ),
                actor=principal.name,
                action="execution.cancelled",
            )

    async def get(
        self, principal: Principal, session_id: uuid.UUID, execution_id: uuid.UUID
    ) -> Execution:
        session = await self.storage.get_session(session_id)
        execution = await self.storage.get_execution(execution_id)
        if (
            not visible_to(session, principal)
            or execution is None
            or execution.session_id != session_id
        ):
            raise NotFound(f"no execution {execution_id} in session {session_id}")
        return execution

    async def results(
        self,
        principal: Principal,
        session_id: uuid.UUID,
        *,
        state: ExecutionState | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Execution]:
        await self._session(principal, session_id)
        return await self.storage.list_executions(
            session_id, state=state, limit=limit, cursor=cursor
        )

    async def status(self, principal: Principal, session_id: uuid.UUID) -> SessionStatus:
        session = await self._session(principal, session_id)
        counts = {s.value: 0 for s in ExecutionState}
        backends: dict[str, dict[str, int]] = {}
        for (state, backend), n in (await self.storage.count_executions(session_id)).items():
            counts[state.value] += n
            backends.setdefault(backend, {s.value: 0 for s in ExecutionState})[state.value] += n
        return SessionStatus(session, counts, backends)

    async def _session(self, principal: Principal, session_id: uuid.UUID) -> Session:
        return require_visible(await self.storage.get_session(session_id), principal, session_id)

    async def close(self) -> None:
        """Cancel work still running; each is recorded ``cancelled``."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
