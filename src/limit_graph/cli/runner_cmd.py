"""``limit runner``: serve one pool's executions from this machine, without Prefect.

The same loop as the ``limit-runner`` flow (``flows/runner.py``), for a machine that
is not a Prefect worker, for drills and for tests.  The key comes from ``--api-key``,
``LIMIT_RUNNER_API_KEY`` (or ``dispatch.runner_api_key`` of the configuration) or
``runner.key`` in the configuration's home (``LIMIT_HOME``, ``.limit`` by default).
Agents come from the entry points and the configuration's ``[agents] paths``
(``LIMIT_CONFIG``, or ``LIMIT_AGENT_PATHS``), as the platform's own.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Annotated

import typer

from limit_graph.cli.client import CliError
from limit_graph.cli.target import Configuration
from limit_graph.core.errors import ConfigError
from limit_graph.core.logs import configure_logging

__all__ = ["runner"]


def runner(
    pool: Annotated[str, typer.Option(help="The pool to serve: local, remote or quantum.")],
    instance: Annotated[
        str | None, typer.Option(help="Serve only this instance (default: every one).")
    ] = None,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="Platform API (default LIMIT_API_URL).")
    ] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="The runner key.")] = None,
    concurrency: Annotated[int, typer.Option(help="Executions at a time.", min=1)] = 16,
    idle_exit_s: Annotated[
        float | None, typer.Option(help="Exit after this long without work (default: never).")
    ] = None,
    fault_rate: Annotated[
        float,
        typer.Option(help="Drills: fail this fraction of executions (retryable).", min=0, max=1),
    ] = 0.0,
) -> None:
    """Claim and run executions of POOL until stopped (SIGTERM or Ctrl-C drains)."""
    from limit_graph.flows.runner import RunnerLoop, RunnerRefused

    if pool not in ("local", "remote", "quantum"):
        raise CliError(f"unknown pool {pool!r}: use local, remote or quantum")
    configuration = Configuration()
    key = configuration.runner_key(api_key)
    url = api_url or os.environ.get("LIMIT_API_URL") or "http://127.0.0.1:8080"
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper(), json_format=True)
    try:
        loop = RunnerLoop(
            url,
            key,
            pool,
            instance,
            concurrency=concurrency,
            idle_exit_s=idle_exit_s,
            fault_rate=fault_rate,
            agent_paths=configuration.settings.agents.paths,
        )
    except ConfigError as exc:  # an agent file that does not load
        raise CliError(str(exc)) from None
    try:
        summary = asyncio.run(loop.run())
    except (ConnectionError, RunnerRefused) as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(summary.as_dict()), flush=True)
