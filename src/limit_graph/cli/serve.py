"""``limit up``: load settings, make sure of the admin key, and serve the API."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from limit_graph.api import create_app
from limit_graph.cli.client import CliError
from limit_graph.core.errors import ConfigError
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


def serve(config: Path | None, bind: str | None) -> None:
    try:
        settings = load_settings(config, server__bind_address=bind)
        admin = ensure_admin_key(settings)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(
        max(logging.WARNING, logging.getLevelName(settings.log_level))
    )
    host, port = settings.server.host, settings.server.port
    print(f"LIMIT-Graph {settings.mode} mode, {describe_storage(settings)}")
    print(f"REST API: http://{host}:{port}  (OpenAPI docs at http://{host}:{port}/docs)")
    if admin.created:
        print(f"Admin API key (shown once; saved to {admin.path}, mode 0600):")
        print(f"  {admin.key}")
    elif admin.path is not None:
        print(f"Admin API key: in {admin.path}")
    else:
        print("Admin API key: from LIMIT_ADMIN_API_KEY")
    print(f"Try: curl -H 'X-API-Key: <key>' http://{host}:{port}/sessions")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
