"""Fill the disk under the file backend: a clear error, and no corrupt file.

The platform runs on the file store, in a folder on a 2 MiB tmpfs of its own
(``tests/fixtures/small_disk.py``; the test skips, saying why, where it cannot mount
one), and is driven through its REST API.  Sessions and executions are written; then a
filler file takes the disk.  Every write then answers a 507 ``storage-full`` problem
(RFC 9457, with ``Retry-After``), never a 500: first with a little room left, so a
commit writes some of its files before the disk refuses the rest, then with none.  Reads
go on meanwhile, and the failed writes leave nothing behind.  With the filler deleted
the same process writes again; after a restart every record written before reads back
as it was, every file of the store parses, ``limit audit verify`` passes on the store,
and new writes succeed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from limit_graph.api import create_app
from limit_graph.core.settings import Settings, load_settings
from limit_graph.orchestration.platform import Platform
from tests.fixtures.cli import clean_env, run_limit
from tests.fixtures.small_disk import fill, small_disk

__all__ = ["small_disk"]

ADMIN_KEY = "faults-admin-key-0123456789abcdef"
BIG_TEXT = "x" * 40_000  # an execution's file alone needs more than the room left


@asynccontextmanager
async def platform_api(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """The app of ``settings`` (started, as ``limit up`` starts it) and an admin client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"X-API-Key": ADMIN_KEY}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            yield client, app.state.platform


def assert_storage_full(response: httpx.Response) -> None:
    """A 507 problem that says the disk is full and that nothing was written."""
    assert response.status_code == 507, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    problem = response.json()
    assert problem["type"].endswith("/storage-full")
    assert problem["title"] == "Insufficient storage"
    assert "disk the store writes to is full" in problem["detail"]
    assert "nothing of this request was written" in problem["detail"]
    assert "Traceback" not in response.text and "Errno" not in response.text


async def write_some(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Two sessions with two echo executions each; every record as GET answers it."""
    written: dict[str, dict[str, Any]] = {}
    for n in range(2):
        made = await client.post("/sessions", json={"name": f"before-{n}"})
        assert made.status_code == 201, made.text
        sid = made.json()["id"]
        for k in range(2):
            body = {"agent": "echo", "inputs": {"n": n, "k": k}}
            done = await client.post(f"/sessions/{sid}/execute", json=body)
            assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
            eid = done.json()["id"]
            written[f"/sessions/{sid}/executions/{eid}"] = {}
        written[f"/sessions/{sid}"] = {}
    for path in written:
        response = await client.get(path)
        assert response.status_code == 200, response.text
        written[path] = response.json()
    return written


def store_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_a_full_disk_is_a_clear_507_and_corrupts_nothing(
    small_disk: Path, tmp_path: Path
) -> None:
    store = small_disk / "store"
    config = tmp_path / "limit.toml"
    config.write_text(f'home = "{tmp_path / "home"}"\n[storage]\ntype = "file"\npath = "{store}"\n')
    settings = load_settings(config, environ={}, admin_api_key=ADMIN_KEY)
    assert settings.file_storage_path == store

    async with platform_api(settings) as (client, platform):
        written = await write_some(client)
        sid = next(iter(written)).split("/")[2]
        size = await platform.storage.ledger_size()
        results = (await client.get(f"/sessions/{sid}/results")).json()["items"]

        some_room = fill(small_disk, leave=8192, name="filler-1")  # a commit gets part-way
        big = {"agent": "echo", "inputs": {"text": BIG_TEXT}}
        assert_storage_full(await client.post(f"/sessions/{sid}/execute", json=big))
        assert [p for p in store_files(store) if p.suffix == ".tmp"] == []
        no_room = fill(small_disk, name="filler-2")
        assert_storage_full(await client.post("/sessions", json={"name": "during"}))
        small = {"agent": "echo", "inputs": {"n": 99}}
        assert_storage_full(await client.post(f"/sessions/{sid}/execute", json=small))
        assert_storage_full(await client.post(f"/sessions/{sid}/complete"))

        for path, record in written.items():  # reads go on, and nothing was half-written
            assert (await client.get(path)).json() == record
        assert (await client.get(f"/sessions/{sid}/results")).json()["items"] == results
        assert (await client.get(f"/sessions/{sid}")).json()["state"] == "active"
        assert await platform.storage.ledger_size() == size

        some_room.unlink()
        no_room.unlink()
        after = await client.post("/sessions", json={"name": "after-freeing"})
        assert after.status_code == 201, after.text
        done = await client.post(f"/sessions/{sid}/execute", json=big)
        assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
        for path in (
            f"/sessions/{after.json()['id']}",
            f"/sessions/{sid}/executions/{done.json()['id']}",
        ):
            written[path] = (await client.get(path)).json()

    leftovers = [p for p in store_files(store) if p.suffix == ".tmp" or p.name == "journal.json"]
    assert leftovers == []
    for file in store_files(store):  # every record whole: none torn by the full disk
        if file.suffix == ".json":
            json.loads(file.read_bytes())
    verified = run_limit("audit", "verify", "--config", str(config), cwd=tmp_path, env=clean_env())
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("the ledger verifies: ")

    async with platform_api(settings) as (client, _):  # a restart reads it all back
        for path, record in written.items():
            response = await client.get(path)
            assert response.status_code == 200, response.text
            assert response.json() == record
        lineage = await client.get(f"/sessions/{sid}/lineage")
        assert lineage.status_code == 200, lineage.text
        again = await client.post("/sessions", json={"name": "after-restart"})
        assert again.status_code == 201, again.text


async def test_a_full_disk_under_sqlite_is_a_507_and_the_store_writes_again(
    small_disk: Path, tmp_path: Path
) -> None:
    """SQLite's ``SQLITE_FULL`` is the same 507 (``storage/database/errors.py``): the
    transaction did not commit, reads go on, and the same process writes once there is
    room; the ledger verifies."""
    config = tmp_path / "limit.toml"
    database = small_disk / "limit.db"
    config.write_text(f'home = "{tmp_path / "home"}"\n[storage]\nurl = "sqlite:///{database}"\n')
    settings = load_settings(config, environ={}, admin_api_key=ADMIN_KEY)
    async with platform_api(settings) as (client, platform):
        written = await write_some(client)
        sid = next(iter(written)).split("/")[2]
        size = await platform.storage.ledger_size()
        filler = fill(small_disk)
        big = {"agent": "echo", "inputs": {"text": BIG_TEXT}}
        response = await client.post(f"/sessions/{sid}/execute", json=big)
        assert_storage_full(response)
        assert_storage_full(await client.post("/sessions", json={"name": "during"}))
        for path, record in written.items():
            assert (await client.get(path)).json() == record
        assert await platform.storage.ledger_size() == size
        filler.unlink()
        done = await client.post(f"/sessions/{sid}/execute", json=big)
        assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
    verified = run_limit("audit", "verify", "--config", str(config), cwd=tmp_path, env=clean_env())
    assert verified.returncode == 0, verified.stdout + verified.stderr
