"""The last pre-task check: each execution reserves its quotas before it is recorded.

A command admitted once may become several executions (a fan-out), each reserving for
itself under its own id.  What is reserved: one execution, one concurrent slot, the
shots and estimated QPU seconds its work profile asks for, and the bytes its inputs
take.  A reservation whose execution is never recorded (an earlier execution answered
the idempotency key, the session stopped being active, the process failed before the
write) is given back at once; one whose execution is recorded is reconciled when it
ends (:mod:`.recording`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from limit_graph.core.compliance import WorkProfile
from limit_graph.core.errors import QuotaExceeded
from limit_graph.core.models import CheckResult, Execution
from limit_graph.core.quotas import QuotaResource
from limit_graph.governance.auth import Principal
from limit_graph.governance.quotas import QuotaService
from limit_graph.orchestration.admission import Admitted
from limit_graph.orchestration.recording import ExecutionRecorder, holds_reservation, stored_bytes
from limit_graph.storage.base import Storage

__all__ = ["Demand", "QuotaGate"]


class Demand(Mapping[QuotaResource, float]):
    """What one execution asks of its quotas; the bytes of its inputs are measured only
    if a storage quota asks (large tables make that cost milliseconds)."""

    def __init__(self, inputs: Mapping[str, Any], profile: WorkProfile | None) -> None:
        self._inputs = inputs
        self._known: dict[QuotaResource, float] = {
            QuotaResource.EXECUTIONS: 1,
            QuotaResource.CONCURRENT: 1,
            QuotaResource.SHOTS: profile.shots if profile is not None else 0,
            QuotaResource.QPU_SECONDS: profile.qpu_seconds_estimate if profile is not None else 0,
        }

    def __getitem__(self, resource: QuotaResource) -> float:
        if resource is QuotaResource.STORAGE_BYTES:
            if resource not in self._known:
                self._known[resource] = stored_bytes(dict(self._inputs))
            return self._known[resource]
        return self._known[resource]

    def __iter__(self) -> Iterator[QuotaResource]:
        return iter(QuotaResource)

    def __len__(self) -> int:
        return len(QuotaResource)


class QuotaGate:
    def __init__(self, quotas: QuotaService, recorder: ExecutionRecorder, storage: Storage) -> None:
        self.quotas = quotas
        self.recorder = recorder
        self.storage = storage

    async def record(
        self,
        principal: Principal,
        admitted: Admitted,
        inputs: Mapping[str, Any],
        write: Callable[[uuid.UUID, list[CheckResult]], Awaitable[Execution]],
    ) -> Execution:
        """``write`` a new execution (its id, its checks) under the quotas it reserves;
        what it reserved is given back if it is never recorded: ``write`` failed first,
        or an earlier execution with the same idempotency key answered."""
        execution_id = uuid.uuid4()
        checks = await self.reserve(principal, admitted, execution_id, inputs)
        try:
            execution = await write(execution_id, checks)
        except BaseException:
            await self.release_unrecorded(execution_id, checks)
            raise
        if execution.id != execution_id:
            await self.release_unrecorded(execution_id, checks)
        return execution

    async def reserve(
        self,
        principal: Principal,
        admitted: Admitted,
        execution_id: uuid.UUID,
        inputs: Mapping[str, Any],
    ) -> list[CheckResult]:
        """The execution's checks with its quota verdict, or the recorded refusal."""
        checks = list(admitted.checks)
        try:
            verdict = await self.quotas.reserve(
                execution_id,
                tenant=admitted.session.tenant,
                principal_id=principal.id,
                session=admitted.session,
                demand=Demand(inputs, admitted.profile),
            )
        except QuotaExceeded as denial:
            await self.recorder.deny(
                principal,
                admitted.session.id,
                admitted.agent,
                admitted.backend,
                denial,
                checks=checks,
            )
        if verdict is not None:
            checks.append(verdict)
        return checks

    async def release_unrecorded(self, execution_id: uuid.UUID, checks: list[CheckResult]) -> None:
        """Give back what ``execution_id`` reserved if no record of it was written."""
        if not holds_reservation(checks):
            return
        if await self.storage.get_execution(execution_id) is None:
            await self.quotas.release(execution_id)
