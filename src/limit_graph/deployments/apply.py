"""The platform's work pools and deployments, applied from the installed package.

``prefect.yaml`` describes the same deployments for ``prefect deploy --all`` from a
source checkout (file entrypoints, working directory pulled to the checkout).  An
installed package has no checkout, so ``limit up`` and ``limit prefect register``
apply them from here with **module-path entrypoints** (``limit_graph.flows.runner.
runner``) and no pull steps: a process worker imports the flow from the same
environment it runs in, whatever its working directory.  :data:`DEPLOYMENTS` is the one
table both follow (``tests/deploy/test_prefect_yaml.py`` holds them together).

The example workflows (``examples/*.yaml``) are deployments of the scheduled-workflow
flow with inactive schedules (``example-bell-sweep``, ...): turn one on in the Prefect UI
and it runs on its schedule with the key in the ``limit-workflow-key`` Secret block
(:mod:`limit_graph.flows.workflow`); applying them again turns it off.  They name their
file, so they exist only where there is a source checkout to read it from
(``pip install -e .``); an installed wheel has no examples and deploys none.

The work pools are ``process`` pools unless made ``kubernetes`` pools
(``limit prefect register --pool-type kubernetes``), whose runners start as Kubernetes
Jobs from the base job template of :mod:`limit_graph.deployments.kubernetes`.

>>> # async with prefect_api(url) as client:
>>> #     await ensure_work_pools(client); await apply_deployments()
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.client.schemas.objects import WorkPool
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.flows import Flow
from prefect.schedules import Cron, Interval, Schedule
from prefect.types.entrypoint import EntrypointType
from prefect.workers.process import ProcessWorker

from limit_graph.core.errors import ConfigError
from limit_graph.core.models import BackendKind
from limit_graph.deployments.kubernetes import KubernetesJobOptions, kubernetes_job_template
from limit_graph.deployments.pools import PoolType

__all__ = [
    "DEPLOYMENTS",
    "EXAMPLES_FOLDER",
    "EXAMPLE_DEPLOYMENTS",
    "WORK_POOLS",
    "DeploymentSpec",
    "PoolType",
    "apply_deployments",
    "base_job_template",
    "build_deployment",
    "check_work_pool_types",
    "ensure_work_pools",
]

WORK_POOLS: tuple[str, ...] = tuple(kind.value for kind in BackendKind)


EXAMPLES_FOLDER = Path(__file__).resolve().parents[3] / "examples"
"""The checkout's ``examples/`` folder (absent from an installed wheel)."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, its name, work pool, parameters and schedule (a cron
    in ``timezone`` or an interval; ``active`` false makes it inactive)."""

    name: str
    module: str
    function: str
    pool: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    interval_s: int | None = None
    cron: str | None = None
    timezone: str = "UTC"
    active: bool = True
    tags: tuple[str, ...] = ("limit-graph",)

    @property
    def entrypoint(self) -> str:
        """The module-path entrypoint (``module.function``)."""
        return f"{self.module}.{self.function}"

    def schedules(self) -> list[Schedule]:
        """The deployment's schedules: none, or its cron or its interval."""
        if self.cron is not None:
            return [Cron(self.cron, timezone=self.timezone, active=self.active)]
        if self.interval_s is not None:
            return [Interval(self.interval_s, timezone=self.timezone, active=self.active)]
        return []

    def load_flow(self) -> Flow[..., Any]:
        found = getattr(importlib.import_module(self.module), self.function)
        if not isinstance(found, Flow):
            raise TypeError(f"{self.entrypoint} is not a Prefect flow")
        return found


def _runner(pool: str) -> DeploymentSpec:
    return DeploymentSpec(
        name=pool,
        module="limit_graph.flows.runner",
        function="runner",
        pool=pool,
        description=f"A runner for the {pool} pool: serves claimed executions until idle.",
        parameters={"pool": pool},
        tags=("limit-graph", "runner"),
    )


def _maintenance(name: str, function: str, description: str, **schedule: Any) -> DeploymentSpec:
    return DeploymentSpec(
        name=name,
        module="limit_graph.flows.maintenance",
        function=function,
        pool=BackendKind.LOCAL.value,
        description=description,
        tags=("limit-graph", "maintenance"),
        **schedule,
    )


def _example(name: str, file: str, cron: str, what: str) -> DeploymentSpec:
    """``example-<name>``: not a name ``limit workflow deploy`` gives by default, so a
    deployment of the same file made with it is not replaced when these are applied."""
    return DeploymentSpec(
        name=f"example-{name}",
        module="limit_graph.flows.workflow",
        function="scheduled_workflow",
        pool=BackendKind.LOCAL.value,
        description=f"Example workflow {file}: {what} Its schedule is off until turned on.",
        parameters={"workflow_file": str(EXAMPLES_FOLDER / file)},
        cron=cron,
        active=False,
        tags=("limit-graph", "workflow", "example"),
    )


