"""``limit up``: the whole platform on one machine, stopped cleanly by Ctrl-C or SIGTERM.

In order: settings and keys; a Prefect server (unless ``[prefect] api_url`` names one
or ``start_server`` is off); block types, blocks, work pools and deployments registered
with it; one process worker per pool; then the REST API: in this process, or with
``[server] workers = N`` in N API processes on one port
(:class:`~limit_graph.cli.api_workers.ApiProcesses`).  The Prefect children are
supervised by :class:`~limit_graph.cli.stack.Stack`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from limit_graph.api import create_app
from limit_graph.api.serving import PlatformServer
from limit_graph.cli.api_workers import (
    ApiProcesses,
    check_shared_storage,
    configure_process_logging,
    uvicorn_config,
)
from limit_graph.cli.client import CliError
from limit_graph.cli.record import remove_record, write_record
from limit_graph.cli.stack import Shutdown, Stack
from limit_graph.cli.target import connect_url
from limit_graph.core.agents import AgentRegistry
from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import ConfigWarning, Settings, load_settings
from limit_graph.deployments.server import prefect_env
from limit_graph.governance.auth import AdminKey, ensure_admin_key, ensure_runner_key

__all__ = ["describe_storage", "platform_url", "prefect_ui_url", "prefect_ui_warning", "serve"]


def describe_storage(settings: Settings) -> str:
    kind = settings.storage.type
    if kind == "file":
        return f"file storage in {settings.file_storage_path}"
    if kind == "memory":
        return "memory storage (nothing is kept after exit)"
    url = settings.database_url
    if url.startswith("sqlite"):
        return f"SQLite at {url.split(':///', 1)[1]}"
    return f"Postgres at {url.split('@', 1)[-1]}"


def platform_url(settings: Settings) -> str:
    """The REST API's address as a client on this machine reaches it."""
    return connect_url(settings.server)


def prefect_ui_url(api_url: str) -> str:
    """The Prefect UI for an API URL (the UI is served at the API's root)."""
    return api_url.rstrip("/").removesuffix("/api")


def prefect_ui_warning(api_url: str) -> str | None:
    """Why the UI at ``api_url``'s root would not show that API's runs, or None.

    A Prefect server's UI calls the API its ``/ui-settings`` names, which follows the
    server's settings, not its ``--port``: a server started by hand on another port
    still sends its UI to port 4200.
    """
    ui = prefect_ui_url(api_url)
    try:
        response = httpx.get(f"{ui}/ui-settings", timeout=5.0)
        calls = response.json().get("api_url") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None  # no UI there, or not a Prefect server's: nothing to compare
    if not isinstance(calls, str):
        return None
    calls = urljoin(f"{ui}/", calls)
    if calls.rstrip("/") == api_url.rstrip("/"):
        return None
    return (
        f"the Prefect UI at {ui} calls the API at {calls}, not {api_url}, so it shows "
        f"another server's runs or none; start that server with PREFECT_SERVER_UI_API_URL={api_url}"
    )


def _load(
    config: Path | None,
    bind: str | None,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
    **more: Any,
) -> Settings:
    return load_settings(
        config,
        server__bind_address=bind,
        server__ssl_certfile=ssl_certfile,
        server__ssl_keyfile=ssl_keyfile,
        **more,
    )


async def _register(settings: Settings, api_url: str, runner_key: str) -> Settings:
    """Register with Prefect and take in backend instances saved as blocks (file wins)."""
    from limit_graph.deployments.register import (
        load_backend_blocks,
        merge_backend_instances,
        register_platform,
    )

    done = await register_platform(
        settings, api_url, platform_url=platform_url(settings), runner_key=runner_key
    )
    print(f"Prefect blocks: {', '.join(done.blocks)}")
    print(f"Prefect work pools: {', '.join(done.work_pools)}; {len(done.deployments)} deployments")
    instances = merge_backend_instances(
        settings.backends.instances, await load_backend_blocks(api_url)
    )
    backends = settings.backends.model_copy(update={"instances": instances})
    return settings.model_copy(update={"backends": backends})


