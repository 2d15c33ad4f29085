"""The data-key routes as the platform admin calls them, over a real SQLite store: a
rotation is accepted at once (202), runs while requests are served, and ends with every
record readable and the old key retired; nobody else may list or rotate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.fixtures.api import Api, assert_problem


def _dump(tmp_path: Path) -> str:
    with sqlite3.connect(tmp_path / "api.db") as conn:
        return "\n".join(conn.iterdump())


async def test_a_rotation_is_accepted_runs_in_the_background_and_retires_the_old_key(
    api: Api, tmp_path: Path
) -> None:
    listed = await api.client.get("/data-keys")
    assert listed.status_code == 200, listed.text
    before = listed.json()
    old = before["active"]
    assert [k["kid"] for k in before["keys"]] == [old] and before["rotation"] is None
    assert "wrapped" not in listed.text
    session_id = await api.new_session(sensitive=True)
    marker = "plain-api-marker-5f1c"
    done = await api.client.post(
        f"/sessions/{session_id}/execute", json={"agent": "echo", "inputs": {"text": marker}}
    )
    assert done.status_code == 200, done.text
    execution_id = done.json()["id"]
    assert marker not in _dump(tmp_path)

    size = await api.ledger_size()
    started = await api.client.post("/data-keys/rotate")
    assert started.status_code == 202, started.text
    assert started.headers["location"] == "/data-keys"
    body = started.json()
    assert body["retiring"] == [old] and body["active"] != old
    read = await api.client.get(f"/sessions/{session_id}/executions/{execution_id}")
    assert read.status_code == 200 and read.json()["inputs"] == {"text": marker}

    finished = await api.platform.data_keys.wait()
    assert finished is not None and finished.phase == "done", finished
    after = (await api.client.get("/data-keys")).json()
    assert after["active"] == body["active"] and after["rotation"]["phase"] == "done"
    assert {k["kid"]: k["state"] for k in after["keys"]} == {
        old: "retired",
        after["active"]: "active",
    }
    again = await api.client.get(f"/sessions/{session_id}/executions/{execution_id}")
    assert again.json()["inputs"] == {"text": marker}
    assert f"lgenc:v1:{old}:" not in _dump(tmp_path) and marker not in _dump(tmp_path)
    actions = await api.actions_since(size)
    assert "data_key.rotated" in actions and "data_key.retired" in actions


async def test_only_the_platform_admin_lists_or_rotates_data_keys(api: Api) -> None:
    size = await api.ledger_size()
    for method, path in (("GET", "/data-keys"), ("POST", "/data-keys/rotate")):
        denied = assert_problem(await api.other.request(method, path), 403)
        assert denied["policy_ids"]
    actions = await api.actions_since(size)
    assert "data_key.rotated" not in actions
    keys = (await api.client.get("/data-keys")).json()["keys"]
    assert len(keys) == 1 and keys[0]["state"] == "active"
