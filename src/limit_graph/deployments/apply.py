"""The platform's work pools and deployments, applied from the installed package.

``prefect.yaml`` describes the same deployments for ``prefect deploy --all`` from a
source checkout (file entrypoints, working directory pulled to the checkout).  An
installed package has no checkout, so ``limit up`` and ``limit prefect register``
apply them from here with **module-path entrypoints** (``limit_graph.flows.runner.
runner``) and no pull steps: a process worker imports the flow from the same
environment it runs in, whatever its working directory.  :data:`DEPLOYMENTS` is the one
table both follow (``tests/deploy/test_prefect_yaml.py`` holds them together).

>>> # async with prefect_api(url) as client:
>>> #     await ensure_work_pools(client); await apply_deployments()
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists
from prefect.flows import Flow
from prefect.types.entrypoint import EntrypointType
from prefect.workers.process import ProcessWorker

from limit_graph.core.models import BackendKind

__all__ = [
    "DEPLOYMENTS",
    "WORK_POOLS",
    "DeploymentSpec",
    "apply_deployments",
    "build_deployment",
    "ensure_work_pools",
]

WORK_POOLS: tuple[str, ...] = tuple(kind.value for kind in BackendKind)


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, its name, work pool, parameters and schedule."""

    name: str
    module: str
    function: str
    pool: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    interval_s: int | None = None
    cron: str | None = None
    tags: tuple[str, ...] = ("limit-graph",)

    @property
    def entrypoint(self) -> str:
        """The module-path entrypoint (``module.function``)."""
        return f"{self.module}.{self.function}"

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
        "Verify the provenance ledger end to end (hourly).",
        interval_s=3600,
    ),
    _maintenance(
        "expire-caches",
        "expire_caches",
        "Delete expired cache documents (every 15 minutes).",
        interval_s=900,
    ),
)


async def ensure_work_pools(client: PrefectClient, pools: tuple[str, ...] = WORK_POOLS) -> None:
    """Create the process work pools that do not exist yet (existing ones are kept as
    they are, so a pool switched to docker or kubernetes stays switched)."""
    template = ProcessWorker.get_default_base_job_template()
    for name in pools:
        pool = WorkPoolCreate(
            name=name,
            type="process",
            base_job_template=template,
            description=f"LIMIT-Graph {name} backend: runners and maintenance flows.",
        )
        try:
            await client.create_work_pool(pool)
        except ObjectAlreadyExists:
            continue


async def build_deployment(spec: DeploymentSpec) -> RunnerDeployment:
    """The :class:`RunnerDeployment` for ``spec``, with a module-path entrypoint."""
    deployment: RunnerDeployment = await spec.load_flow().ato_deployment(
        name=spec.name,
        work_pool_name=spec.pool,
        parameters=spec.parameters,
        description=spec.description,
        tags=list(spec.tags),
        interval=spec.interval_s,
        cron=spec.cron,
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
