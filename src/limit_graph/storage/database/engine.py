"""Engines of the database backend: how they connect, and the migrations run on start.

SQLite connections use WAL, a busy timeout and foreign keys; transactions that write
begin ``IMMEDIATE`` (no lock upgrades, no "database is locked" half-way through), and
reads marked :data:`READ_ONLY` begin deferred.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL

__all__ = [
    "MIGRATIONS",
    "MIGRATION_LOCK_ID",
    "READ_ONLY",
    "RELAXED",
    "VERSION_TABLE",
    "alembic_config",
    "configure_sqlite",
    "run_migrations",
    "sync_driver",
]

MIGRATIONS = Path(__file__).parent.parent / "migrations"
MIGRATION_LOCK_ID = 0x4C494D4954  # "LIMIT"
VERSION_TABLE = "limit_alembic_version"
"""Where Alembic keeps the revision a database is at."""
READ_ONLY = "limit_read_only"
"""Execution option of a connection that only reads."""
RELAXED = "limit_relaxed"
"""Execution option of a connection whose commits need not wait for the disk (SQLite's
``synchronous=NORMAL`` in WAL mode: atomic and visible at once, carried to disk by the
next durable commit, lost only with the machine)."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration of our migrations, run on ``connection`` when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def run_migrations(connection: Connection, revision: str = "head") -> None:
    """Upgrade the schema on ``connection`` to ``revision`` (Alembic)."""
    command.upgrade(alembic_config(connection), revision)


def sync_driver(url: URL) -> str:
    """The synchronous driver for the group-commit writer: pysqlite, or psycopg itself."""
    return "sqlite+pysqlite" if url.get_backend_name() == "sqlite" else url.drivername


def configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys; writers begin IMMEDIATE (durable, unless
    :data:`RELAXED`), readers deferred."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "busy_timeout=30000",
            "foreign_keys=ON",
            "synchronous=FULL",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(READ_ONLY, False):
            conn.exec_driver_sql("BEGIN")
            return
        level = "NORMAL" if options.get(RELAXED, False) else "FULL"
        info = conn.connection.info
        if info.get("synchronous", "FULL") != level:  # only outside a transaction
            conn.exec_driver_sql(f"PRAGMA synchronous={level}")
            info["synchronous"] = level
        conn.exec_driver_sql("BEGIN IMMEDIATE")