def serve(
    config: Path | None,
    bind: str | None,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    *,
    prefect: bool = True,
) -> None:
    """Serve until SIGINT or SIGTERM; ``prefect=False`` starts and registers nothing with
    Prefect (the platform still reports to ``[prefect] api_url`` when one is set)."""
    try:
        with warnings.catch_warnings(record=True) as notices:
            warnings.simplefilter("always", ConfigWarning)
            settings = _load(config, bind, ssl_certfile, ssl_keyfile)
        for notice in notices:  # once: the settings are loaded again below, unchanged
            print(f"warning: {notice.message}", file=sys.stderr, flush=True)
        warnings.simplefilter("ignore", ConfigWarning)
        check_shared_storage(settings)
        admin = ensure_admin_key(settings)
        runner = ensure_runner_key(settings)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    start_server = prefect and settings.prefect.api_url is None and settings.prefect.start_server
    api_url = settings.prefect.api_url
    if start_server:
        api_url = f"http://127.0.0.1:{settings.prefect.port}/api"
    if api_url is not None:
        # Before Prefect is imported, so this process's Prefect client uses it too.
        os.environ.update(prefect_env(settings.home.resolve() / "prefect", api_url))
    configure_process_logging(settings)
    print(f"LIMIT-Graph {settings.mode} mode, {describe_storage(settings)}", flush=True)
    try:  # a broken agent file stops here, said in a line, before anything has started
        AgentRegistry.discover(settings.agents.paths)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    try:
        with Stack(settings.home) as stack:
            if start_server:
                stack.start_prefect_server(
                    port=settings.prefect.port, database_url=settings.prefect.database_url
                )
            if prefect and api_url is not None:
                settings = _load(config, bind, ssl_certfile, ssl_keyfile, prefect__api_url=api_url)
                runner_key = runner.key if runner is not None else admin.key
                settings = _with_prefect(stack, settings, api_url, runner_key, start_server)
            if settings.server.workers > 1:
                _serve_from_processes(settings, admin)
            else:
                _serve_here(settings, admin)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except Shutdown:
        print("Stopped.", file=sys.stderr, flush=True)
    finally:
        remove_record()


def _with_prefect(
    stack: Stack, settings: Settings, api_url: str, runner_key: str, started: bool
) -> Settings:
    """Register and start workers; an outside Prefect that is down only degrades us."""
    try:
        settings = asyncio.run(_register(settings, api_url, runner_key))
    except ConfigError as exc:
        if started:
            raise
        print(f"warning: {exc}; serving without Prefect workers", file=sys.stderr, flush=True)
        return settings
    if settings.prefect.workers:
        from limit_graph.deployments.apply import WORK_POOLS

        env = {"LIMIT_API_URL": platform_url(settings), "LIMIT_RUNNER_API_KEY": runner_key}
        env["LIMIT_AGENT_PATHS"] = os.pathsep.join(str(p) for p in settings.agents.paths)
        stack.start_workers(api_url, WORK_POOLS, env)
        logs = settings.home / "prefect" / "worker-<pool>.log"
        print(f"Prefect workers: {', '.join(WORK_POOLS)} (logs: {logs})")
    print(f"Prefect UI: {prefect_ui_url(api_url)}")
    if not started and (warning := prefect_ui_warning(api_url)) is not None:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return settings


def _serve_here(settings: Settings, admin: AdminKey) -> None:
    """The REST API in this process, until a signal (``[server] workers = 1``)."""
    _print_banner(settings, admin)
    # Clients on this machine find this server from any folder (cli/record.py).
    write_record(platform_url(settings), settings.home, settings.server.ssl_certfile)
    # freeze: this process serves and does nothing else
    server = PlatformServer(uvicorn_config(create_app(settings), settings), freeze=True)
    server.run()
    if not server.started:
        raise CliError("the REST API did not start (the reason is logged above)")


def _serve_from_processes(settings: Settings, admin: AdminKey) -> None:
    """The REST API from ``[server] workers`` processes on one port, until a signal."""
    # From here this process only supervises: what its start made (Prefect's modules
    # among it) is kept out of every collection, its exit's too (seconds otherwise).
    gc.freeze()
    with ApiProcesses(settings) as processes:
        processes.start()
        _print_banner(settings, admin)
        pids = ", ".join(str(pid) for pid in processes.pids)
        print(f"REST API processes: {len(processes.pids)} (pids {pids})", flush=True)
        write_record(platform_url(settings), settings.home, settings.server.ssl_certfile)
        processes.supervise()


def _print_banner(settings: Settings, admin: AdminKey) -> None:
    url = platform_url(settings)
    print(f"REST API: {url}  (OpenAPI docs at {url}/docs)")
    if admin.created:
        print(f"Admin API key (shown once; saved to {admin.path}, mode 0600):")
        print(f"  {admin.key}")
    elif admin.path is not None:
        print(f"Admin API key: in {admin.path}")
    else:
        print("Admin API key: from LIMIT_ADMIN_API_KEY")
    print(f"Try: curl -H 'X-API-Key: <key>' {url}/sessions", flush=True)
