"""``limit up``: load settings, make sure of the admin key, and serve the API."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from limit_graph.api import create_app
from limit_graph.cli.client import CliError
from limit_graph.core.errors import ConfigError
from limit_graph.core.logs import configure_logging
from limit_graph.core.settings import Settings, load_settings
from limit_graph.governance.auth import ensure_admin_key

__all__ = ["describe_storage", "serve"]


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


def serve(
    config: Path | None,
    bind: str | None,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
) -> None:
    try:
        settings = load_settings(
            config,
            server__bind_address=bind,
            server__ssl_certfile=ssl_certfile,
            server__ssl_keyfile=ssl_keyfile,
        )
        admin = ensure_admin_key(settings)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    import prefect  # noqa: F401 - Prefect sets up logging on import; ours must come after

    configure_logging(settings.log_level, json_format=settings.telemetry.json_logs)
    host, port = settings.server.host, settings.server.port
    scheme = "https" if settings.server.ssl_certfile else "http"
    print(f"LIMIT-Graph {settings.mode} mode, {describe_storage(settings)}")
    print(f"REST API: {scheme}://{host}:{port}  (OpenAPI docs at {scheme}://{host}:{port}/docs)")
    if admin.created:
        print(f"Admin API key (shown once; saved to {admin.path}, mode 0600):")
        print(f"  {admin.key}")
    elif admin.path is not None:
        print(f"Admin API key: in {admin.path}")
    else:
        print("Admin API key: from LIMIT_ADMIN_API_KEY")
    print(f"Try: curl -H 'X-API-Key: <key>' {scheme}://{host}:{port}/sessions", flush=True)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        ssl_certfile=settings.server.ssl_certfile,
        ssl_keyfile=settings.server.ssl_keyfile,
    )
