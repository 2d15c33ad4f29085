"""The execution service: check, record, run and finish one agent execution.

Local work runs inline in this process: it is recorded ``running`` (with its ledger
entry) before the agent starts and ``succeeded | failed | timed_out | cancelled``
when it ends, each in its own transaction (a trivial agent's two records in one).
Remote and quantum work, and local work asked not to run inline, is recorded
``queued`` on the instance the router picks and handed to the dispatcher, whose
runners claim it.  Either way the caller waits up to ``wait_s`` for the end; past
that the work goes on and the caller gets the unfinished record.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
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
    WorkflowTag,
    utcnow,
)
from limit_graph.core.running import Outcome, run_agent
from limit_graph.core.settings import BackendsSettings, DispatchSettings
from limit_graph.governance.auth import Principal
from limit_graph.governance.checks import CheckContext, CheckPipeline
from limit_graph.orchestration.cache import ResultCache, cache_key
from limit_graph.orchestration.dispatch import Dispatcher
from limit_graph.orchestration.events import SessionEvents
from limit_graph.orchestration.router import Router, target_family
from limit_graph.orchestration.sessions import SessionCache, require_visible, visible_to
from limit_graph.orchestration.telemetry import Telemetry, tracer
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.paging import Page

__all__ = ["ExecuteCommand", "ExecutionService", "FanOutResult", "SessionStatus"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0
CANCELLED = ErrorInfo(type="Cancelled", message="cancelled before it finished")
INTERRUPTED = ErrorInfo(
    type="Interrupted", message="the platform stopped while it ran", retryable=True
)
LOCAL_INSTANCE = "local"
WAIT_SLICE_S = 30.0


@dataclass(frozen=True)
class ExecuteCommand:
    agent: str
    inputs: dict[str, Any]
    backend: BackendKind | None = None
    timeout_s: float | None = None
    idempotency_key: str | None = None
    wait_s: float = 30.0
    inline: bool | None = None
    """Local work only: ``False`` sends it to the ``local`` pool's runners."""
    allow_cached: bool = False
    fan_out: tuple[str, ...] = ()
    workflow: WorkflowTag | None = None
    """Set by the workflow engine: the run, step and map item this execution is for."""
    new_key: bool = False
    """The caller made ``idempotency_key`` just now (a workflow step's first try): no
    earlier execution can have it, so it is not looked up (the write still checks)."""


@dataclass(frozen=True)
class FanOutResult:
    """The same task on several instances, and the agent's aggregate of their results."""

    executions: list[Execution]
    aggregate: Any

    @property
    def finished(self) -> bool:
        return all(e.state.is_final for e in self.executions)


@dataclass(frozen=True)
class SessionStatus:
    session: Session
    counts: dict[str, int]
    backends: dict[str, dict[str, int]]
    updated_at: datetime


