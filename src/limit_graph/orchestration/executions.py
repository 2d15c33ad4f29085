"""The execution service: check, record, run and finish one agent execution.

An execution is recorded ``running`` (with its ledger entry) before the agent
starts and ``succeeded | failed | timed_out | cancelled`` when it ends, each in its
own transaction.  The caller waits up to ``wait_s`` for the end; past that the work
goes on in the background and the caller gets the running record.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.errors import BackendUnavailable, InvalidInput, NotFound
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
from limit_graph.orchestration.inline import Outcome, run_inline
from limit_graph.orchestration.sessions import visible_to
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.paging import Page

__all__ = ["ExecuteCommand", "ExecutionService", "SessionStatus"]

DEFAULT_TIMEOUT_S = 300.0
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
        *,
        default_backend: BackendKind = BackendKind.LOCAL,
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.checks = checks
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
        agent = self.registry.get(command.agent)
        validated = self._validate_inputs(agent, command.inputs)
        async with self.storage.transaction() as tx:
            session = await tx.get_session(session_id)
            if session is None or not visible_to(session, principal):
                raise NotFound(f"no session {session_id}")
            if command.idempotency_key is not None:
                earlier = await tx.find_execution_by_key(session_id, command.idempotency_key)
                if earlier is not None:
                    return earlier
            backend = command.backend or session.config.default_backend or self.default_backend
            ctx = CheckContext(principal, session, agent, backend, command.inputs)
            denial = await self.checks.evaluate(ctx)
            if denial is not None:
                await tx.append_entry(
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
            elif backend is not BackendKind.LOCAL:
                raise BackendUnavailable(
                    f"no runner serves the {backend.value!r} backend on this platform yet; "
                    "use the 'local' backend"
                )
            else:
                now = utcnow()
                execution = await tx.save_execution(
                    Execution(
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
                    ),
                    actor=principal.name,
                    action="execution.started",
                )
        if denial is not None:
            raise denial
        task = asyncio.create_task(self._run(agent, validated, execution))
        self._running[execution.id] = task
        task.add_done_callback(lambda _: self._running.pop(execution.id, None))
        done, _ = await asyncio.wait({task}, timeout=command.wait_s)
        return task.result() if done else execution

    async def _run(self, agent: AgentSpec, inputs: BaseModel, execution: Execution) -> Execution:
        try:
            outcome = await run_inline(agent, inputs, execution.timeout_s or DEFAULT_TIMEOUT_S)
        except asyncio.CancelledError:
            outcome = Outcome(
                ExecutionState.CANCELLED,
                error=ErrorInfo(type="Cancelled", message="cancelled before it finished"),
            )
        return await self._finish(execution, outcome)

    async def _finish(self, execution: Execution, outcome: Outcome) -> Execution:
        async with self.storage.transaction() as tx:
            return await tx.save_execution(
                execution.model_copy(
                    update={
                        "state": outcome.state,
                        "result": outcome.result,
                        "error": outcome.error,
                        "finished_at": utcnow(),
                    }
                ),
                actor=execution.actor,
                action=f"execution.{outcome.state.value}",
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
        session = await self.storage.get_session(session_id)
        if session is None or not visible_to(session, principal):
            raise NotFound(f"no session {session_id}")
        return session

    async def close(self) -> None:
        """Cancel work still running; each is recorded ``cancelled``."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
