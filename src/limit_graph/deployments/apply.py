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

>>> # async with prefect_api(url) as client:
>>> #     await ensure_work_pools(client); await apply_deployments()
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists
from prefect.flows import Flow
from prefect.schedules import Cron, Interval, Schedule
from prefect.types.entrypoint import EntrypointType
from prefect.workers.process import ProcessWorker

from limit_graph.core.models import BackendKind

__all__ = [
    "DEPLOYMENTS",
    "EXAMPLES_FOLDER",
    "EXAMPLE_DEPLOYMENTS",
    "WORK_POOLS",
    "DeploymentSpec",
    "apply_deployments",
    "build_deployment",
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
