"""A store that cannot answer for now is a 503 problem with ``Retry-After``, never a 500,
and the platform recovers by itself when the store is back.

Postgres is made unreachable for real: the test's database stops accepting connections
(``ALLOW_CONNECTIONS false``) and its open ones are terminated, as a restart would; then
it accepts them again.  SQLite's busy lock is checked on a real locked database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from limit_graph.core.settings import load_settings
from limit_graph.storage.database.errors import storage_unavailable
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.live import live_server

HEADERS = {"X-API-Key": ADMIN_KEY}


def _admin(url: str) -> psycopg.Connection:
    base = make_url(url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(base.render_as_string(hide_password=False), autocommit=True)


class _Outage:
    """The test database refusing connections, and its open ones cut, until ``end``."""

    def __init__(self, url: str) -> None:
        self.name = make_url(url).database
        self.admin = _admin(url)

    def begin(self) -> None:
        name = sql.Identifier(self.name)
        self.admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            [self.name],
        )

    def end(self) -> None:
        name = sql.Identifier(self.name)
        self.admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))


@pytest.fixture
def outage(postgres_url: str) -> Iterator[_Outage]:
    made = _Outage(postgres_url)
    try:
        yield made
    finally:
        made.end()
        made.admin.close()


def _assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"].endswith("/storage-unavailable")
    assert int(answer.headers["retry-after"]) >= 1
    assert problem["retry_after_s"] >= 1


@pytest.mark.postgres
def test_postgres_out_of_reach_is_a_503_and_the_platform_recovers_by_itself(
    tmp_path: Path, postgres_url: str, outage: _Outage
) -> None:
    settings = load_settings(
        environ={}, home=str(tmp_path), admin_api_key=ADMIN_KEY, storage__url=postgres_url
    )
    with (
        live_server(settings) as server,
        httpx.Client(base_url=server.url, headers=HEADERS, timeout=60) as client,
    ):
        before = client.post("/sessions", json={})
        assert before.status_code == 201, before.text
        sid = before.json()["id"]
        outage.begin()
        _assert_unavailable(client.post("/sessions", json={}))
        _assert_unavailable(client.get(f"/sessions/{sid}"))
        _assert_unavailable(client.post(f"/sessions/{sid}/execute", json={"agent": "echo"}))
        assert client.get("/health").status_code == 503
        outage.end()
        after = client.post(f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {}})
        assert after.status_code == 200, after.text
        assert client.get(f"/sessions/{sid}").status_code == 200
        assert _eventually_healthy(client)  # health probes the database at most once a second


def _eventually_healthy(client: httpx.Client, within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if client.get("/health").status_code == 200:
            return True
        time.sleep(0.2)
    return False


def test_sqlite_busy_is_unavailable_and_a_broken_row_is_not(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as busy:
        other.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as duplicate:
        holder.execute("INSERT INTO t VALUES (1)")
    holder.close()
    other.close()
    unavailable = storage_unavailable(busy.value)
    assert unavailable is not None and unavailable.status_code == 503
    assert storage_unavailable(duplicate.value) is None
