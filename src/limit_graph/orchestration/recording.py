"""Recording executions: the durable write (with its ledger entries), the wake-up of
whoever watches the session, the metrics of a finished execution, and denials.

Admission, inline running, the dispatcher and the execution facade all record through
one :class:`ExecutionRecorder`, which the platform builds once.
"""

from __future__ import annotations

import uuid
from typing import NoReturn

from limit_graph.core.agents import AgentSpec
from limit_graph.core.errors import PolicyDenied
from limit_graph.core.models import BackendKind, Execution
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.events import SessionEvents
from limit_graph.orchestration.telemetry import Telemetry
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import EntryDraft

__all__ = ["ExecutionRecorder"]


class ExecutionRecorder:
    def __init__(self, storage: Storage, events: SessionEvents, telemetry: Telemetry) -> None:
        self.storage = storage
        self.events = events
        self.telemetry = telemetry

    async def write(
        self,
        execution: Execution,
        action: str,
        *,
        require_active_session: bool = False,
        started: Execution | None = None,
    ) -> Execution:
        """Write ``execution`` durably with its ledger entry."""
        stored = await self.storage.write_execution(
            execution,
            actor=execution.actor,
            action=action,
            require_active_session=require_active_session,
            started=started,
        )
        self.events.notify()
        return stored

    def finished(self, execution: Execution, *, was_running: bool = True) -> None:
        """Count a finished execution (and, when it ran here, that it stopped running)."""
        backend = execution.backend.value
        if was_running:
            self.telemetry.running.labels(backend).dec()
        self.telemetry.executions.labels(execution.agent, backend, execution.state.value).inc()
        if execution.started_at and execution.finished_at:
            seconds = (execution.finished_at - execution.started_at).total_seconds()
            self.telemetry.execution_seconds.labels(execution.agent, backend).observe(seconds)

    async def deny(
        self,
        principal: Principal,
        session_id: uuid.UUID,
        agent: AgentSpec,
        backend: BackendKind,
        denial: PolicyDenied,
    ) -> NoReturn:
        """Record the denial in the ledger with the policies that made it, count it, raise it."""
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
                    "tenant": principal.tenant,
                },
            )
        )
        self.events.notify()
        for policy_id in denial.policy_ids:
            self.telemetry.denials.labels(policy_id).inc()
        raise denial
