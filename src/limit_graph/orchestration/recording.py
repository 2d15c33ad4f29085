"""Recording executions: the durable write (with its ledger entries), the wake-up of
whoever watches the session, the metrics of a finished execution, and denials.

When an execution that holds a quota reservation is recorded final, its quotas are
reconciled here with what it used (:func:`used_by`), whichever process records it: the
reservation is in storage, and reconciling twice changes nothing.

Admission, inline running, the dispatcher and the execution facade all record through
one :class:`ExecutionRecorder`, which the platform builds once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import NoReturn

from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.errors import CheckFailed, NotFound, PolicyDenied, QuotaExceeded
from limit_graph.core.models import BackendKind, CheckResult, Execution, ExecutionState
from limit_graph.core.quotas import QuotaResource
from limit_graph.governance.auth import Principal
from limit_graph.governance.quotas import QUOTA_CHECK, QuotaService
from limit_graph.orchestration.events import SessionEvents
from limit_graph.orchestration.telemetry import Telemetry
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import EntryDraft

__all__ = [
    "ExecutionRecorder",
    "holds_reservation",
    "stored_bytes",
    "used_by",
]

log = logging.getLogger(__name__)


def stored_bytes(*documents: object) -> int:
    """What documents take in storage: the bytes of their compact JSON."""
    return sum(
        len(json.dumps(d, separators=(",", ":"), ensure_ascii=False, default=str).encode())
        for d in documents
        if d is not None
    )


def used_by(execution: Execution, agent: AgentSpec | None) -> dict[QuotaResource, float]:
    """What a final execution used, for its quotas: one execution; shots and QPU seconds
    as its agent reads them from the result (none for a cache hit, or work that did not
    succeed); the bytes its inputs and result take.  ``concurrent`` is given back."""
    used: dict[QuotaResource, float] = {
        QuotaResource.EXECUTIONS: 1,
        QuotaResource.STORAGE_BYTES: stored_bytes(execution.inputs, execution.result),
    }
    ran = execution.state is ExecutionState.SUCCEEDED and not execution.cache_hit
    if ran and agent is not None and agent.usage is not None and execution.result is not None:
        try:
            usage = agent.usage(execution.result)
        except (KeyError, TypeError, ValueError):
            log.warning("agent %s gave no usage for execution %s", agent.name, execution.id)
        else:
            used[QuotaResource.SHOTS] = usage.shots
            used[QuotaResource.QPU_SECONDS] = usage.qpu_seconds
    return used


def holds_reservation(checks: Iterable[CheckResult]) -> bool:
    return any(c.check == QUOTA_CHECK and c.passed for c in checks)


class ExecutionRecorder:
    def __init__(
        self,
        storage: Storage,
        events: SessionEvents,
        telemetry: Telemetry,
        quotas: QuotaService,
        registry: AgentRegistry,
    ) -> None:
        self.storage = storage
        self.events = events
        self.telemetry = telemetry
        self.quotas = quotas
        self.registry = registry

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
        if stored.state.is_final and stored.id == execution.id:
            await self.reconcile(stored)
        return stored

    async def reconcile(self, execution: Execution) -> None:
        """Give a final execution's quotas back but for what it used."""
        if not holds_reservation(execution.checks):
            return
        try:
            agent: AgentSpec | None = self.registry.get(execution.agent, execution.agent_version)
        except NotFound:
            agent = None
        await self.quotas.reconcile(execution.id, used_by(execution, agent))

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
        *,
        checks: Iterable[CheckResult] = (),
    ) -> NoReturn:
        """Record the denial in the ledger with the policies that made it and the checks'
        verdicts on the way (what a failed check found among them), count it, raise it."""
        payload: dict[str, object] = {
            "agent": agent.name,
            "backend": backend.value,
            "policy_ids": denial.policy_ids,
            "reason": denial.detail,
            "tenant": principal.tenant,
        }
        verdicts = [c.document() for c in checks]
        if verdicts:
            payload["checks"] = verdicts
        extras: Mapping[str, object] = {}
        if isinstance(denial, CheckFailed | QuotaExceeded):
            extras = {k: v for k, v in denial.extras().items() if k in ("failures", "quota")}
        payload.update(extras)
        await self.storage.write_entry(
            EntryDraft(
                actor=principal.name,
                action="execution.denied",
                resource_type="execution",
                resource_id=agent.name,
                session_id=session_id,
                payload=payload,
            )
        )
        self.events.notify()
        for policy_id in denial.policy_ids:
            self.telemetry.denials.labels(policy_id).inc()
        raise denial