EXAMPLE_DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    (
        _example("bell-sweep", "bell_sweep.yaml", "0 6 * * *", "a quantum parameter sweep."),
        _example("qaoa-maxcut", "qaoa_maxcut.yaml", "0 7 * * 1", "QAOA MaxCut on three graphs."),
        _example(
            "classical-pipeline", "classical_pipeline.yaml", "0 5 * * *", "CSV in, summary out."
        ),
    )
    if EXAMPLES_FOLDER.is_dir()
    else ()
)

DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    *(_runner(pool) for pool in WORK_POOLS),
    _maintenance(
        "archive-idle-sessions",
        "archive_idle_sessions",
        "Archive sessions idle for a week (daily).",
        cron="0 3 * * *",
    ),
    _maintenance(
        "verify-ledger",
        "verify_ledger",
        "Verify the ledger's tree, entries and signed checkpoints, and the copy kept "
        "outside the database; record the result as a ledger entry and an artifact (hourly).",
        interval_s=3600,
    ),
    _maintenance(
        "expire-caches",
        "expire_caches",
        "Delete expired cache documents (every 15 minutes).",
        interval_s=900,
    ),
    *EXAMPLE_DEPLOYMENTS,
)


def base_job_template(
    pool_type: PoolType, pool: str, kubernetes: KubernetesJobOptions | None = None
) -> dict[str, Any]:
    """The base job template pool ``pool`` of type ``pool_type`` is registered with."""
    if pool_type is PoolType.KUBERNETES:
        return kubernetes_job_template(pool, kubernetes)
    template: dict[str, Any] = ProcessWorker.get_default_base_job_template()
    return template


async def _existing_pools(client: PrefectClient, pools: tuple[str, ...]) -> dict[str, WorkPool]:
    found = {}
    for name in pools:
        try:
            found[name] = await client.read_work_pool(name)
        except ObjectNotFound:
            continue
    return found


async def check_work_pool_types(
    client: PrefectClient, pool_type: PoolType, pools: tuple[str, ...] = WORK_POOLS
) -> dict[str, WorkPool]:
    """The pools that exist already; for kubernetes pools, a :class:`ConfigError` when one
    exists with another type (Prefect cannot change a pool's type), before any change.

    A process registration keeps a pool of another type as it is, so a pool switched to
    docker or kubernetes stays switched when ``limit up`` registers the platform again.
    """
    existing = await _existing_pools(client, pools)
    if pool_type is PoolType.PROCESS:
        return existing
    others = {name: pool.type for name, pool in existing.items() if pool.type != pool_type}
    if others:
        listed = ", ".join(f"{name!r} is a {kind} pool" for name, kind in sorted(others.items()))
        names = " ".join(sorted(others))
        raise ConfigError(
            f"cannot make the work pools {pool_type} pools: {listed}, and Prefect cannot "
            f"change a pool's type; delete them (`prefect work-pool delete {names}`, once "
            f"per pool) and register again, which applies their deployments again"
        )
    return existing


async def ensure_work_pools(
    client: PrefectClient,
    pools: tuple[str, ...] = WORK_POOLS,
    pool_type: PoolType = PoolType.PROCESS,
    kubernetes: KubernetesJobOptions | None = None,
) -> None:
    """Create the work pools that do not exist yet, as ``pool_type`` pools.

    Process: existing pools are kept as they are (so a pool switched to docker or
    kubernetes stays switched).  Kubernetes: existing kubernetes pools get the
    platform's base job template again (``kubernetes`` options: image, namespace); a pool
    of another type is a :class:`ConfigError` and nothing is changed.
    """
    existing = await check_work_pool_types(client, pool_type, pools)
    for name in pools:
        template = base_job_template(pool_type, name, kubernetes)
        description = f"LIMIT-Graph {name} backend: runners and maintenance flows."
        if name in existing:
            if pool_type is PoolType.KUBERNETES:
                update = WorkPoolUpdate(base_job_template=template, description=description)
                await client.update_work_pool(name, update)
            continue
        pool = WorkPoolCreate(
            name=name, type=pool_type.value, base_job_template=template, description=description
        )
        try:
            await client.create_work_pool(pool)
        except ObjectAlreadyExists:  # made meanwhile (a worker, another registration)
            if pool_type is PoolType.KUBERNETES:
                await ensure_work_pools(client, (name,), pool_type, kubernetes)


async def build_deployment(spec: DeploymentSpec) -> RunnerDeployment:
    """The :class:`RunnerDeployment` for ``spec``, with a module-path entrypoint."""
    deployment: RunnerDeployment = await spec.load_flow().ato_deployment(
        name=spec.name,
        work_pool_name=spec.pool,
        parameters=spec.parameters,
        description=spec.description,
        tags=list(spec.tags),
        schedules=spec.schedules(),
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return deployment


async def apply_deployments(specs: tuple[DeploymentSpec, ...] = DEPLOYMENTS) -> list[str]:
    """Create or update each deployment against the current Prefect API; their full names.

    Re-applying replaces a deployment's schedules with the ones in ``specs``.
    """
    names = []
    for spec in specs:
        deployment = await build_deployment(spec)
        await deployment.aapply()
        names.append(deployment.full_name)
    return names
