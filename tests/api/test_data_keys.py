"""The data-key routes as the platform admin calls them, over a real SQLite store: a
rotation is accepted at once (202), runs while requests are served, and ends with every
record readable and the old key retired; nobody else may list or rotate.  The settle
(``key_refresh_s``) is short here: one process has no other to wait for."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from limit_graph.core.canonical import sha256_hex
from limit_graph.orchestration.archive import parse_bundle, verify_bundle
from tests.fixtures.api import Api, assert_problem


@pytest.fixture
def api_settings() -> dict[str, object]:
    return {"encryption__key_refresh_s": 0.2}


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


async def test_a_sensitive_sessions_archive_is_sealed_at_rest_verifies_and_restores(
    api: Api, tmp_path: Path
) -> None:
    """The bundle, as exported, holds the plaintext and its salts (it verifies offline,
    without a key); as stored, it is sealed whole; restored, its records seal again."""
    session_id = await api.new_session(sensitive=True)
    marker = "plain-archive-marker-77a0"
    done = await api.client.post(
        f"/sessions/{session_id}/execute", json={"agent": "echo", "inputs": {"text": marker}}
    )
    assert done.status_code == 200, done.text
    archived = await api.client.post(f"/sessions/{session_id}/archive")
    assert archived.status_code == 200, archived.text
    bundle = (await api.client.get(f"/sessions/{session_id}/archive")).json()
    [execution] = bundle["executions"]
    assert execution["sensitive"] is True and execution["inputs"] == {"text": marker}
    assert set(execution["salts"]) >= {"inputs", "result"}
    entry = next(e for e in bundle["entries"] if e["index"] == execution["provenance_entry"])
    assert entry["payload"]["inputs"].startswith("sealed:sha256:")
    verify_bundle(parse_bundle(bundle))  # no key needed
    assert marker not in _dump(tmp_path)

    tampered = {**bundle, "executions": [{**execution, "inputs": {"text": "other"}}]}
    tampered.pop("bundle_sha256")
    tampered["bundle_sha256"] = sha256_hex(tampered)
    refused = assert_problem(await api.client.post("/sessions/restore", json=tampered), 422)
    assert "does not match its ledger entry" in str(refused["detail"])

    restored = await api.client.post("/sessions/restore", json=bundle)
    assert restored.status_code == 201, restored.text
    read = await api.client.get(f"/sessions/{session_id}/executions/{execution['id']}")
    assert read.json()["inputs"] == {"text": marker}
    assert marker not in _dump(tmp_path)
