"""Executions over REST: run, wait or not, fail, time out, deny, page, isolate."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from limit_graph.core.canonical import sha256_hex
from limit_graph.core.models import BackendKind
from tests.fixtures.api import Api, assert_problem
from tests.fixtures.waiting import eventually

EXECUTION_FIELDS = {
    "id",
    "session_id",
    "agent",
    "agent_version",
    "backend",
    "instance",
    "state",
    "inputs",
    "result",
    "error",
    "attempts",
    "cache_hit",
    "submitted_at",
    "started_at",
    "finished_at",
    "provenance_entry",
}


async def execute(api: Api, sid: str, **body: Any) -> Any:
    return await api.client.post(f"/sessions/{sid}/execute", json=body)


async def test_echo_runs_and_is_durable_with_its_ledger_entry(api: Api) -> None:
    sid = await api.new_session()
    response = await execute(api, sid, agent="echo", inputs={"hello": "world", "n": [1, 2]})
    assert response.status_code == 200
    body = response.json()
    assert body.keys() >= EXECUTION_FIELDS
    assert body["state"] == "succeeded" and body["result"] == {"hello": "world", "n": [1, 2]}
    assert body["backend"] == "local" and body["attempts"] == 1 and body["error"] is None
    stored = await api.platform.storage.get_execution(uuid.UUID(body["id"]))
    assert stored is not None and stored.result == body["result"]
    entries = await api.platform.storage.list_entries(session_id=uuid.UUID(sid))
    final = next(e for e in entries if e.index == body["provenance_entry"])
    assert final.action == "execution.succeeded"
    assert final.payload["result"] == body["result"]
    assert final.payload_sha256 == sha256_hex(final.payload)


async def test_failure_and_timeout_are_recorded_states(api: Api) -> None:
    sid = await api.new_session()
    failed = (await execute(api, sid, agent="fail", inputs={"message": "boom"})).json()
    assert failed["state"] == "failed"
    assert failed["error"] == {"type": "BackendError", "message": "boom", "retryable": False}
    slow = await execute(api, sid, agent="sleep", inputs={"seconds": 5}, timeout_s=0.1)
    assert slow.status_code == 200
    assert slow.json()["state"] == "timed_out" and slow.json()["error"]["type"] == "Timeout"


async def test_wait_zero_answers_202_and_the_result_arrives(api: Api) -> None:
    sid = await api.new_session()
    response = await execute(api, sid, agent="sleep", inputs={"seconds": 0.2}, wait_s=0)
    assert response.status_code == 202
    body = response.json()
    assert body["state"] == "running"
    location = response.headers["Location"]
    assert location == f"/sessions/{sid}/executions/{body['id']}"
    finished = await eventually(
        lambda: api.client.get(location), lambda got: got.json()["state"] != "running", 10, 0.05
    )
    current = finished.json()
    assert current["state"] == "succeeded" and current["result"] == {"slept_s": 0.2}


async def test_idempotency_key_returns_the_first_execution(api: Api) -> None:
    sid = await api.new_session()
    first = (await execute(api, sid, agent="echo", inputs={"v": 1}, idempotency_key="k1")).json()
    again = (await execute(api, sid, agent="echo", inputs={"v": 2}, idempotency_key="k1")).json()
    assert again["id"] == first["id"] and again["result"] == {"v": 1}
    other = await api.new_session()
    elsewhere = (await execute(api, other, agent="echo", idempotency_key="k1")).json()
    assert elsewhere["id"] != first["id"]
    assert len((await api.client.get(f"/sessions/{sid}/results")).json()["items"]) == 1


async def test_bad_requests_name_the_problem_and_write_nothing(api: Api) -> None:
    sid = await api.new_session()
    before = await api.ledger_size()
    unknown_agent = assert_problem(await execute(api, sid, agent="teleport"), 422)
    assert "teleport" in str(unknown_agent["detail"])
    assert unknown_agent["errors"][0]["loc"] == ["body", "agent"]  # type: ignore[index]
    bad_inputs = assert_problem(
        await execute(api, sid, agent="sleep", inputs={"seconds": "long"}), 422
    )
    assert bad_inputs["errors"][0]["loc"] == ["body", "inputs", "seconds"]  # type: ignore[index]
    assert_problem(await execute(api, sid, agent="sleep", inputs={"seconds": 1, "x": 2}), 422)
    assert_problem(await execute(api, sid, agent="echo", inputs=[1, 2]), 422)
    assert_problem(await execute(api, sid, agent="echo", wait_s=-1), 422)
    assert_problem(await execute(api, sid, agent="echo", wait_s=False), 422)
    assert_problem(await execute(api, sid, agent="echo", timeout_s="5"), 422)
    assert_problem(await execute(api, sid, agent="echo", backend="cloud"), 422)
    assert_problem(await execute(api, str(uuid.uuid4()), agent="echo"), 404)
    malformed = await api.client.post(
        f"/sessions/{sid}/execute",
        content=b'{"agent": ',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(malformed, 400)
    assert await api.ledger_size() == before


async def test_denials_name_the_check_and_are_recorded(api: Api) -> None:
    sid = await api.new_session(backends=["local", "quantum"])
    await api.client.post(f"/sessions/{sid}/complete")
    before = await api.ledger_size()
    inactive = assert_problem(await execute(api, sid, agent="echo"), 409)
    assert inactive["policy_ids"] == ["session-active"]
    assert await api.ledger_size() == before + 1
    denial = (await api.platform.storage.list_entries(after=before - 1))[0]
    assert denial.action == "execution.denied"
    assert denial.payload["policy_ids"] == ["session-active"]

    restricted = await api.new_session(backends=["local"])
    remote = assert_problem(await execute(api, restricted, agent="echo", backend="remote"), 403)
    assert remote["policy_ids"] == ["backend-allowed"]
    assert "remote" in str(remote["detail"])


async def test_remote_work_without_a_runner_is_accepted_and_stays_queued(api: Api) -> None:
    sid = await api.new_session()
    response = await execute(api, sid, agent="echo", backend="remote", wait_s=0)
    assert response.status_code == 202
    assert response.headers["location"].endswith(response.json()["id"])
    assert response.json()["state"] == "queued"
    status = (await api.client.get(f"/sessions/{sid}/status")).json()
    assert status["counts"]["queued"] == 1
    assert status["backends"]["remote"]["queued"] == 1


async def test_an_agent_asked_to_run_where_it_cannot_is_refused(api: Api) -> None:
    sid = await api.new_session()
    before = await api.ledger_size()
    api.platform.registry.register(
        replace(api.platform.registry.get("echo"), name="echo-local", backends=(BackendKind.LOCAL,))
    )
    response = await execute(api, sid, agent="echo-local", backend="quantum")
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["body", "backend"]  # type: ignore[index]
    assert "does not run on the 'quantum' backend" in str(body["detail"])
    assert await api.ledger_size() == before


async def test_results_page_filter_and_status_counts(api: Api) -> None:
    sid = await api.new_session()
    for n in range(5):
        await execute(api, sid, agent="echo", inputs={"n": n})
    await execute(api, sid, agent="fail")
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get(f"/sessions/{sid}/results", params=params)).json()
        ids += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(ids) == len(set(ids)) == 6
    failed = (await api.client.get(f"/sessions/{sid}/results", params={"state": "failed"})).json()
    assert [e["agent"] for e in failed["items"]] == ["fail"]
    status = (await api.client.get(f"/sessions/{sid}/status")).json()
    assert status["session_id"] == sid and status["state"] == "active"
    assert status["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 5,
        "failed": 1,
        "cancelled": 0,
        "timed_out": 0,
    }
    assert status["backends"]["local"]["succeeded"] == 5


async def test_status_is_as_new_as_the_latest_change_it_reports(api: Api) -> None:
    sid = await api.new_session()
    created = (await api.client.get(f"/sessions/{sid}")).json()["updated_at"]
    done = (await execute(api, sid, agent="echo", inputs={"n": 1})).json()
    status = (await api.client.get(f"/sessions/{sid}/status")).json()
    assert status["counts"]["succeeded"] == 1
    updated_at = datetime.fromisoformat(status["updated_at"])
    assert updated_at >= datetime.fromisoformat(done["finished_at"])
    assert updated_at > datetime.fromisoformat(created)
    last = (await api.platform.storage.list_entries(session_id=uuid.UUID(sid)))[-1]
    assert last.action == "execution.succeeded" and updated_at == last.timestamp


async def test_sessions_never_see_each_others_executions(api: Api) -> None:
    a = await api.new_session()
    b = await api.new_session()
    done = (await execute(api, a, agent="echo", inputs={"secret": 1})).json()
    assert_problem(await api.client.get(f"/sessions/{b}/executions/{done['id']}"), 404)
    assert (await api.client.get(f"/sessions/{b}/results")).json()["items"] == []
    assert (await api.client.get(f"/sessions/{a}/executions/{done['id']}")).status_code == 200
    assert_problem(await api.other.get(f"/sessions/{a}/executions/{done['id']}"), 404)
    assert_problem(await api.other.post(f"/sessions/{a}/execute", json={"agent": "echo"}), 404)


async def test_agents_are_listed_with_schemas_and_run_one_off(api: Api) -> None:
    listed = (await api.client.get("/agents")).json()["items"]
    assert {"echo", "sleep", "fail"} <= {a["id"] for a in listed}
    sleep = (await api.client.get("/agents/sleep")).json()
    assert sleep["input_schema"]["required"] == ["seconds"]
    assert sleep["output_schema"]["properties"]["slept_s"]["type"] == "number"
    assert_problem(await api.client.get("/agents/teleport"), 404)
    one_off = await api.client.post("/agents/echo/execute", json={"inputs": {"x": 1}})
    assert one_off.status_code == 200 and one_off.json()["result"] == {"x": 1}
    session = (await api.client.get(f"/sessions/{one_off.json()['session_id']}")).json()
    assert session["state"] == "completed" and "one-off" in session["config"]["tags"]
    sid = await api.new_session()
    inside = await api.client.post("/agents/echo/execute", json={"inputs": {}, "session_id": sid})
    assert inside.json()["session_id"] == sid
    before = await api.ledger_size()
    assert_problem(await api.client.post("/agents/teleport/execute", json={}), 404)
    assert await api.ledger_size() == before


async def test_openapi_documents_every_route(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/sessions",
        "/sessions/{session_id}",
        "/sessions/{session_id}/complete",
        "/sessions/{session_id}/archive",
        "/sessions/restore",
        "/sessions/{session_id}/execute",
        "/sessions/{session_id}/results",
        "/sessions/{session_id}/status",
        "/sessions/{session_id}/executions/{execution_id}",
        "/agents",
        "/agents/{agent_id}",
        "/agents/{agent_id}/execute",
        "/health",
    ):
        assert path in paths, path
