"""Deployments of one workflow on a cron schedule: what ``limit workflow deploy`` makes.

A :class:`WorkflowDeployment` is a deployment of the ``limit-scheduled-workflow`` flow
(:mod:`limit_graph.flows.workflow`) named after the workflow, on the ``local`` work
pool, with the spec, its params and the session options as parameters and one cron
schedule (slug ``cron``) that is active unless deployed paused.  It is a real Prefect
schedule, so the Prefect UI lists it and pausing the deployment or turning the
schedule off there stops its runs.  The deploying user's API key goes into the
``Secret`` block :func:`~limit_graph.flows.workflow.workflow_key_block` names, never
into the parameters.  Deploying again under the same name updates the deployment
(its id stays) and its key.

>>> WorkflowSchedule("0 3 * * *", "Europe/Paris").describe()
'0 3 * * * (Europe/Paris)'
>>> # async with prefect_api(prefect_url) as client:
>>> #     done = await deploy_workflow(client, WorkflowDeployment("bell-sweep", spec,
>>> #                                  WorkflowSchedule("0 3 * * *")), api_key=key)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefect.blocks.system import Secret
from prefect.client.orchestration import PrefectClient
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron
from prefect.server.schemas.schedules import CronSchedule
from prefect.settings import get_current_settings
from prefect.types.entrypoint import EntrypointType
from pydantic import SecretStr, ValidationError

from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import BackendKind
from limit_graph.deployments.apply import ensure_work_pools
from limit_graph.flows.workflow import FLOW_NAME, scheduled_workflow, workflow_key_block

__all__ = [
    "SCHEDULE_SLUG",
    "DeployedWorkflow",
    "WorkflowDeployment",
    "WorkflowSchedule",
    "deploy_workflow",
    "prefect_ui_url",
]

SCHEDULE_SLUG = "cron"
"""The slug of a workflow deployment's one schedule."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def prefect_ui_url(api_url: str) -> str:
    """The Prefect UI for an API URL (the UI is served at the API's root).

    >>> prefect_ui_url("http://127.0.0.1:4200/api")
    'http://127.0.0.1:4200'
    """
    return api_url.rstrip("/").removesuffix("/api")


def _refused(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, [{"field": field, "msg": message, "type": "value_error"}])


@dataclass(frozen=True)
class WorkflowSchedule:
    """A cron schedule in an IANA time zone; ``active`` false is deployed paused."""

    cron: str
    timezone: str = "UTC"
    active: bool = True

    def check(self) -> CronSchedule:
        """The schedule as Prefect's server reads it; :class:`InvalidInput` if it cannot."""
        try:
            return CronSchedule(cron=self.cron, timezone=self.timezone)
        except ValidationError as exc:
            [first, *_] = exc.errors()  # the cron string is checked first, then the zone
            where = "cron" if first["loc"] else "timezone"
            message = str(first["msg"]).removeprefix("Value error, ")
            raise _refused(where, f"{self.describe()} is not a schedule: {message}") from None

    def describe(self) -> str:
        return f"{self.cron} ({self.timezone})"

    async def next_run(self, after: datetime | None = None) -> datetime:
        """When it fires next after ``after`` (default now), as Prefect's scheduler
        computes it, whether or not it is active."""
        [first] = await self.check().get_dates(n=1, start=after)
        return first

    def prefect_schedule(self) -> Any:
        return Cron(self.cron, timezone=self.timezone, active=self.active, slug=SCHEDULE_SLUG)


