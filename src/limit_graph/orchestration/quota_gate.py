"""The last pre-task check: each execution reserves its quotas before it is recorded.

A command admitted once may become several executions (a fan-out), each reserving for
itself under its own id.  What is reserved: one execution, one concurrent slot, the
shots and estimated QPU seconds its work profile asks for, and the bytes its inputs
take.  The claims are taken in the transaction of the execution's first write, so that
they cost no commit of their own (storage takes none when an earlier execution answers
the idempotency key, or the session is no longer active); work that runs before it is
written reserves in a write of its own first, unless it is a quick deterministic agent
(:meth:`~limit_graph.orchestration.inline.InlineRunner.run`).  A recorded execution's quotas are
reconciled by the write that records it final (:mod:`.recording`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, NoReturn

from limit_graph.core.compliance import WorkProfile
from limit_graph.core.errors import QuotaExceeded
from limit_graph.core.models import CheckResult, Execution
from limit_graph.core.quotas import QuotaResource
from limit_graph.governance.auth import Principal
from limit_graph.governance.quotas import QuotaService
from limit_graph.orchestration.admission import Admitted
from limit_graph.orchestration.recording import ExecutionRecorder, Reservation, stored_bytes
from limit_graph.storage.base import Storage
from limit_graph.storage.quotas import ClaimRefused

__all__ = ["Demand", "QuotaGate", "Write"]


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


Write = Callable[[uuid.UUID, list[CheckResult], Reservation | None], Awaitable[Execution]]
"""Records a new execution under its id, with its checks and the claims of its quotas."""


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
        write: Write,
    ) -> Execution:
        """``write`` a new execution (its id, its checks, its quota claims), or record
        the refusal of a claim that does not fit.  What a failed ``write`` left reserved
        is given back."""
        execution_id = uuid.uuid4()
        try:
            plan = await self.quotas.plan(
                tenant=admitted.session.tenant,
                principal_id=principal.id,
                session=admitted.session,
                demand=Demand(inputs, admitted.profile),
            )
        except QuotaExceeded as denial:
            await self._deny(principal, admitted, denial)
        if plan is None:
            return await write(execution_id, list(admitted.checks), None)
        reservation = Reservation(execution_id, plan.claims)
        try:
            return await write(execution_id, [*admitted.checks, plan.verdict], reservation)
        except ClaimRefused as refused:
            await self._deny(principal, admitted, plan.refusal(refused.refusal))
        except BaseException:
            if reservation.taken and await self.storage.get_execution(execution_id) is None:
                await self.quotas.release(execution_id)
            raise

    async def _deny(
        self, principal: Principal, admitted: Admitted, denial: QuotaExceeded
    ) -> NoReturn:
        await self.recorder.deny(
            principal,
            admitted.session.id,
            admitted.agent,
            admitted.backend,
            denial,
            checks=admitted.checks,
        )
