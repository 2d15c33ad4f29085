"""Where the ledger benches keep their ledgers: a fresh Postgres database of their own
(created for the run and dropped after it, with every connection to it), or a SQLite
file in the run's folder."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from limit_graph.core.settings import normalize_database_url

__all__ = ["MADE", "fresh_postgres", "libpq", "postgres_reachable", "server_url", "sqlite_url"]

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
MADE: list[str] = []
"""The names of the databases :func:`fresh_postgres` made in this process (each dropped
when its block ends)."""


def server_url() -> str:
    """The server the benches make their databases on, as a database on it to connect
    to: ``LIMIT_BENCH_POSTGRES_URL``, else the test suite's ``LIMIT_TEST_POSTGRES_URL``,
    else the local default."""
    return (
        os.environ.get("LIMIT_BENCH_POSTGRES_URL")
        or os.environ.get("LIMIT_TEST_POSTGRES_URL")
        or DEFAULT_SERVER
    )


def libpq(url: str) -> str:
    """A SQLAlchemy URL as psycopg's ``connect`` takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def postgres_reachable() -> str | None:
    """Why the Postgres server cannot be used, or ``None`` when it can."""
    try:
        with psycopg.connect(libpq(server_url()), autocommit=True, connect_timeout=5):
            return None
    except psycopg.OperationalError as exc:
        return " ".join(str(exc).split())


@contextmanager
def fresh_postgres(label: str) -> Iterator[str]:
    """A new, empty database (``limit_bench_<label>_<hex>``); yields its async URL and
    drops it afterwards, whatever happened."""
    name = f"limit_bench_{label}_{secrets.token_hex(4)}"
    server = server_url()
    base = libpq(server)
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    MADE.append(name)
    try:
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        yield normalize_database_url(url)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def sqlite_url(path: Path) -> str:
    """The async URL of a SQLite file."""
    return normalize_database_url(f"sqlite:///{path}")
