"""``limit db``: the database schema's revision, and moving it on purpose.

Every API process migrates its database forward when it starts, so most upgrades need
none of this. An operator uses it to migrate once before a rolling upgrade of several
replicas, to see where a database is, and to move it back before rolling a release
back (``docs/operations.md``, "Upgrading" and "Rolling back"). Each command works on the
database of the configuration ``limit up`` reads (``--config``/``LIMIT_CONFIG``,
``DATABASE_URL``), with the platform stopped or running.

Examples::

    limit db current                  # 0010 (head): Leases: which of the API processes...
    limit db history
    limit db upgrade                  # to the newest revision this release knows
    limit db downgrade 0009           # back to 0009, before running the release it belongs to
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from limit_graph.cli.client import CliError
from limit_graph.cli.output import print_json, print_text
from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import load_settings

__all__ = ["db_app"]

db_app = typer.Typer(help="Show and move the database schema's revision (migrations).")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (or LIMIT_CONFIG).")
]


def _database_url(config: Path | None) -> str:
    settings = load_settings(config)
    if settings.storage.type != "database":
        raise ConfigError(
            f"storage type {settings.storage.type!r} has no schema to migrate: "
            "`limit db` works on storage type = database (SQLite or Postgres)"
        )
    return settings.database_url


def _describe(revision: str | None) -> str:
    from limit_graph.storage.database import schema_versions  # slow: only when run

    if revision is None:
        return "none: the database was never migrated (the platform migrates it on start)"
    titles = {r.revision: r.title for r in schema_versions.revisions()}
    head = " (head)" if revision == schema_versions.head_revision() else ""
    return f"{revision}{head}: {titles.get(revision, 'unknown to this release')}"


@db_app.command("current")
def db_current(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The revision the database is at, and the newest this release knows."""
    from limit_graph.storage.database import schema_versions  # slow: only when run

    try:
        with schema_versions.migrating(_database_url(config)) as connection:
            current = schema_versions.current_revision(connection)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    head = schema_versions.head_revision()
    if as_json:
        print_json({"current": current, "head": head, "up_to_date": current == head})
        return
    print_text(_describe(current))
    if current != head:
        print_text(f"this release migrates it to {_describe(head)}")


@db_app.command("history")
def db_history() -> None:
    """Every revision this release knows, oldest first."""
    from limit_graph.storage.database import schema_versions  # slow: only when run

    for revision in schema_versions.revisions():
        print_text(f"{revision.revision}  {revision.title}")


def _move(config: Path | None, revision: str, *, forward: bool) -> tuple[str | None, str | None]:
    """Migrate the configured database to ``revision``; its revision before and after."""
    from limit_graph.storage.database import schema_versions  # slow: only when run

    move = schema_versions.upgrade if forward else schema_versions.downgrade
    try:
        with schema_versions.migrating(_database_url(config), create=forward) as connection:
            before = schema_versions.current_revision(connection)
            move(connection, revision)
            return before, schema_versions.current_revision(connection)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    config: ConfigOption = None,
) -> None:
    """Migrate the database forward (to the newest revision by default)."""
    before, after = _move(config, revision, forward=True)
    if before == after:
        print_text(f"already at {_describe(after)}")
    else:
        print_text(f"migrated from {before or 'an empty database'} to {_describe(after)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision (see `limit db history`).")],
    config: ConfigOption = None,
) -> None:
    """Migrate the database back to REVISION, for the release that expects it. Stop every
    API process of the newer release first: they would migrate it forward again."""
    before, after = _move(config, revision, forward=False)
    if before == after:
        print_text(f"already at {_describe(after)}")
    else:
        print_text(f"migrated back from {before} to {_describe(after)}")
