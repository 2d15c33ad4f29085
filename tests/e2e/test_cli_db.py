"""``limit db`` as an operator runs it around an upgrade and a rollback: the revision a
database is at, migrating it forward and back on SQLite and Postgres, clear refusals of
a revision that does not exist, and a database a newer release migrated, which neither
``limit db`` nor the platform itself will run on."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from limit_graph.core.errors import ConfigError
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.database.schema_versions import head_revision, revisions
from tests.fixtures.cli import clean_env, run_limit
from tests.fixtures.postgres import scratch_database


def _db(tmp_path: Path, *args: str, url: str | None = None) -> tuple[int, str]:
    extra = {"LIMIT_HOME": str(tmp_path / ".limit")}
    if url is not None:
        extra["DATABASE_URL"] = url
    done = run_limit("db", *args, cwd=tmp_path, env=clean_env(**extra))
    return done.returncode, (done.stdout + done.stderr).strip()


def _previous() -> str:
    return revisions()[-2].revision


def _cycle(tmp_path: Path, url: str | None = None) -> None:
    head, previous = head_revision(), _previous()
    assert _db(tmp_path, "upgrade", url=url) == (
        0,
        f"migrated from an empty database to {head} (head): {revisions()[-1].title}",
    )
    code, shown = _db(tmp_path, "current", url=url)
    assert (code, shown.splitlines()[0]) == (0, f"{head} (head): {revisions()[-1].title}")
    assert _db(tmp_path, "downgrade", previous, url=url) == (
        0,
        f"migrated back from {head} to {previous}: {revisions()[-2].title}",
    )
    code, shown = _db(tmp_path, "current", url=url)
    assert code == 0
    assert shown.splitlines() == [
        f"{previous}: {revisions()[-2].title}",
        f"this release migrates it to {head} (head): {revisions()[-1].title}",
    ]
    assert _db(tmp_path, "upgrade", url=url)[1].startswith(f"migrated from {previous} to {head}")
    assert _db(tmp_path, "upgrade", url=url)[1].startswith(f"already at {head}")


def test_upgrade_downgrade_and_back_on_sqlite(tmp_path: Path) -> None:
    _cycle(tmp_path)
    assert _db(tmp_path, "current", "--json")[1] == (
        f'{{\n  "current": "{head_revision()}",\n  "head": "{head_revision()}",\n'
        '  "up_to_date": true\n}'
    )


def test_upgrade_downgrade_and_back_on_postgres(tmp_path: Path) -> None:
    with scratch_database("limit_db_cli") as url:
        _cycle(tmp_path, url.replace("postgresql+psycopg://", "postgresql://"))


def test_bad_revisions_and_stores_are_refused_and_change_nothing(tmp_path: Path) -> None:
    assert _db(tmp_path, "current") == (
        1,
        f"error: there is no SQLite database at {tmp_path / '.limit' / 'limit.db'}",
    )
    assert not (tmp_path / ".limit" / "limit.db").exists()
    assert _db(tmp_path, "upgrade")[0] == 0
    code, shown = _db(tmp_path, "downgrade", "0042")
    assert code == 1
    assert shown.startswith("error: no schema revision '0042': this release knows 0001, 0002")
    assert _db(tmp_path, "upgrade", "0042")[0] == 1
    assert _db(tmp_path, "current")[1].startswith(f"{head_revision()} (head)")
    done = run_limit(
        "db", "current", cwd=tmp_path, env=clean_env(LIMIT_STORAGE="memory", LIMIT_HOME="x")
    )
    assert done.returncode == 1
    assert "storage type 'memory' has no schema to migrate" in done.stderr


def test_a_database_a_newer_release_migrated_is_refused(tmp_path: Path) -> None:
    assert _db(tmp_path, "upgrade")[0] == 0
    database = tmp_path / ".limit" / "limit.db"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE limit_alembic_version SET version_num = '0099'")
    code, shown = _db(tmp_path, "current")
    assert (code, shown) == (
        0,
        f"0099: unknown to this release\nthis release migrates it to "
        f"{head_revision()} (head): {revisions()[-1].title}",
    )
    code, shown = _db(tmp_path, "downgrade", _previous())
    assert code == 1
    assert "the database is at schema revision 0099, which this release does not know" in shown

    storage = DatabaseStorage(f"sqlite+aiosqlite:///{database}")
    with pytest.raises(ConfigError, match="a newer release migrated it"):
        asyncio.run(storage.start())
    asyncio.run(storage.close())
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT version_num FROM limit_alembic_version").fetchall() == [("0099",)]
