"""Maintenance: the REST routes through the real ASGI app over SQLite, then the flows
themselves against a real Prefect server and a live platform."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_API_URL, temporary_settings

from limit_graph.core import notes
from limit_graph.core.models import SessionState, utcnow
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer
from limit_graph.flows.maintenance import (
    LedgerVerificationFailed,
    archive_idle_sessions,
    expire_caches,
    verify_ledger,
)
from limit_graph.orchestration import maintenance
from tests.fixtures.api import ADMIN_KEY, Api, assert_problem
from tests.fixtures.clock import FakeUtcClock
from tests.fixtures.live import live_server

SET_ACTOR = "UPDATE limit_ledger SET leaf = json_set(leaf, '$.actor', 'x') WHERE idx = ?"
DROP = "DELETE FROM limit_ledger WHERE idx = ?"


def _tamper_now(database: Path, sql: str, index: int) -> None:
    with sqlite3.connect(database, timeout=60) as connection:  # past the append-only triggers
        for trigger in ("limit_ledger_no_update", "limit_ledger_no_delete"):
            connection.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        connection.execute(sql, (index,))


async def _tamper(database: Path, sql: str, index: int) -> None:
    """Change the stored ledger behind the platform's back, from a thread, so that the
    platform's own background writers (checkpoints, lineage) finish and free the lock."""
    await asyncio.to_thread(_tamper_now, database, sql, index)


async def _state(api: Api, session_id: str) -> SessionState:
    session = await api.platform.storage.get_session(uuid.UUID(session_id))
    assert session is not None
    return session.state


