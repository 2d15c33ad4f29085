"""The platform's services, wired once from :class:`Settings` and shared by API and CLI."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.models import Execution, Session, SessionConfig
from limit_graph.core.settings import Settings
from limit_graph.governance.auth import Principal
from limit_graph.governance.checks import CheckPipeline, default_checks
from limit_graph.orchestration.events import SessionEvents
from limit_graph.orchestration.executions import ExecuteCommand, ExecutionService
from limit_graph.orchestration.health import Probe, prefect_ping
from limit_graph.orchestration.mirror import PrefectMirror
from limit_graph.orchestration.router import Router
from limit_graph.orchestration.sessions import SessionCache, SessionService
from limit_graph.orchestration.supervisor import RunnerSupervisor, prefect_runner_starter
from limit_graph.orchestration.telemetry import Telemetry
from limit_graph.orchestration.workflows import WorkflowService
from limit_graph.storage.base import Storage
from limit_graph.storage.factory import open_storage

__all__ = ["Platform"]


@dataclass
class Platform:
    """Storage, agents, checks and the services over them.

    >>> # platform = await Platform.start(load_settings())
    >>> # ...; await platform.close()
    """

    settings: Settings
    storage: Storage
    registry: AgentRegistry
    checks: CheckPipeline
    sessions: SessionService
    executions: ExecutionService
    workflows: WorkflowService
    events: SessionEvents
    telemetry: Telemetry
    database_probe: Probe
    prefect_probe: Probe | None
    supervisor: RunnerSupervisor | None = field(default=None)
    mirror: PrefectMirror | None = field(default=None)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        storage: Storage | None = None,
        registry: AgentRegistry | None = None,
        telemetry: Telemetry | None = None,
    ) -> Platform:
        agents = registry or AgentRegistry.discover(settings.agents.paths)  # first: nothing to undo
        store = storage or open_storage(settings)
        await store.start()
        checks = default_checks()
        events = SessionEvents(store)
        cache = SessionCache(store)
        telemetry = telemetry or Telemetry()
        executions = ExecutionService(
            store,
            agents,
            checks,
            events,
            cache,
            telemetry=telemetry,
            default_backend=settings.backends.default,
            router=Router.from_settings(settings.backends),
            dispatch=settings.dispatch,
        )
        platform = cls(
            settings=settings,
            storage=store,
            registry=agents,
            checks=checks,
            sessions=SessionService(store, events, cache),
            executions=executions,
            workflows=WorkflowService(
                store,
                agents,
                executions,
                cache,
                settings.workflows,
                notify=events.notify,
                default_backend=settings.backends.default,
            ),
            events=events,
            telemetry=telemetry,
            database_probe=Probe(store.ping),
            prefect_probe=Probe(prefect_ping(url)) if (url := settings.prefect.api_url) else None,
        )
        await platform.executions.start()
        await platform.workflows.start()
        if settings.prefect.api_url:
            platform.supervisor = RunnerSupervisor(
                platform.executions.dispatcher,
                prefect_runner_starter(settings.prefect.api_url),
                idle_exit_s=settings.dispatch.idle_exit_s,
            )
            platform.supervisor.start()
            if settings.prefect.mirror:
                platform.mirror = PrefectMirror(
                    store,
                    settings.prefect.api_url,
                    telemetry=telemetry,
                    task_runs_per_s=settings.prefect.mirror_task_runs_per_s,
                )
                await platform.mirror.start()
        return platform

    async def with_flow_run(self, session: Session, *, lookup: bool = True) -> Session:
        """``session`` with its Prefect flow run id, once the mirror has made it."""
        if self.mirror is None or session.prefect_flow_run_id is not None:
            return session
        if lookup:
            flow_run_id = await self.mirror.lookup_flow_run(session.id)
        else:
            flow_run_id = self.mirror.flow_run_id(session.id)
        if flow_run_id is None:
            return session
        return session.model_copy(update={"prefect_flow_run_id": flow_run_id})

    async def execute_agent(
        self, principal: Principal, session_id: uuid.UUID | None, command: ExecuteCommand
    ) -> Execution:
        """Run an agent in ``session_id``, or in a one-off session completed afterwards."""
        if session_id is not None:
            return await self.executions.execute(principal, session_id, command)
        self.registry.find(command.agent)
        session = await self.sessions.create(
            principal,
            SessionConfig(tags=["one-off"]),
            name=f"one-off-{command.agent}",
        )
        try:
            return await self.executions.execute(principal, session.id, command)
        finally:
            await self.sessions.complete(principal, session.id)

    def drain(self) -> None:
        """The server has begun to shut down: end the long polls and streams it holds open."""
        self.executions.dispatcher.drain()
        self.events.drain()

    async def close(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.close()
        await self.workflows.close()
        await self.executions.close()
        if self.mirror is not None:
            await self.mirror.close()
        await self.storage.close()
