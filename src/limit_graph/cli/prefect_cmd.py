"""``limit prefect register`` and ``limit worker``: the platform's side of Prefect.

``register`` puts the block types, backend-instance and runner-credential blocks, work
pools and deployments into a Prefect API (what ``limit up`` does on start).  ``worker``
starts a Prefect process worker for one pool on another machine, pointed at a remote
platform API and Prefect server.

Examples::

    limit prefect register --prefect-api-url http://10.0.0.5:4200/api
    limit prefect register --pool-type kubernetes --image <registry>/limit-graph:0.1.0
    LIMIT_RUNNER_API_KEY=... limit worker --pool quantum \\
        --api-url http://10.0.0.5:8080 --prefect-api-url http://10.0.0.5:4200/api
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from limit_graph.cli.client import CliError
from limit_graph.core.errors import ConfigError
from limit_graph.core.models import BackendKind
from limit_graph.core.settings import Settings, load_settings
from limit_graph.deployments.kubernetes import DEFAULT_IMAGE, DEFAULT_NAMESPACE
from limit_graph.deployments.pools import PoolType
from limit_graph.governance.auth import ensure_admin_key, ensure_runner_key

__all__ = ["prefect_app", "worker"]

prefect_app = typer.Typer(help="Register the platform's blocks, work pools and deployments.")

PrefectUrlOption = Annotated[
    str | None,
    typer.Option(
        "--prefect-api-url",
        help="Prefect API (default PREFECT_API_URL, prefect.api_url, or 127.0.0.1:<port>/api).",
    ),
]


def _prefect_api_url(explicit: str | None, settings: Settings) -> str:
    if explicit:
        return explicit.rstrip("/")
    if settings.prefect.api_url:
        return settings.prefect.api_url.rstrip("/")
    return f"http://127.0.0.1:{settings.prefect.port}/api"


@prefect_app.command("register")
def register(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file (or LIMIT_CONFIG).")
    ] = None,
    prefect_api_url: PrefectUrlOption = None,
    platform_url: Annotated[
        str | None,
        typer.Option("--platform-url", help="REST API address runners use (default: bind)."),
    ] = None,
    pool_type: Annotated[
        PoolType,
        typer.Option(
            "--pool-type",
            help="Work-pool type: process pools run runners as processes beside the worker; "
            "kubernetes pools as Jobs (existing kubernetes pools get the template again).",
        ),
    ] = PoolType.PROCESS,
    image: Annotated[
        str,
        typer.Option("--image", help="Kubernetes pools: the image the runner Jobs run."),
    ] = DEFAULT_IMAGE,
    namespace: Annotated[
        str,
        typer.Option("--namespace", help="Kubernetes pools: the platform's namespace."),
    ] = DEFAULT_NAMESPACE,
) -> None:
    """Register block types and blocks, create the work pools and apply the deployments."""
    from limit_graph.cli.serve import platform_url as bound_url
    from limit_graph.deployments.kubernetes import KubernetesJobOptions
    from limit_graph.deployments.register import register_platform

    try:
        settings = load_settings(config)
        runner = ensure_runner_key(settings) or ensure_admin_key(settings)
        api_url = _prefect_api_url(prefect_api_url, settings)
        done = asyncio.run(
            register_platform(
                settings,
                api_url,
                platform_url=platform_url or bound_url(settings),
                runner_key=runner.key,
                pool_type=pool_type,
                kubernetes=KubernetesJobOptions(image=image, namespace=namespace),
            )
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    print(f"Registered with Prefect at {api_url}")
    print(f"  blocks:      {', '.join(done.blocks)}")
    print(f"  work pools:  {', '.join(done.work_pools)} ({pool_type.value})")
    print(f"  deployments: {', '.join(done.deployments)}")


def _require_up(url: str, what: str, hint: str) -> None:
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach {what} at {url} ({type(exc).__name__}: {exc}); {hint}"
        ) from None


def worker(
    pool: Annotated[BackendKind, typer.Option("--pool", help="Work pool to serve.")],
    api_url: Annotated[
        str | None,
        typer.Option("--api-url", help="LIMIT-Graph REST API (default LIMIT_API_URL)."),
    ] = None,
    prefect_api_url: Annotated[
        str | None,
        typer.Option("--prefect-api-url", help="Prefect API (default PREFECT_API_URL)."),
    ] = None,
) -> None:
    """Run a Prefect process worker for POOL here, against a remote platform and Prefect.

    The runner key comes from LIMIT_RUNNER_API_KEY, else from the `limit-runner` block.
    """
    env = dict(os.environ)
    platform = api_url or env.get("LIMIT_API_URL") or "http://127.0.0.1:8080"
    prefect = prefect_api_url or env.get("PREFECT_API_URL") or "http://127.0.0.1:4200/api"
    _require_up(prefect, "the Prefect API", "pass --prefect-api-url or set PREFECT_API_URL")
    _require_up(platform, "LIMIT-Graph", "pass --api-url or set LIMIT_API_URL")
    env.update({"LIMIT_API_URL": platform, "PREFECT_API_URL": prefect, "DO_NOT_TRACK": "1"})
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "1")
    args = [sys.executable, "-m", "prefect", "worker", "start"]
    args += ["--pool", pool.value, "--type", "process"]
    print(f"Prefect worker for pool {pool.value}: Prefect {prefect}, LIMIT-Graph {platform}")
    sys.stdout.flush()
    os.execve(sys.executable, args, env)
