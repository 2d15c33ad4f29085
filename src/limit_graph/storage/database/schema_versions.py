"""The database schema's revisions: which one a database is at, and moving it.

Every API process migrates its database to the newest revision it knows when it starts
(:func:`run_migrations`, under an advisory lock on Postgres).  An operator moves it
explicitly before a rolling upgrade, and back before rolling one back: a process that
finds its database at a revision it does not know -- migrated by a newer release --
refuses to start (:class:`~limit_graph.core.errors.ConfigError`) rather than run on a
schema it was not written for.

``limit db current|history|upgrade|downgrade`` (:mod:`limit_graph.cli.db_cmd`) call
these functions; ``docs/operations.md`` says when.

>>> head_revision() == revisions()[-1].revision
True
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from limit_graph.core.errors import ConfigError
from limit_graph.storage.database.engine import (
    MIGRATION_LOCK_ID,
    VERSION_TABLE,
    alembic_config,
    configure_sqlite,
    run_migrations,
    sync_driver,
)

__all__ = [
    "Revision",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrating",
    "require_known_revision",
    "revisions",
    "upgrade",
]


@dataclass(frozen=True)
class Revision:
    """One migration: its id, the one it follows, and the first line of its docstring."""

    revision: str
    down_revision: str | None
    title: str


@functools.cache
def _script() -> ScriptDirectory:
    """The migrations, read once a process (each start asks which is the newest)."""
    return ScriptDirectory.from_config(alembic_config())


def _title(doc: str) -> str:
    """A migration docstring's first sentence, on one line."""
    paragraph = " ".join(doc.strip().split("\n\n", 1)[0].split())
    sentence = paragraph.split(". ", 1)[0]
    return sentence.rstrip(".") + "."


def revisions() -> list[Revision]:
    """Every revision this release knows, oldest first."""
    found = []
    for script in _script().walk_revisions():
        down = script.down_revision
        title = _title(script.doc or "")
        found.append(Revision(script.revision, down if isinstance(down, str) else None, title))
    found.reverse()
    return found


def head_revision() -> str:
    """The newest revision this release knows: what it migrates a database to."""
    head = _script().get_current_head()
    assert head is not None, "the migrations folder holds no revision"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; ``None`` for a database never migrated."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def require_known_revision(connection: Connection) -> None:
    """Refuse a database migrated by a newer release (a revision this one lacks)."""
    current = current_revision(connection)
    known = {r.revision for r in revisions()}
    if current is not None and current not in known:
        raise ConfigError(
            f"the database is at schema revision {current}, which this release does not "
            f"know (its newest is {head_revision()}): a newer release migrated it. Run that "
            f"release, or move the database back with its `limit db downgrade "
            f"{head_revision()}` first (docs/operations.md, 'Rolling back')"
        )


def _check_target(revision: str) -> str:
    if revision in ("head", "base"):
        return revision
    if revision not in {r.revision for r in revisions()}:
        known = ", ".join(r.revision for r in revisions())
        raise ConfigError(f"no schema revision {revision!r}: this release knows {known}")
    return revision


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate the database forward to ``revision`` (the newest by default); a database
    already there is left as it is, without starting Alembic's environment (every API
    process calls this as it starts)."""
    current = current_revision(connection)
    if current is not None and current == (head_revision() if revision == "head" else revision):
        return
    require_known_revision(connection)
    target = _check_target(revision)
    try:
        run_migrations(connection, target)
    except CommandError as exc:
        raise ConfigError(f"cannot upgrade to {revision}: {exc}") from None


def downgrade(connection: Connection, revision: str) -> None:
    """Migrate the database back to ``revision``; a migration that would lose what it
    cannot restore refuses (its error names why), and nothing is changed."""
    require_known_revision(connection)
    target = _check_target(revision)
    current = current_revision(connection)
    order = [r.revision for r in revisions()]
    if target != "base" and current is not None and order.index(target) > order.index(current):
        raise ConfigError(
            f"the database is at {current}, older than {target}: use `limit db upgrade`"
        )
    try:
        command.downgrade(alembic_config(connection), target)
    except (CommandError, RuntimeError) as exc:  # a migration's own refusal: RuntimeError
        raise ConfigError(f"cannot downgrade to {revision}: {exc}") from None


@contextmanager
def migrating(database_url: str, *, create: bool = False) -> Iterator[Connection]:
    """One transaction on the database at ``database_url`` (an async URL, as the settings
    give it), holding the migration lock on Postgres so that no API process starting at
    the same time migrates beside it; committed when the block ends without an error.
    A SQLite file that does not exist is made with ``create``, else refused."""
    url = make_url(database_url)
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and url.database in (None, "", ":memory:"):
        raise ConfigError("an in-memory SQLite database has no schema to keep")
    if sqlite and not Path(str(url.database)).is_file():
        if not create:
            raise ConfigError(f"there is no SQLite database at {url.database}")
        Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url.set(drivername=sync_driver(url)))
    if sqlite:
        configure_sqlite(engine)
    try:
        try:
            connection = engine.connect()
        except OperationalError as exc:
            shown = url.render_as_string(hide_password=True)
            raise ConfigError(f"cannot reach the database {shown}: {exc.orig}") from None
        with connection, connection.begin():
            if not sqlite:
                connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
            yield connection
    finally:
        engine.dispose()
