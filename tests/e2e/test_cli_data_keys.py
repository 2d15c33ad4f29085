"""``limit keys data`` and ``limit keys rotate-data`` against ``limit up`` in dev mode, as
an operator would: the KEK is made in the home (mode 0600), a rotation returns at once
and finishes in the background, and the old key ends retired.  The server's config
file sets ``key_refresh_s`` short: the rotation's settle waits that long, and one
process has nobody else to wait for."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.cli import Server, start
from tests.fixtures.waiting import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("data-keys")
    config = folder / "limit.toml"
    config.write_text("[encryption]\nkey_refresh_s = 0.5\n")
    running = start(folder, "--config", str(config))
    yield running
    running.stop()


def _as_admin(server: Server, *args: str) -> Any:
    key = (server.cwd / ".limit" / "admin.key").read_text().strip()
    done = server.limit(*args, env={**server.env, "LIMIT_API_KEY": key})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_a_rotation_from_the_cli_retires_the_old_key(server: Server) -> None:
    kek = server.cwd / ".limit" / "data.kek"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    listed, _ = _as_admin(server, "keys", "data")
    old = listed["active"]
    assert [k["state"] for k in listed["keys"]] == ["active"] and listed["kek_id"]

    started, told = _as_admin(server, "keys", "rotate-data")
    assert started["retiring"] == [old] and started["active"] != old
    assert "limit keys data" in told

    def finished() -> Any:
        status, _ = _as_admin(server, "keys", "data")
        rotation = status["rotation"]
        return status if rotation and rotation["phase"] in ("done", "failed") else None

    status = wait_until(finished, 60, what="the rotation to finish")
    assert status["rotation"]["phase"] == "done", status["rotation"]
    assert {k["kid"]: k["state"] for k in status["keys"]}[old] == "retired"


def test_a_caller_without_a_key_is_told_to_sign_in(server: Server) -> None:
    done = server.limit("keys", "rotate-data", env={**server.env, "LIMIT_API_KEY": "lgk_bogus"})
    assert done.returncode != 0 and "401" in (done.stderr + done.stdout)