async def test_archive_idle_archives_only_sessions_without_recent_activity(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle = await api.new_session(tags=["idle"])
    busy = await api.new_session(tags=["busy"])  # old, but runs an execution later
    done = await api.new_session()
    assert (await api.client.post(f"/sessions/{done}/complete")).status_code == 200
    gone = await api.new_session()
    assert (await api.client.delete(f"/sessions/{gone}")).status_code == 204
    response = await api.other.post("/sessions", json={"config": {}})
    foreign = response.json()["id"]
    waiting = await api.new_session()  # idle, but its execution waits for a runner
    queued = await api.client.post(
        f"/sessions/{waiting}/execute",
        json={"agent": "echo", "inputs": {}, "backend": "remote", "wait_s": 0},
    )
    assert queued.json()["state"] == "queued", queued.text
    # The archive runs a day later by its clock: all of the above is a day old, the
    # execution and the session that follow are not.
    idle_since = utcnow()
    monkeypatch.setattr(maintenance, "utcnow", FakeUtcClock(idle_since + timedelta(days=1)))
    executed = await api.client.post(
        f"/sessions/{busy}/execute", json={"agent": "echo", "inputs": {"x": 1}}
    )
    assert executed.status_code == 200, executed.text
    fresh = await api.new_session()

    response = await api.client.post("/maintenance/archive-idle", params={"idle_days": 1})

    assert response.status_code == 200, response.text
    assert set(response.json()["archived"]) == {idle, done, foreign}
    [skipped] = response.json()["skipped"]
    assert skipped["id"] == waiting and "unfinished executions" in skipped["reason"]
    states = {sid: await _state(api, sid) for sid in (idle, busy, done, gone, foreign, fresh)}
    assert states == {
        idle: SessionState.ARCHIVED,
        busy: SessionState.ACTIVE,
        done: SessionState.ARCHIVED,
        gone: SessionState.DELETED,
        foreign: SessionState.ARCHIVED,
        fresh: SessionState.ACTIVE,
    }
    bundle = await api.platform.storage.get_archive(uuid.UUID(idle))
    assert bundle is not None and bundle["format"] == "limit-graph.archive/1"
    entries = await api.platform.storage.list_entries(session_id=uuid.UUID(foreign))
    assert (entries[-1].action, entries[-1].actor) == ("session.archived", "admin")


async def test_archive_idle_days_must_be_positive(api: Api) -> None:
    response = await api.client.post("/maintenance/archive-idle", params={"idle_days": 0})
    assert_problem(response, 422)


async def test_verify_ledger_names_the_first_bad_entry(api: Api, tmp_path: Path) -> None:
    session = await api.new_session()
    for n in range(3):
        await api.client.post(
            f"/sessions/{session}/execute", json={"agent": "echo", "inputs": {"n": n}}
        )
    size = await api.ledger_size()

    clean = await api.client.post("/maintenance/verify-ledger")
    report = {k: clean.json()[k] for k in ("ok", "size", "first_bad", "detail")}
    assert report == {"ok": True, "size": size, "first_bad": None, "detail": None}

    database = tmp_path / "api.db"
    await _tamper(database, SET_ACTOR, 4)
    altered = (await api.client.post("/maintenance/verify-ledger")).json()
    # the clean run's ledger.verified entry came after what it verified
    assert (altered["ok"], altered["size"], altered["first_bad"]) == (False, size + 1, 4)
    assert altered["detail"].startswith("entry 4: its leaf_hash")

    await _tamper(database, DROP, 2)
    dropped = (await api.client.post("/maintenance/verify-ledger")).json()
    assert (dropped["ok"], dropped["first_bad"]) == (False, 2)
    assert dropped["detail"].startswith("entry 2 is missing")


async def test_expire_caches_deletes_only_expired_documents(api: Api) -> None:
    storage = api.platform.storage
    now = utcnow()
    await storage.put_value("cache", "old", {"v": 1}, expires_at=now - timedelta(seconds=1))
    await storage.put_value("mirror", "older", {"v": 2}, expires_at=now - timedelta(days=1))
    await storage.put_value("cache", "new", {"v": 3}, expires_at=now + timedelta(hours=1))
    await storage.put_value("cache", "forever", {"v": 4})

    response = await api.client.post("/maintenance/expire-caches")

    assert response.json() == {"expired": 2}
    assert await storage.get_value("cache", "new") == {"v": 3}
    assert await storage.get_value("cache", "forever") == {"v": 4}
    assert (await api.client.post("/maintenance/expire-caches")).json() == {"expired": 0}


@pytest.mark.parametrize("path", ["archive-idle", "verify-ledger", "expire-caches"])
async def test_maintenance_is_for_the_admin_and_the_runners_only(
    api: Api, path: str, tmp_path: Path
) -> None:
    idle = await api.new_session()
    size = await api.ledger_size()
    body = assert_problem(await api.other.post(f"/maintenance/{path}"), 403)
    assert "bob may not maintenance.run" in str(body["detail"])
    assert body["policy_ids"] == ["default-deny"]
    assert_problem(await api.client.post(f"/maintenance/{path}", headers={"X-API-Key": ""}), 401)
    assert await api.actions_since(size) == ["access.denied"]
    assert await _state(api, idle) is SessionState.ACTIVE

    runner_key = (tmp_path / "home" / "runner.key").read_text().strip()
    as_runner = await api.client.post(f"/maintenance/{path}", headers={"X-API-Key": runner_key})
    assert as_runner.status_code == 200, as_runner.text


def test_the_flows_call_the_platform_and_fail_on_a_broken_ledger(
    prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'limit.db'}",
    )
    with (
        live_server(settings) as platform,
        temporary_settings({PREFECT_API_URL: prefect_server.api_url}),
    ):
        monkeypatch.setenv("LIMIT_API_URL", platform.url)
        monkeypatch.setenv(
            "LIMIT_RUNNER_API_KEY", (tmp_path / "home" / "runner.key").read_text().strip()
        )
        headers = {"X-API-Key": ADMIN_KEY}
        created = httpx.post(f"{platform.url}/sessions", json={"config": {}}, headers=headers)
        assert created.status_code == 201

        assert asyncio.run(archive_idle_sessions(idle_days=30)) == {"archived": [], "skipped": []}
        assert asyncio.run(expire_caches()) == {"expired": 0}
        assert asyncio.run(verify_ledger())["ok"] is True

        _tamper_now(tmp_path / "limit.db", SET_ACTOR, 0)
        state = asyncio.run(verify_ledger(return_state=True))
        assert state.is_failed()
        with pytest.raises(LedgerVerificationFailed, match="breaks at entry 0"):
            state.result()
        APILogHandler().flush()  # the runs' logs go to the server before the settings change


