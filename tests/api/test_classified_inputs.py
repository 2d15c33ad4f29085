"""Classified inputs over REST: run only where cleared, and never stored in the clear."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from tests.fixtures.api import Api, assert_problem

SECRET = "patient-4711-blood-type-AB-negative"


async def test_a_classified_input_runs_locally_sealed_and_is_refused_elsewhere(
    api: Api, tmp_path: Path
) -> None:
    sid = await api.new_session(classification={"record": "pii"})
    ran = await api.client.post(
        f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {"record": SECRET}}
    )
    assert ran.status_code == 200, ran.text
    assert ran.json()["result"] == {"record": SECRET}  # the caller reads it back
    checks = {c["check"]: c["passed"] for c in ran.json()["checks"]}
    assert checks["data-classification"] is True
    stored = await api.platform.storage.get_execution(uuid.UUID(ran.json()["id"]))
    assert stored is not None and stored.sensitive and stored.inputs == {"record": SECRET}

    remote = await api.client.post(
        f"/sessions/{sid}/execute",
        json={"agent": "echo", "backend": "remote", "inputs": {"record": SECRET}, "wait_s": 0},
    )
    body = assert_problem(remote, 403)
    assert body["policy_ids"] == ["data-classification"]
    assert "record (pii: cleared for local)" in body["detail"]

    dump = "\n".join(sqlite3.connect(tmp_path / "api.db").iterdump())
    assert SECRET not in dump