@dataclass(frozen=True)
class WorkflowDeployment:
    """A workflow to run on a schedule, each run in a new session.

    ``api_url`` is the platform the runs call (unset: the worker's ``LIMIT_API_URL``);
    ``session_tags`` are added to each run's session; ``wait_timeout_s`` is how long a
    run may take before it is cancelled (unset: the flow's default).
    """

    name: str
    workflow: Mapping[str, Any]
    schedule: WorkflowSchedule
    params: Mapping[str, Any] = field(default_factory=dict)
    api_url: str | None = None
    session_tags: tuple[str, ...] = ()
    wait_timeout_s: float | None = None
    pool: str = BackendKind.LOCAL.value
    description: str | None = None

    @property
    def key_block(self) -> str:
        return workflow_key_block(self.name)

    @property
    def full_name(self) -> str:
        return f"{FLOW_NAME}/{self.name}"

    def check(self) -> None:
        """Refuse a name Prefect or the key block cannot take, or a bad schedule."""
        if not NAME.fullmatch(self.name):
            raise _refused(
                "name",
                f"{self.name!r} is not a deployment name: 1 to 100 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit",
            )
        if self.wait_timeout_s is not None and self.wait_timeout_s <= 0:
            raise _refused("wait_timeout_s", "the wait timeout must be positive")
        self.schedule.check()

    def parameters(self) -> dict[str, Any]:
        """The flow run parameters: everything the run needs except the key."""
        found: dict[str, Any] = {
            "workflow": dict(self.workflow),
            "params": dict(self.params),
            "key_block": self.key_block,
        }
        if self.api_url is not None:
            found["api_url"] = self.api_url
        if self.session_tags:
            found["session_tags"] = list(self.session_tags)
        if self.wait_timeout_s is not None:
            found["wait_timeout_s"] = self.wait_timeout_s
        return found


@dataclass(frozen=True)
class DeployedWorkflow:
    """What :func:`deploy_workflow` made or updated."""

    full_name: str
    id: uuid.UUID
    created: bool
    pool: str
    schedule: WorkflowSchedule
    next_run: datetime | None
    key_block: str
    ui_url: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.full_name,
            "id": str(self.id),
            "created": self.created,
            "work_pool": self.pool,
            "cron": self.schedule.cron,
            "timezone": self.schedule.timezone,
            "active": self.schedule.active,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "key_block": self.key_block,
            "ui_url": self.ui_url,
        }


async def _saved_key(name: str, client: PrefectClient) -> Secret[Any] | None:
    try:
        found: Any = await Secret.aload(name, client=client)
    except ValueError:
        return None
    return found if isinstance(found, Secret) else None


async def deploy_workflow(
    client: PrefectClient, deployment: WorkflowDeployment, *, api_key: str
) -> DeployedWorkflow:
    """Create or update ``deployment`` and save ``api_key`` in its key block.

    Run it inside :func:`~limit_graph.deployments.register.prefect_api` (the
    deployment is applied to the current Prefect API).  A bad name or schedule is
    refused before anything is written; if applying fails, the key block is put back
    as it was.
    """
    deployment.check()
    try:
        existing = await client.read_deployment_by_name(deployment.full_name)
    except ObjectNotFound:
        existing = None
    await ensure_work_pools(client, (deployment.pool,))
    previous = await _saved_key(deployment.key_block, client)
    await Secret(value=SecretStr(api_key)).asave(
        deployment.key_block, overwrite=True, client=client
    )
    try:
        runner = await scheduled_workflow.ato_deployment(
            name=deployment.name,
            work_pool_name=deployment.pool,
            parameters=deployment.parameters(),
            description=deployment.description,
            tags=["limit-graph", "workflow"],
            schedules=[deployment.schedule.prefect_schedule()],
            paused=False,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        deployment_id = await runner.aapply()
    except BaseException:
        if previous is None:
            await Secret.adelete(deployment.key_block, client=client)
        else:
            await previous.asave(deployment.key_block, overwrite=True, client=client)
        raise
    api_url = get_current_settings().api.url or ""
    return DeployedWorkflow(
        full_name=deployment.full_name,
        id=deployment_id,
        created=existing is None,
        pool=deployment.pool,
        schedule=deployment.schedule,
        next_run=await deployment.schedule.next_run() if deployment.schedule.active else None,
        key_block=deployment.key_block,
        ui_url=f"{prefect_ui_url(api_url)}/deployments/deployment/{deployment_id}",
    )
