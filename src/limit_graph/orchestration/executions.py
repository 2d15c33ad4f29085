"""The execution service: the one facade routes and workflows call to run work.

It asks admission whether a command may run (:mod:`.admission`), answers from the
result cache when asked to and able to, runs local work inline (:mod:`.inline`), and
records the rest ``queued`` on the instance the router picks for the dispatcher, whose
runners claim it.  Either way the caller waits up to ``wait_s`` for the end; past that
the work goes on and the caller gets the unfinished record.  The platform builds every
collaborator and hands it in (:class:`~limit_graph.orchestration.platform.Platform`).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from limit_graph.core.agents import AgentSpec
from limit_graph.core.errors import Conflict, InvalidInput, NotFound
from limit_graph.core.models import (
    BackendKind,
    CheckResult,
    Execution,
    ExecutionState,
    Session,
    utcnow,
)
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.admission import Admission, Admitted
from limit_graph.orchestration.cache import ResultCache, cache_key
from limit_graph.orchestration.commands import ExecuteCommand
from limit_graph.orchestration.dispatch import Dispatcher
from limit_graph.orchestration.events import SessionEvents
from limit_graph.orchestration.inline import CANCELLED, DEFAULT_TIMEOUT_S, InlineRunner
from limit_graph.orchestration.quota_gate import QuotaGate
from limit_graph.orchestration.recording import ExecutionRecorder, Reservation
from limit_graph.orchestration.router import Router, target_family
from limit_graph.orchestration.sessions import require_visible, visible_to
from limit_graph.storage.base import Storage
from limit_graph.storage.paging import Page

__all__ = ["ExecuteCommand", "ExecutionService", "FanOutResult", "SessionStatus"]

WAIT_SLICE_S = 30.0


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


class ExecutionService:
    """Runs, cancels and reads executions; each collaborator is the platform's."""

    def __init__(
        self,
        storage: Storage,
        events: SessionEvents,
        admission: Admission,
        inline: InlineRunner,
        dispatcher: Dispatcher,
        router: Router,
        cache: ResultCache,
        recorder: ExecutionRecorder,
        quotas: QuotaGate,
    ) -> None:
        self.storage = storage
        self.events = events
        self.admission = admission
        self.inline = inline
        self.dispatcher = dispatcher
        self.router = router
        self.cache = cache
        self.recorder = recorder
        self.quotas = quotas
        self._cache_on_success: dict[uuid.UUID, str] = {}

    async def execute(
        self, principal: Principal, session_id: uuid.UUID, command: ExecuteCommand
    ) -> Execution:
        """Run ``command`` in the session and return the execution, finished or not.

        >>> # done = await executions.execute(p, sid, ExecuteCommand("echo", {"x": 1}))
        """
        admitted = await self.admission.admit(principal, session_id, command)
        if command.idempotency_key is not None and not command.new_key:
            earlier = await self.storage.find_execution_by_key(session_id, command.idempotency_key)
            if earlier is not None:
                return earlier
        return await self.quotas.record(
            principal,
            admitted,
            command.inputs,
            functools.partial(self._execute, principal, admitted, command),
        )

    async def _execute(
        self,
        principal: Principal,
        admitted: Admitted,
        command: ExecuteCommand,
        execution_id: uuid.UUID,
        checks: list[CheckResult],
        reservation: Reservation | None,
    ) -> Execution:
        agent, session, backend = admitted.agent, admitted.session, admitted.backend
        key = None
        if self._cacheable(admitted, command):
            key = cache_key(agent, command.inputs, backend, tenant=session.tenant)
            hit = await self._from_cache(
                key, principal, admitted, command, execution_id, checks, reservation
            )
            if hit is not None:
                return hit
        if backend is BackendKind.LOCAL and self._inline(agent, command):
            execution = await self.inline.run(
                principal,
                session,
                agent,
                admitted.validated,
                command,
                checks,
                execution_id=execution_id,
                sensitive=admitted.sensitive,
                reservation=reservation,
            )
            if key is not None and execution.state is ExecutionState.SUCCEEDED:
                await self.cache.store(key, execution)
            return execution
        family = target_family(backend, admitted.validated)
        depth = self.dispatcher.depth
        instance = self.router.route(backend, agent.name, session.id, depth, family=family)[0]
        # Waiting from before the record is queued, no end can come before the wait:
        # the caller needs no read to learn whether it ended meanwhile.
        ended = self.dispatcher.waiter(execution_id) if command.wait_s > 0 else None
        try:
            queued = await self._enqueue(
                principal, admitted, instance, command, execution_id, checks, reservation,
                family=family,
            )  # fmt: skip
            if key is not None and queued.state is ExecutionState.QUEUED:
                self._cache_on_success[queued.id] = key
                self.dispatcher.follow(queued.id)
            mine = ended if queued.id == execution_id else None  # else a key's earlier one
            return await self._await_final(queued, command.wait_s, mine)
        finally:
            if ended is not None:
                self.dispatcher.unwait(execution_id, ended)

    async def execute_fan_out(
        self, principal: Principal, session_id: uuid.UUID, command: ExecuteCommand
    ) -> FanOutResult:
        """Run the task once on each instance of ``command.fan_out``; no failover between
        them.  The aggregate is the agent's, over the results that succeeded."""
        admitted = await self.admission.admit(principal, session_id, command)
        agent, backend = admitted.agent, admitted.backend
        family = target_family(backend, admitted.validated)
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
            await self.quotas.record(
                principal,
                admitted,
                command.inputs,
                functools.partial(self._enqueue, principal, admitted, name, command, pinned=True),
            )
            for name in names
        ]
        finished = await asyncio.gather(*(self._await_final(e, command.wait_s) for e in queued))
        results = {e.instance: e.result for e in finished if e.state is ExecutionState.SUCCEEDED}
        aggregate = agent.aggregate(results) if agent.aggregate and results else None
        return FanOutResult(list(finished), aggregate)

    @staticmethod
    def _cacheable(admitted: Admitted, command: ExecuteCommand) -> bool:
        """Asked for by the request, or by an agent's own ``allow_cached`` input; never
        for sensitive work, whose key (an unsalted hash of its inputs) would sit in the
        store's bookkeeping in the clear, and whose result would answer by that hash."""
        asked = command.allow_cached or command.inputs.get("allow_cached") is True
        agent = admitted.agent
        fresh = bool(command.fan_out) or command.replay_of is not None
        return asked and agent.deterministic and not admitted.sensitive and not fresh

    @staticmethod
    def _inline(agent: AgentSpec, command: ExecuteCommand) -> bool:
        return command.inline if command.inline is not None else agent.inline

    async def _from_cache(
        self,
        key: str,
        principal: Principal,
        admitted: Admitted,
        command: ExecuteCommand,
        execution_id: uuid.UUID,
        checks: list[CheckResult],
        reservation: Reservation | None,
    ) -> Execution | None:
        session, agent, backend = admitted.session, admitted.agent, admitted.backend
        original = await self.cache.lookup(key)
        if original is None:
            return None
        now = utcnow()
        hit = Execution(
            id=execution_id,
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
            run_context=original.run_context,  # what the result it returns depended on
            submitted_at=now,
            started_at=now,
            finished_at=now,
            idempotency_key=command.idempotency_key,
            timeout_s=command.timeout_s or session.config.timeout_s,
            actor=principal.name,
            workflow=command.workflow,
            checks=checks,
            sensitive=admitted.sensitive,
        )
        stored = await self.recorder.write(
            hit, "execution.cache_hit", require_active_session=True, reservation=reservation
        )
        if stored.id == hit.id:
            self.recorder.telemetry.cache_hits.inc()
            self.recorder.finished(stored, was_running=False)
        return stored

    async def _enqueue(
        self,
        principal: Principal,
        admitted: Admitted,
        instance: str,
        command: ExecuteCommand,
        execution_id: uuid.UUID,
        checks: list[CheckResult],
        reservation: Reservation | None,
        *,
        pinned: bool = False,
        family: str | None = None,
    ) -> Execution:
        session, agent, backend = admitted.session, admitted.agent, admitted.backend
        key = command.idempotency_key
        if key is not None and pinned:
            key = f"{key}@{instance}"
        queued = Execution(
            id=execution_id,
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
            checks=checks,
            sensitive=admitted.sensitive,
            replay_of=command.replay_of,
        )
        stored = await self.recorder.write(
            queued,
            "execution.queued",
            require_active_session=True,
            reservation=reservation,
            queue=self.dispatcher.work(queued, pinned=pinned, family=family),
        )
        if stored.id == queued.id:
            self.dispatcher.queued(stored)
        return stored

    async def wait_final(self, execution: Execution) -> Execution:
        """The execution's final record, however long it takes (its own timeout bounds
        it): work running in this process is awaited, dispatched work is waited for."""
        while not execution.state.is_final:
            task = self.inline.task(execution.id)
            if task is not None:
                return await asyncio.shield(task)
            final = await self.dispatcher.wait_final(execution.id, WAIT_SLICE_S)
            if final is not None:
                return final
            stored = await self.storage.get_execution(execution.id)
            execution = stored or execution
        return execution

    async def _await_final(
        self,
        execution: Execution,
        wait_s: float,
        waiting: asyncio.Future[Execution] | None = None,
    ) -> Execution:
        if execution.state.is_final or wait_s <= 0:
            return execution
        final = await self.dispatcher.wait_final(execution.id, wait_s, waiting)
        return final or await self.storage.get_execution(execution.id) or execution

    async def dispatched_final(self, execution: Execution, here: bool = True) -> None:
        """The dispatcher's word that dispatched work ended: count it where its end was
        recorded (``here``), cache its result where it was asked for."""
        if here:
            self.recorder.finished(execution, was_running=False)
        key = self._cache_on_success.pop(execution.id, None)
        if key is not None and execution.state is ExecutionState.SUCCEEDED:
            await self.cache.store(key, execution)

    async def carry_on(self, execution: Execution) -> Execution:
        """Run again here local work a stopped process left unfinished (see
        :meth:`InlineRunner.carry_on`)."""
        return await self.inline.carry_on(execution)

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
        if await self.inline.cancel(execution_id):
            return await self.get(principal, session_id, execution_id)
        dispatched = await self.dispatcher.cancel(execution_id, principal.name)
        if dispatched is not None:
            return dispatched
        async with self.events.write(session_id) as tx:
            current = await tx.get_execution(execution_id)
            if current is None or current.state.is_final:
                return current or execution
            cancelled = await tx.save_execution(
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
        await self.recorder.reconcile(cancelled)
        return cancelled

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
        await self.dispatcher.close()
        await self.inline.close()
