"""``limit workflow deploy``: run a workflow file on a cron schedule, each run in a new session.

The workflow is validated by the platform first (an invalid one is refused with every
problem, exit 1, and nothing is made); then a Prefect deployment of the
``limit-scheduled-workflow`` flow is made, or updated when one of that name exists, on
the ``local`` work pool with the cron schedule and the params
(:mod:`limit_graph.deployments.workflows`).  Its runs call the platform this command
called, with this command's API key, which is kept in a Prefect ``Secret`` block.

The Prefect API is ``--prefect-api-url``, else ``PREFECT_API_URL`` or ``[prefect]
api_url`` of the configuration, else the server ``limit up`` starts
(``127.0.0.1:<[prefect] port>/api``).

Examples::

    limit workflow deploy bell-sweep.yaml --cron "0 3 * * *" --param shots=500
    limit workflow deploy pipeline.yaml --cron "*/30 8-18 * * 1-5" \\
        --timezone Europe/Paris --name pipeline-office-hours --paused
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from limit_graph.cli.client import ApiClient, CliError
from limit_graph.cli.inputs import parse_params, read_workflow_file
from limit_graph.cli.options import JsonOption, KeyOption, UrlOption
from limit_graph.cli.output import print_json, print_text, tell
from limit_graph.cli.target import Configuration
from limit_graph.cli.workflow_cmd import ParamOption, refuse_invalid
from limit_graph.core.errors import ConfigError, InvalidInput
from limit_graph.core.settings import Settings
from limit_graph.core.workflows.loading import load_workflow

__all__ = ["deploy", "prefect_api_url"]


def prefect_api_url(explicit: str | None, settings: Settings) -> str:
    """The Prefect API to deploy to: ``explicit``, the configuration's (which
    ``PREFECT_API_URL`` sets), else the one ``limit up`` starts on its port.

    >>> from limit_graph.core.settings import load_settings
    >>> prefect_api_url(None, load_settings(environ={}))
    'http://127.0.0.1:4200/api'
    >>> prefect_api_url(None, load_settings(environ={"PREFECT_API_URL": "http://p:4200/api/"}))
    'http://p:4200/api'
    """
    if explicit:
        return explicit.rstrip("/")
    if settings.prefect.api_url:
        return settings.prefect.api_url.rstrip("/")
    return f"http://127.0.0.1:{settings.prefect.port}/api"


def deploy(
    file: Annotated[Path, typer.Argument(help="A workflow file, YAML or JSON.")],
    cron: Annotated[
        str, typer.Option("--cron", help='When to run it, as cron: "0 3 * * *" is 03:00 daily.')
    ],
    param: ParamOption = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The deployment's name (default: the workflow's name)."),
    ] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="The cron's IANA time zone, e.g. Europe/Paris.")
    ] = "UTC",
    paused: Annotated[
        bool, typer.Option("--paused", help="Deploy with the schedule off (turn it on in Prefect).")
    ] = False,
    session_tag: Annotated[
        list[str] | None,
        typer.Option("--session-tag", help="Tag each run's session with this (repeatable)."),
    ] = None,
    wait_timeout: Annotated[
        float | None,
        typer.Option(
            "--wait-timeout", min=1, help="Seconds a run may take before it is cancelled."
        ),
    ] = None,
    prefect_url: Annotated[
        str | None,
        typer.Option(
            "--prefect-api-url",
            help="Prefect API (default PREFECT_API_URL, prefect.api_url, or 127.0.0.1:<port>/api).",
        ),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Deploy FILE to Prefect: it runs on the cron schedule, each run in a new session.

    Deploying again under the same name updates the deployment (its schedule on unless --paused).
    """
    from limit_graph.deployments.register import prefect_api
    from limit_graph.deployments.workflows import (
        WorkflowDeployment,
        WorkflowSchedule,
        deploy_workflow,
    )

    text = read_workflow_file(file)
    params = parse_params(param)
    schedule = WorkflowSchedule(cron, timezone, active=not paused)
    configuration = Configuration()
    target = configuration.target(url, api_key)
    client = ApiClient(target.url, target.key, verify=target.verify, origin=target.origin)
    try:
        with client.errors() as sdk:
            validation = sdk.validate_workflow(text, params)
    finally:
        client.close()
    refuse_invalid(validation)
    spec = load_workflow(text)
    description = spec.get("description")
    deployment = WorkflowDeployment(
        name=name or validation.name or file.stem,
        workflow=spec,
        schedule=schedule,
        params=params,
        api_url=target.url,
        session_tags=tuple(session_tag or ()),
        wait_timeout_s=wait_timeout,
        description=description if isinstance(description, str) else None,
    )
    prefect = prefect_api_url(prefect_url, configuration.settings)

    async def apply() -> dict[str, object]:
        async with prefect_api(prefect) as prefect_client:
            done = await deploy_workflow(prefect_client, deployment, api_key=target.key)
        return done.as_dict()

    try:
        deployment.check()
        done = asyncio.run(apply())
    except (InvalidInput, ConfigError) as exc:  # a bad deployment; a Prefect API not answering
        raise CliError(str(exc)) from None
    if as_json:
        print_json(done)
        return
    state = "active" if schedule.active else "paused (turn it on in the Prefect UI)"
    print_text(f"{'created' if done['created'] else 'updated'}  {done['deployment']}")
    print_text(f"id          {done['id']}")
    print_text(f"schedule    {schedule.describe()}, {state}")
    print_text(f"next run    {done['next_run'] or 'none while paused'}")
    print_text(f"prefect ui  {done['ui_url']}")
    tell(f"its runs call {target.url} with your API key, kept in Secret block {done['key_block']}")