# --- verification with the platform's key, the copy outside, and its record ------------


def _resign_stored_now(database: Path, tree_size: int, note: str) -> None:
    with sqlite3.connect(database, timeout=60) as connection:  # past the append-only triggers
        connection.execute("DROP TRIGGER IF EXISTS limit_checkpoints_no_update")
        connection.execute(
            "UPDATE limit_checkpoints SET note = ? WHERE tree_size = ?", (note, tree_size)
        )


async def _verified_entries(api: Api, since: int) -> list[dict[str, object]]:
    """The ``ledger.verified`` entries written since the ledger held ``since``, as
    documents."""
    entries = await api.platform.storage.list_entries(after=since - 1, limit=100_000)
    return [e.document() for e in entries if e.action == maintenance.VERIFIED]


async def _checkpointed(api: Api) -> tuple[int, str]:
    """Sign the ledger's head now (so the platform's own checkpointer has nothing due
    for a while): its size and the note, also written to latest.note."""
    made = await api.platform.checkpoints.checkpoint()
    assert made is not None
    assert api.platform.checkpoints.latest_path.read_text() == made.note
    return made.tree_size, made.note


async def test_verify_ledger_checks_the_checkpoints_and_the_copy_and_records_its_report(
    api: Api,
) -> None:
    session = await api.new_session()
    await api.client.post(f"/sessions/{session}/execute", json={"agent": "echo", "inputs": {}})
    await _checkpointed(api)
    size = await api.ledger_size()

    answer = await api.client.post("/maintenance/verify-ledger")

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["checkpoints"] >= 1
    assert {k: v for k, v in report.items() if k != "checkpoints"} == {
        "ok": True,
        "size": size,
        "first_bad": None,
        "detail": None,
        "external": 1,
        "erased": 0,
    }
    [recorded] = await _verified_entries(api, size)
    assert recorded["index"] == size  # the report's size is what was verified, without it
    assert (recorded["actor"], recorded["tenant"], recorded["session_id"]) == ("admin", None, None)
    assert (recorded["resource_type"], recorded["resource_id"]) == (
        "ledger",
        api.platform.checkpoints.origin,
    )
    assert recorded["payload"] == report
    trail = (await api.client.get("/audit", params={"action": "ledger.verified"})).json()
    assert [e["index"] for e in trail["items"]] == [size]
    # the next verification covers that entry too
    again = (await api.client.post("/maintenance/verify-ledger")).json()
    assert (again["ok"], again["size"]) == (True, size + 1)


async def test_verify_ledger_fails_when_the_copy_outside_the_database_disagrees(
    api: Api,
) -> None:
    await api.new_session()
    checkpoints = api.platform.checkpoints
    for forged, words in [
        # another tree of the same size, signed with the platform's own key
        (lambda size: notes.Checkpoint(checkpoints.origin, size, bytes(32)), "do not match"),
        # a longer ledger than the database holds
        (lambda size: notes.Checkpoint(checkpoints.origin, size + 50, bytes(32)), "fewer than"),
        # another log's checkpoint
        (
            lambda size: notes.Checkpoint("elsewhere.example/ledger", size, bytes(32)),
            "of 'elsewhere.example/ledger', not",
        ),
    ]:
        size, _ = await _checkpointed(api)
        note = notes.sign_note(forged(size).text(), checkpoints.key.signer)
        checkpoints.latest_path.write_text(note)
        before = await api.ledger_size()

        report = (await api.client.post("/maintenance/verify-ledger")).json()

        assert (report["ok"], report["size"], report["external"]) == (False, before, 1)
        assert "latest.note" in report["detail"] and words in report["detail"], report
        [recorded] = await _verified_entries(api, before)
        assert recorded["payload"] == report
    # a copy signed by another key, and one that is not a note at all
    for text, words in [
        (
            notes.sign_note(
                notes.Checkpoint(checkpoints.origin, 1, bytes(32)).text(),
                notes.Signer.generate(checkpoints.origin),
            ),
            "no known key",
        ),
        ("not a note\n", "blank line"),
    ]:
        await _checkpointed(api)
        checkpoints.latest_path.write_text(text)
        report = (await api.client.post("/maintenance/verify-ledger")).json()
        assert report["ok"] is False and words in report["detail"], report
        assert report["first_bad"] is None


