"""The platform: the one composition root.

:meth:`Platform.start` builds every service from :class:`Settings` and hands each its
collaborators (storage, identity, the authorizer, the router, the dispatcher, the
result cache, the recorder); no service builds its own.  API and CLI both use it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.errors import ConfigError, InvalidInput
from limit_graph.core.identity import PrincipalKind, PrincipalRecord, Role
from limit_graph.core.models import Execution, Session, SessionConfig, utcnow
from limit_graph.core.settings import Settings
from limit_graph.governance.auth import (
    Principal,
    ensure_admin_key,
    ensure_runner_key,
)
from limit_graph.governance.authn import Authenticator, principal_of
from limit_graph.governance.authorizer import Authorizer
from limit_graph.governance.checks import CheckPipeline, default_checks
from limit_graph.governance.compliance import ComplianceChecks
from limit_graph.governance.oidc import OidcVerifier
from limit_graph.governance.policy import Action, CedarEngine
from limit_graph.governance.quotas import QuotaService
from limit_graph.governance.rates import RateGuard, build_limiter
from limit_graph.governance.secrets import ServerSecret
from limit_graph.governance.tokens import TokenService
from limit_graph.governance.watch import IdentityWatch
from limit_graph.orchestration.admission import Admission
from limit_graph.orchestration.audit import AuditService
from limit_graph.orchestration.cache import ResultCache
from limit_graph.orchestration.checkpoints import Checkpointer, load_ledger_key
from limit_graph.orchestration.data_keys import DataKeyRotation
from limit_graph.orchestration.dispatch import Dispatcher
from limit_graph.orchestration.events import SessionEvents
from limit_graph.orchestration.executions import ExecuteCommand, ExecutionService
from limit_graph.orchestration.grants import GrantService
from limit_graph.orchestration.health import Probe, prefect_ping
from limit_graph.orchestration.identity import IdentityService
from limit_graph.orchestration.inline import InlineRunner
from limit_graph.orchestration.leadership import Leadership, process_holder
from limit_graph.orchestration.lineage import LineageFollower
from limit_graph.orchestration.lineage_reads import LineageReads
from limit_graph.orchestration.mirror import PrefectMirror
from limit_graph.orchestration.openlineage import event_sink
from limit_graph.orchestration.orphans import OrphanSweeper
from limit_graph.orchestration.policies import PolicyService
from limit_graph.orchestration.quota_gate import QuotaGate
from limit_graph.orchestration.quota_sweep import ReservationSweeper
from limit_graph.orchestration.quotas import QuotaAdmin
from limit_graph.orchestration.recording import ExecutionRecorder
from limit_graph.orchestration.replay import ReplayService
from limit_graph.orchestration.router import Router
from limit_graph.orchestration.scrape import ScrapeReadings
from limit_graph.orchestration.sessions import SessionCache, SessionService, require_visible
from limit_graph.orchestration.supervisor import RunnerSupervisor, prefect_runner_starter
from limit_graph.orchestration.telemetry import Telemetry
from limit_graph.orchestration.workflows import WorkflowService
from limit_graph.storage.base import Storage
from limit_graph.storage.factory import open_storage

__all__ = ["PLATFORM_TENANT", "Platform"]

PLATFORM_TENANT = "default"
"""The platform's own tenant: the platform admin's and the runners'."""


def _compliance(settings: Settings, agents: AgentRegistry) -> ComplianceChecks:
    """The platform's compliance checks, with every agent's declarations parsed now: a
    bad one stops the start, naming where it is written."""
    governance = settings.governance
    try:
        compliance = ComplianceChecks(
            governance.checks, governance.clearances, settings.datasets_path
        )
        for agent in agents.list():
            compliance.parse_agent(agent)
    except InvalidInput as exc:
        raise ConfigError(exc.detail) from None
    return compliance