def _refuse_ineffective(agent: AgentSpec, backend: BackendKind, command: ExecuteCommand) -> None:
    """A request setting that would change nothing is refused (422), never ignored."""
    ineffective: dict[str, str] = {}
    if command.inline and (backend is not BackendKind.LOCAL or command.fan_out):
        ineffective["inline"] = "only local work that is not fanned out runs inline"
    if command.allow_cached and not agent.deterministic:
        ineffective["allow_cached"] = f"agent {agent.name!r} is not deterministic: never cached"
    elif command.allow_cached and command.fan_out:
        ineffective["allow_cached"] = "fan-out executions are never answered from the cache"
    if ineffective:
        raise InvalidInput(
            "; ".join(f"{name}: {why}" for name, why in ineffective.items()),
            [
                {"loc": ["body", name], "msg": why, "type": "value_error"}
                for name, why in ineffective.items()
            ],
        )


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
        router: Router | None = None,
        dispatch: DispatchSettings | None = None,
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.checks = checks
        self.events = events
        self.sessions = sessions
        self.telemetry = telemetry or Telemetry()
        self.default_backend = default_backend
        self.router = router or Router.from_settings(BackendsSettings())
        self.cache = ResultCache(storage)
        self.dispatcher = Dispatcher(
            storage,
            self.router,
            self._write,
            dispatch or DispatchSettings(),
            telemetry=self.telemetry,
            on_final=self._dispatched_final,
        )
        self._running: dict[uuid.UUID, asyncio.Task[Execution]] = {}
        self._cache_on_success: dict[uuid.UUID, str] = {}
        self._closing = False

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
        agent, validated, session, backend = await self._admit(principal, session_id, command)
        if command.idempotency_key is not None and not command.new_key:
            earlier = await self.storage.find_execution_by_key(session_id, command.idempotency_key)
            if earlier is not None:
                return earlier
        key = cache_key(agent, command.inputs, backend) if self._cacheable(agent, command) else None
        if key is not None:
            hit = await self._from_cache(key, principal, session, agent, backend, command)
            if hit is not None:
                return hit
        if backend is BackendKind.LOCAL and self._inline(agent, command):
            execution = await self._execute_inline(principal, session, agent, validated, command)
            if key is not None and execution.state is ExecutionState.SUCCEEDED:
                await self.cache.store(key, execution)
            return execution
        family = target_family(backend, validated)
        depth = self.dispatcher.depth
        instance = self.router.route(backend, agent.name, session_id, depth, family=family)[0]
        queued = await self._enqueue(
            principal, session, agent, backend, instance, command, family=family
        )
        if key is not None and queued.state is ExecutionState.QUEUED:
            self._cache_on_success[queued.id] = key
        return await self._await_final(queued, command.wait_s)

    async def execute_fan_out(
        self, principal: Principal, session_id: uuid.UUID, command: ExecuteCommand
    ) -> FanOutResult:
        """Run the task once on each instance of ``command.fan_out``; no failover between
        them.  The aggregate is the agent's, over the results that succeeded."""
        agent, validated, session, backend = await self._admit(principal, session_id, command)
        family = target_family(backend, validated)
        names = list(dict.fromkeys(command.fan_out))
        for name in names:
            info = self.router.get(name)
            if info.kind is not backend:
                raise InvalidInput(
                    f"instance {name!r} is a {info.kind.value} instance, not {backend.value}",
                    [{"loc": ["body", "fan_out"], "msg": "wrong kind", "type": "value_error"}],
                )
            if not info.serves(agent.name, family):
                raise InvalidInput(
                    f"instance {name!r} does not serve agent {agent.name!r}"
                    + (f" on {family} targets" if family else ""),
                    [{"loc": ["body", "fan_out"], "msg": "not served", "type": "value_error"}],
                )
        queued = [
            await self._enqueue(principal, session, agent, backend, name, command, pinned=True)
            for name in names
        ]
        finished = await asyncio.gather(*(self._await_final(e, command.wait_s) for e in queued))
        results = {e.instance: e.result for e in finished if e.state is ExecutionState.SUCCEEDED}
        aggregate = agent.aggregate(results) if agent.aggregate and results else None
        return FanOutResult(list(finished), aggregate)

    async def _admit(
        self, principal: Principal, session_id: uuid.UUID, command: ExecuteCommand
    ) -> tuple[AgentSpec, BaseModel, Session, BackendKind]:
        """Validate the request and run the pre-task checks; a denial is recorded."""
        try:
            agent = self.registry.find(command.agent)
        except NotFound as exc:  # its detail names the versions a known name has
            raise InvalidInput(
                exc.detail,
                [{"loc": ["body", "agent"], "msg": "unknown agent", "type": "value_error"}],
            ) from None
        validated = self._validate_inputs(agent, command.inputs)
        session = require_visible(await self.sessions.load(session_id), principal, session_id)
        backend = command.backend or session.config.default_backend or self.default_backend
        if command.fan_out and command.backend is None:
            backend = self.router.get(command.fan_out[0]).kind
        if backend not in agent.backends:
            raise InvalidInput(
                f"agent {agent.name!r} does not run on the {backend.value!r} backend "
                f"(it runs on {', '.join(b.value for b in agent.backends)})",
                [{"loc": ["body", "backend"], "msg": "not supported", "type": "value_error"}],
            )
        _refuse_ineffective(agent, backend, command)
        denial = await self.checks.evaluate(
            CheckContext(principal, session, agent, backend, command.inputs)
        )
        if denial is not None:
            await self._deny(principal, session_id, agent, backend, denial)
        return agent, validated, session, backend

    @staticmethod
    def _cacheable(agent: AgentSpec, command: ExecuteCommand) -> bool:
        """Asked for by the request, or by an agent's own ``allow_cached`` input."""
        asked = command.allow_cached or command.inputs.get("allow_cached") is True
        return asked and agent.deterministic and not command.fan_out

    @staticmethod
    def _inline(agent: AgentSpec, command: ExecuteCommand) -> bool:
        return command.inline if command.inline is not None else agent.inline

    async def _from_cache(
        self,
        key: str,
        principal: Principal,
        session: Session,
        agent: AgentSpec,
        backend: BackendKind,
        command: ExecuteCommand,
    ) -> Execution | None:
        original = await self.cache.lookup(key)
        if original is None:
            return None
        now = utcnow()
        hit = Execution(
            id=uuid.uuid4(),
            session_id=session.id,
            agent=agent.name,
            agent_version=agent.version,
            backend=backend,
            instance=original.instance,
            state=ExecutionState.SUCCEEDED,
            inputs=command.inputs,
            result=original.result,
            attempts=0,
            cache_hit=True,
            cached_from=original.id,
            submitted_at=now,
            started_at=now,
            finished_at=now,
            idempotency_key=command.idempotency_key,
            timeout_s=command.timeout_s or session.config.timeout_s,
            actor=principal.name,
            workflow=command.workflow,
        )
        stored = await self._write(hit, "execution.cache_hit", require_active_session=True)
        if stored.id == hit.id:
            self.telemetry.cache_hits.inc()
            self._record(stored, was_running=False)
        return stored

    async def _enqueue(
        self,
        principal: Principal,
        session: Session,
        agent: AgentSpec,
        backend: BackendKind,
        instance: str,
        command: ExecuteCommand,
        *,
        pinned: bool = False,
        family: str | None = None,
    ) -> Execution:
        key = command.idempotency_key
        if key is not None and pinned:
            key = f"{key}@{instance}"
        queued = Execution(
            id=uuid.uuid4(),
            session_id=session.id,
            agent=agent.name,
            agent_version=agent.version,
            backend=backend,
            instance=instance,
            state=ExecutionState.QUEUED,
            inputs=command.inputs,
            attempts=1,
            submitted_at=utcnow(),
            idempotency_key=key,
            timeout_s=command.timeout_s or session.config.timeout_s or DEFAULT_TIMEOUT_S,
            actor=principal.name,
            workflow=command.workflow,
        )
        stored = await self._write(queued, "execution.queued", require_active_session=True)
        if stored.id == queued.id:
            self.dispatcher.submit(stored, pinned=pinned, family=family)
        return stored

    async def wait_final(self, execution: Execution) -> Execution:
        """The execution's final record, however long it takes (its own timeout bounds
        it): work running in this process is awaited, dispatched work is waited for."""
        while not execution.state.is_final:
            task = self._running.get(execution.id)
            if task is not None:
                return await asyncio.shield(task)
            final = await self.dispatcher.wait_final(execution.id, WAIT_SLICE_S)
            if final is not None:
                return final
            stored = await self.storage.get_execution(execution.id)
            execution = stored or execution
        return execution

    async def _await_final(self, execution: Execution, wait_s: float) -> Execution:
        if execution.state.is_final or wait_s <= 0:
            return execution
        final = await self.dispatcher.wait_final(execution.id, wait_s)
        return final or await self.storage.get_execution(execution.id) or execution

    async def _dispatched_final(self, execution: Execution) -> None:
        self._record(execution, was_running=False)
        key = self._cache_on_success.pop(execution.id, None)
        if key is not None and execution.state is ExecutionState.SUCCEEDED:
            await self.cache.store(key, execution)

    async def _execute_inline(
        self,
        principal: Principal,
        session: Session,
        agent: AgentSpec,
        validated: BaseModel,
        command: ExecuteCommand,
    ) -> Execution:
        session_id = session.id
        now = utcnow()
        new = Execution(
            id=uuid.uuid4(),
            session_id=session_id,
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
        )
        if not agent.is_async and not agent.blocking:
            return await self._run_at_once(agent, validated, new)
        execution = await self._write(new, "execution.started", require_active_session=True)
        if execution.id != new.id:
            return execution  # the same idempotency key won a race
        task = self._start_inline(agent, validated, execution)
        done, _ = await asyncio.wait({task}, timeout=command.wait_s)
        return task.result() if done else execution

    def _start_inline(
        self, agent: AgentSpec, validated: BaseModel, execution: Execution
    ) -> asyncio.Task[Execution]:
        self.telemetry.running.labels(execution.backend.value).inc()
        task = asyncio.create_task(self._run(agent, validated, execution))
        self._running[execution.id] = task
        task.add_done_callback(lambda _: self._running.pop(execution.id, None))
        return task

    async def carry_on(self, execution: Execution) -> Execution:
        """Local work a stopped process left unfinished (recorded ``running`` or
        ``queued``, run by nobody now): run it again here as its next attempt, in the
        same record.  A final execution is returned as it is."""
        current = await self.storage.get_execution(execution.id) or execution
        if current.state.is_final or current.id in self._running:
            return current
        agent = self.registry.get(current.agent, current.agent_version)
        validated = self._validate_inputs(agent, current.inputs)
        restarted = current.model_copy(
            update={
                "state": ExecutionState.RUNNING,
                "instance": LOCAL_INSTANCE,
                "attempts": current.attempts + 1,
                "started_at": utcnow(),
                "error": None,
            }
        )
        stored = await self._write(restarted, "execution.started")
        self._start_inline(agent, validated, stored)
        return stored

    async def _run_at_once(
        self, agent: AgentSpec, inputs: BaseModel, started: Execution
    ) -> Execution:
        """A trivial agent runs before anything is written; its start and end are then
        recorded in one write, which costs half of recording them apart."""
        with self._observed(agent, started) as span:
            outcome = await run_agent(agent, inputs, None)
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
                outcome = await run_agent(agent, inputs, execution.timeout_s or DEFAULT_TIMEOUT_S)
            except asyncio.CancelledError:
                if self._closing and execution.workflow is not None:
                    return execution  # left running: the workflow carries it on at next start
                if self._closing:
                    outcome = Outcome(ExecutionState.FAILED, error=INTERRUPTED)
                else:
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
        dispatched = await self.dispatcher.cancel(execution_id, principal.name)
        if dispatched is not None:
            return dispatched
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
        # Every change of the session or its executions is a ledger entry; the latest is
        # read after the counts, so it is at least as new as any change they include.
        changed = await self.storage.last_change_at(session_id)
        return SessionStatus(session, counts, backends, changed or session.updated_at)

    async def _session(self, principal: Principal, session_id: uuid.UUID) -> Session:
        return require_visible(await self.storage.get_session(session_id), principal, session_id)

    async def start(self) -> None:
        await self.dispatcher.start()

    async def close(self) -> None:
        """Stop work still running here; each is recorded ``failed`` with the retryable
        error ``Interrupted`` (the platform stopped, nobody cancelled it).  Queued and
        leased work stays queued in the store, for the next start."""
        self._closing = True
        await self.dispatcher.close()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
