"""Recording executions: the durable write (with its ledger entries), the wake-up of
whoever watches the session, the metrics of a finished execution, and denials.

A new execution's quota claims are taken by its first write, and when an execution that
holds a reservation is recorded final, the same write reconciles its quotas with what it
used (:func:`used_by`), whichever process records it: the reservation is in storage,
and reconciling twice changes nothing.

Admission, inline running, the dispatcher and the execution facade all record through
one :class:`ExecutionRecorder`, which the platform builds once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
from limit_graph.storage.dispatch import QueueChange
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.quotas import ClaimRefused, QuotaClaim, QuotaWrite

__all__ = [
    "ExecutionRecorder",
    "Reservation",
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


@dataclass
class Reservation:
    """A new execution's quota claims, taken by its first write
    (:meth:`ExecutionRecorder.write`) or, for work that runs before anything is written,
    by a reservation of their own (:meth:`ExecutionRecorder.reserve`)."""

    execution_id: uuid.UUID
    claims: list[QuotaClaim]
    taken: bool = False
    """Whether storage holds the claims (and gives them back only when told)."""


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
        reservation: Reservation | None = None,
        queue: QueueChange | None = None,
        relaxed: bool = False,
    ) -> Execution:
        """Write ``execution`` durably with its ledger entry, and what that does to its
        quotas in the same transaction: the claims of a ``reservation`` not yet taken are
        taken (:class:`ClaimRefused` when one does not fit, with nothing written), and a
        final record settles what the execution holds with what it used; ``queue``: the
        change to its row of the dispatch queue, in the same transaction."""
        claims = reservation.claims if reservation is not None and not reservation.taken else []
        used = None
        if execution.state.is_final and (claims or holds_reservation(execution.checks)):
            used = self.used(execution)
        stored = await self.storage.write_execution(
            execution,
            actor=execution.actor,
            action=action,
            require_active_session=require_active_session,
            started=started,
            quota=QuotaWrite(claims, used) if claims or used is not None else None,
            queue=queue,
            relaxed=relaxed,
        )
        if claims and reservation is not None and stored.id == execution.id:
            reservation.taken = True
        self.events.notify(stored.session_id)
        return stored

    async def reserve(self, reservation: Reservation) -> None:
        """Take a reservation's claims in a write of their own, for work that runs
        before it is recorded; :class:`ClaimRefused` when one does not fit."""
        if reservation.taken:
            return
        refusal = await self.storage.quotas.reserve(reservation.execution_id, reservation.claims)
        if refusal is not None:
            raise ClaimRefused(refusal)
        reservation.taken = True

    async def reconcile(self, execution: Execution) -> None:
        """Give a final execution's quotas back but for what it used, for a final
        record written in a transaction of its own (not by :meth:`write`)."""
        if holds_reservation(execution.checks):
            await self.quotas.reconcile(execution.id, self.used(execution))

    def used(self, execution: Execution) -> dict[QuotaResource, float]:
        """What a final execution used (:func:`used_by`, with its agent if known)."""
        return used_by(execution, self._agent(execution))

    def _agent(self, execution: Execution) -> AgentSpec | None:
        try:
            return self.registry.get(execution.agent, execution.agent_version)
        except NotFound:
            return None

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
        self.events.notify(session_id)
        for policy_id in denial.policy_ids:
            self.telemetry.count_denial(policy_id)
        raise denial