@dataclass
class Platform:
    """Storage, identity, agents, checks and the services over them.

    >>> # platform = await Platform.start(load_settings())
    >>> # ...; await platform.close()
    """

    settings: Settings
    storage: Storage
    registry: AgentRegistry
    secret: ServerSecret
    watch: IdentityWatch
    authorizer: Authorizer
    authenticator: Authenticator
    tokens: TokenService
    checks: CheckPipeline
    dispatcher: Dispatcher
    sessions: SessionService
    executions: ExecutionService
    workflows: WorkflowService
    identity: IdentityService
    grants: GrantService
    policies: PolicyService
    events: SessionEvents
    telemetry: Telemetry
    database_probe: Probe
    prefect_probe: Probe | None
    admin: Principal
    runner: Principal
    compliance: ComplianceChecks
    quotas: QuotaAdmin
    data_keys: DataKeyRotation
    reservations: ReservationSweeper
    checkpoints: Checkpointer
    audit: AuditService
    replay: ReplayService
    lineage_follower: LineageFollower
    lineage: LineageReads
    scrape: ScrapeReadings
    """What ``/metrics`` reads from the store at each scrape."""
    oidc: OidcVerifier | None = field(default=None)
    supervisor: RunnerSupervisor | None = field(default=None)
    mirror: PrefectMirror | None = field(default=None)
    """Runs where its lease is held; answers flow-run lookups (from the store) everywhere."""
    leaderships: dict[str, Leadership] = field(default_factory=dict)
    """The leases of the services one process of a store runs: the supervisor, the mirror,
    the sweep for abandoned inline executions."""
    rates: RateGuard = field(default_factory=RateGuard.unlimited)
    """Rate limits, checked once per request by the API (``api/deps.py``)."""

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
        secret = ServerSecret.from_settings(settings)
        admin_key = ensure_admin_key(settings)
        runner_key = ensure_runner_key(settings)
        store = storage or open_storage(settings)
        await store.start()
        identity = store.identity
        telemetry = telemetry or Telemetry.for_process()
        events = SessionEvents(store)
        cache = SessionCache(store)
        watch = IdentityWatch(identity)
        authorizer = Authorizer(CedarEngine(), identity, store.write_entry)
        await authorizer.start()
        tokens = TokenService(identity, secret, settings.auth, keyring=store.keyring)
        await tokens.start()
        oidc = OidcVerifier(settings.auth.oidc) if settings.auth.oidc is not None else None
        authenticator = Authenticator(identity, secret, tokens, oidc, issuer=settings.auth.issuer)
        identity_service = IdentityService(identity, authorizer, secret, watch, cache)
        admin, runner = await _bootstrap(identity_service)
        authenticator.add_static(admin_key.key, admin)
        authenticator.add_static((runner_key or admin_key).key, runner if runner_key else admin)
        watch.subscribe(authenticator.forget)
        watch.subscribe(authorizer.identity_changed)
        checks = default_checks(authorizer)
        compliance = _compliance(settings, agents)
        quotas = QuotaService(store.quotas)
        router = Router.from_settings(settings.backends)
        recorder = ExecutionRecorder(store, events, telemetry, quotas, agents)
        results = ResultCache(store)
        finals: list[ExecutionService] = []

        async def on_final(execution: Execution, here: bool) -> None:
            await finals[0].dispatched_final(execution, here)

        dispatcher = Dispatcher(
            store,
            router,
            recorder.write,
            settings.dispatch,
            telemetry=telemetry,
            on_final=on_final,
        )
        admission = Admission(
            agents,
            cache,
            checks,
            router,
            recorder,
            compliance,
            default_backend=settings.backends.default,
        )
        executions = ExecutionService(
            store,
            events,
            admission,
            InlineRunner(agents, recorder),
            dispatcher,
            router,
            results,
            recorder,
            QuotaGate(quotas, recorder, store),
        )
        finals.append(executions)
        checkpoints = Checkpointer(
            store,
            await load_ledger_key(store, secret, settings.ledger.origin),
            settings.ledger,
            settings.checkpoints_path,
        )
        rates = RateGuard(
            build_limiter(settings.governance),
            settings.governance.rates,
            observe=telemetry.count_rate_decision,
        )
        telemetry.watch_rate_limiter(lambda: rates.failing)
        lineage = LineageFollower(
            store,
            settings.lineage,
            sink=event_sink(settings.lineage, settings.openlineage_path),
            data_dir=settings.datasets_path,
        )
        platform = cls(
            settings=settings,
            storage=store,
            registry=agents,
            secret=secret,
            watch=watch,
            authorizer=authorizer,
            authenticator=authenticator,
            tokens=tokens,
            checks=checks,
            dispatcher=dispatcher,
            sessions=SessionService(store, events, cache, compliance),
            executions=executions,
            workflows=WorkflowService(
                store,
                agents,
                executions,
                cache,
                settings.workflows,
                compliance,
                notify=events.notify,
                default_backend=settings.backends.default,
            ),
            identity=identity_service,
            grants=GrantService(identity, authorizer, watch, cache),
            policies=PolicyService(identity, authorizer, watch),
            events=events,
            telemetry=telemetry,
            database_probe=Probe(store.ping),
            prefect_probe=Probe(prefect_ping(url)) if (url := settings.prefect.api_url) else None,
            admin=admin,
            runner=runner,
            compliance=compliance,
            quotas=QuotaAdmin(quotas, authorizer, identity, cache),
            data_keys=DataKeyRotation(store, settings.encryption),
            reservations=ReservationSweeper(
                store,
                recorder,
                quotas,
                stale_s=settings.governance.stale_reservation_s,
                every_s=settings.governance.reservation_sweep_s,
            ),
            checkpoints=checkpoints,
            audit=AuditService(store, authorizer, checkpoints),
            replay=ReplayService(
                store, executions, agents, cache, authorizer, notify=events.notify
            ),
            lineage_follower=lineage,
            lineage=LineageReads(store, lineage, authorizer),
            scrape=ScrapeReadings(store, telemetry, quotas),
            oidc=oidc,
            rates=rates,
        )
        await rates.start()
        await watch.start()
        authenticator.start()
        await platform.executions.start()
        await platform.workflows.start()
        await platform.data_keys.start()
        platform.reservations.start()
        platform.checkpoints.start()
        platform.lineage_follower.start()
        holder, ttl_s = process_holder(), settings.prefect.leader_lease_s
        if settings.prefect.api_url:
            supervisor = platform.supervisor = RunnerSupervisor(
                dispatcher,
                prefect_runner_starter(settings.prefect.api_url),
                idle_exit_s=settings.dispatch.idle_exit_s,
            )
            platform.leaderships["supervisor"] = Leadership(
                store.leases,
                "supervisor",
                holder,
                on_gained=supervisor.start,
                on_lost=supervisor.close,
                ttl_s=ttl_s,
            )
            if settings.prefect.mirror:
                mirror = platform.mirror = PrefectMirror(
                    store,
                    settings.prefect.api_url,
                    telemetry=telemetry,
                    task_runs_per_s=settings.prefect.mirror_task_runs_per_s,
                )
                platform.scrape.follow_mirror(mirror)
                platform.leaderships["mirror"] = Leadership(
                    store.leases,
                    "mirror",
                    holder,
                    on_gained=mirror.start,
                    on_lost=mirror.stop,
                    on_resign=mirror.close,
                    ttl_s=ttl_s,
                )
        orphans = OrphanSweeper(
            store,
            recorder,
            grace_s=settings.dispatch.lease_s,
            every_s=max(1.0, settings.dispatch.lease_s),
        )
        platform.leaderships["orphans"] = Leadership(
            store.leases,
            "orphans",
            holder,
            on_gained=orphans.start,
            on_lost=orphans.close,
            ttl_s=ttl_s,
        )
        for leadership in platform.leaderships.values():
            await leadership.start()
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
        """Run an agent in ``session_id`` (``session.execute`` on it), or in a one-off
        session completed afterwards (``session.create``)."""
        if session_id is not None:
            session = require_visible(
                await self.sessions.cache.load(session_id), principal, session_id
            )
            await self.authorizer.on_session(principal, Action.SESSION_EXECUTE, session)
            return await self.executions.execute(principal, session_id, command)
        await self.authorizer.on_tenant(principal, Action.SESSION_CREATE)
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
        self.dispatcher.drain()
        self.events.drain()

    async def close(self) -> None:
        if (supervising := self.leaderships.get("supervisor")) is not None:
            await supervising.close()
        await self.workflows.close()
        await self.executions.close()
        if (mirroring := self.leaderships.get("mirror")) is not None:
            await mirroring.close()  # where it runs, it mirrors what is left, under its lease
        if self.mirror is not None:
            await self.mirror.close(flush=False)
        if (sweeping := self.leaderships.get("orphans")) is not None:
            await sweeping.close()
        await self.data_keys.close()
        await self.reservations.close()
        await self.checkpoints.close()
        await self.lineage_follower.close()
        await self.watch.close()
        await self.rates.close()
        await self.authenticator.close()
        if self.oidc is not None:
            await self.oidc.aclose()
        await self.storage.close()


async def _bootstrap(identity: IdentityService) -> tuple[Principal, Principal]:
    """The platform's tenant, its admin and its runners' service account, made on first
    start; the keys of the settings sign in as them."""
    await identity.ensure_tenant(PLATFORM_TENANT)
    now = utcnow()
    admin = await identity.ensure_principal(
        PrincipalRecord(
            id=uuid.uuid4(),
            name="admin",
            tenant=PLATFORM_TENANT,
            kind=PrincipalKind.USER,
            roles=[Role.ADMIN],
            platform_admin=True,
            created_at=now,
        )
    )
    runner = await identity.ensure_principal(
        PrincipalRecord(
            id=uuid.uuid4(),
            name="runner",
            tenant=PLATFORM_TENANT,
            kind=PrincipalKind.SERVICE,
            roles=[Role.RUNNER],
            created_at=now,
        )
    )
    return principal_of(admin, via="key"), principal_of(runner, via="key")