async def test_verify_ledger_fails_when_a_stored_checkpoint_was_resigned_with_another_key(
    api: Api, tmp_path: Path
) -> None:
    session = await api.new_session()
    await api.client.post(f"/sessions/{session}/execute", json={"agent": "echo", "inputs": {}})
    size, note = await _checkpointed(api)
    assert (await api.client.post("/maintenance/verify-ledger")).json()["ok"] is True
    body = note[: note.rindex("\n\n") + 1]
    impostor = notes.Signer.generate(api.platform.checkpoints.origin)  # same name, new key
    await asyncio.to_thread(
        _resign_stored_now, tmp_path / "api.db", size, notes.sign_note(body, impostor)
    )
    before = await api.ledger_size()

    report = (await api.client.post("/maintenance/verify-ledger")).json()

    assert (report["ok"], report["size"], report["first_bad"]) == (False, before, None)
    assert report["detail"].startswith(f"checkpoint {size}: ")
    assert "signed by no known key" in report["detail"]
    [recorded] = await _verified_entries(api, before)
    assert recorded["payload"] == report


async def _artifacts(flow_run_id: uuid.UUID) -> list[Any]:
    """The run's ``ledger-verification`` artifacts, from the Prefect server."""
    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(any_=["ledger-verification"]),
            )
        )


def test_the_verify_flow_shows_its_report_as_an_artifact_of_its_run(
    prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'limit.db'}",
    )
    with (
        live_server(settings) as platform,
        temporary_settings({PREFECT_API_URL: prefect_server.api_url}),
    ):
        monkeypatch.setenv("LIMIT_API_URL", platform.url)
        monkeypatch.setenv(
            "LIMIT_RUNNER_API_KEY", (tmp_path / "home" / "runner.key").read_text().strip()
        )
        admin = {"X-API-Key": ADMIN_KEY}
        assert httpx.post(f"{platform.url}/sessions", json={}, headers=admin).status_code == 201

        passed = asyncio.run(verify_ledger(return_state=True))
        assert passed.is_completed()
        answer = passed.result()
        [shown] = asyncio.run(_artifacts(passed.state_details.flow_run_id))
        assert shown.type == "markdown"
        assert shown.data.startswith("# The ledger verifies\n")
        assert f"| entries | {answer['size']} |" in shown.data
        assert "| first bad entry | — |" in shown.data
        trail = httpx.get(
            f"{platform.url}/audit", params={"action": "ledger.verified"}, headers=admin
        ).json()["items"]
        assert [e["index"] for e in trail] == [answer["size"]]
        assert trail[0]["actor"] != "admin"  # the flow's runner credentials

        _tamper_now(tmp_path / "limit.db", SET_ACTOR, 0)
        failed = asyncio.run(verify_ledger(return_state=True))
        assert failed.is_failed()
        [shown] = asyncio.run(_artifacts(failed.state_details.flow_run_id))
        assert shown.data.startswith("# The ledger does NOT verify\n")
        assert "| first bad entry | 0 |" in shown.data
        assert "| verified | no |" in shown.data
        APILogHandler().flush()  # the runs' logs go to the server before the settings change
