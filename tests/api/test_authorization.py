"""Who may call what: the runner key only does a runner's work; the platform admin may act
as one."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx

from limit_graph.core.models import ExecutionState, SessionState
from tests.fixtures.api import Api, assert_problem

RUNNER_ROUTES = ("/runners/", "/maintenance/")
OPEN_ROUTES = ("/health", "/metrics", "/auth/token", "/.well-known/jwks.json")
RESERVED_FOR_MEMBERS = [
    ("GET", "/audit"),
    ("GET", "/audit/export"),
    ("GET", "/sessions/{session_id}/lineage"),
]


def runner_headers(tmp_path: Path) -> dict[str, str]:
    """The runner key the app made in dev mode (``.limit/runner.key`` under its home)."""
    return {"X-API-Key": (tmp_path / "home" / "runner.key").read_text().strip()}


async def queued_remote_execution(api: Api, session_id: str) -> str:
    response = await api.client.post(
        f"/sessions/{session_id}/execute",
        json={"agent": "echo", "inputs": {"n": 1}, "backend": "remote", "wait_s": 0},
    )
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["id"]
    return execution_id


def assert_runner_denied(response: httpx.Response) -> None:
    body = assert_problem(response, 403)
    assert body["policy_ids"] == ["default-deny"], body
    assert str(body["detail"]).startswith("runner may not "), body


async def test_the_runner_key_cannot_create_run_or_delete(api: Api, tmp_path: Path) -> None:
    runner = runner_headers(tmp_path)
    theirs = (await api.other.post("/sessions", json={})).json()["id"]
    mine = await api.new_session()
    before = await api.ledger_size()

    assert_runner_denied(await api.client.post("/sessions", json={}, headers=runner))
    execute = {"agent": "echo", "inputs": {"n": 1}}
    assert_runner_denied(
        await api.client.post(f"/sessions/{mine}/execute", json=execute, headers=runner)
    )
    assert_runner_denied(await api.client.delete(f"/sessions/{mine}", headers=runner))
    # Another tenant's session is unknown to it, as to anyone outside that tenant.
    assert_problem(await api.client.delete(f"/sessions/{theirs}", headers=runner), 404)
    assert_runner_denied(await api.client.get("/sessions", headers=runner))
    assert_runner_denied(await api.client.get("/agents", headers=runner))

    # Nothing changed; each denial is on record.
    assert await api.actions_since(before) == ["access.denied"] * 5
    for session_id in (mine, theirs):
        stored = await api.platform.storage.get_session(uuid.UUID(session_id))
        assert stored is not None and stored.state is SessionState.ACTIVE
    listed = (await api.client.get("/sessions")).json()["items"]
    assert {s["id"] for s in listed} == {mine}


def _concrete(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


async def test_the_runner_key_is_refused_everywhere_but_its_own_routes(
    api: Api, tmp_path: Path
) -> None:
    runner = runner_headers(tmp_path)
    session_id = await api.new_session()
    execution_id = await queued_remote_execution(api, session_id)
    ids = {
        "session_id": session_id,
        "execution_id": execution_id,
        "agent_id": "echo",
        "run_id": str(uuid.uuid4()),  # refused before it is looked up
        "name": "summary",
        "principal_id": str(api.platform.admin.id),
        "key_id": "0123456789ab",
        "policy_id": "viewers-read",
        "grant_id": str(uuid.uuid4()),
        "scope": f"principal:{api.platform.admin.id}",
    }
    before = await api.ledger_size()
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    checked = []
    for path, operations in paths.items():
        if path.startswith(RUNNER_ROUTES) or path in OPEN_ROUTES:
            continue
        for method in operations:
            body = {} if method in ("post", "put", "patch") else None
            response = await api.client.request(
                method, _concrete(path, ids), json=body, headers=runner
            )
            assert_runner_denied(response)
            checked.append(f"{method.upper()} {path}")
    for method, path in RESERVED_FOR_MEMBERS:
        response = await api.client.request(method, _concrete(path, ids), headers=runner)
        assert_problem(response, 403)
    assert len(checked) >= 19, checked
    assert set(await api.actions_since(before)) == {"access.denied"}
    execution = await api.platform.storage.get_execution(uuid.UUID(execution_id))
    assert execution is not None and execution.state is ExecutionState.QUEUED


async def test_the_runner_key_claims_reports_and_runs_maintenance(api: Api, tmp_path: Path) -> None:
    runner = runner_headers(tmp_path)
    session_id = await api.new_session()
    execution_id = await queued_remote_execution(api, session_id)
    await _serve_one(api.client, runner, execution_id)
    done = (await api.client.get(f"/sessions/{session_id}/executions/{execution_id}")).json()
    assert done["state"] == "succeeded" and done["result"] == {"n": 1}
    verified = await api.client.post("/maintenance/verify-ledger", headers=runner)
    assert verified.status_code == 200 and verified.json()["ok"] is True


async def test_the_admin_may_act_as_a_runner(api: Api) -> None:
    """The decision of docs/orchestration.md: the admin key is the operator's superset
    credential, and outside dev mode with no runner key the runners carry it."""
    session_id = await api.new_session()
    execution_id = await queued_remote_execution(api, session_id)
    await _serve_one(api.client, {}, execution_id)
    actions = [
        (e.actor, e.action)
        for e in await api.platform.storage.list_entries(session_id=uuid.UUID(session_id))
    ]
    assert actions[-1] == ("admin", "execution.succeeded")


async def _serve_one(client: httpx.AsyncClient, headers: dict[str, str], execution_id: str) -> None:
    """Claim ``execution_id`` on the remote pool, heartbeat it and report it succeeded."""
    pool = {"runner_id": "r-1", "pool": "remote"}
    claim = await client.post("/runners/claim", json={**pool, "wait_s": 1}, headers=headers)
    assert claim.status_code == 200, claim.text
    [lease] = claim.json()["leases"]
    assert lease["execution"]["id"] == execution_id
    beat = await client.post(
        "/runners/heartbeat", json={**pool, "executions": [execution_id]}, headers=headers
    )
    assert beat.status_code == 200 and beat.json()["cancel"] == []
    result: dict[str, Any] = {
        "execution_id": execution_id,
        "attempt": lease["attempt"],
        "state": "succeeded",
        "result": lease["execution"]["inputs"],
    }
    report = await client.post(
        "/runners/report", json={"runner_id": "r-1", "results": [result]}, headers=headers
    )
    assert report.status_code == 200 and report.json()["accepted"] == [execution_id]


async def test_a_tenant_member_is_neither_a_runner_nor_a_maintainer(api: Api) -> None:
    session_id = await api.new_session()
    execution_id = await queued_remote_execution(api, session_id)
    claim = await api.other.post(
        "/runners/claim", json={"runner_id": "r-2", "pool": "remote", "wait_s": 0}
    )
    assert assert_problem(claim, 403)["policy_ids"] == ["default-deny"]
    maintenance = await api.other.post("/maintenance/expire-caches")
    assert assert_problem(maintenance, 403)["policy_ids"] == ["default-deny"]
    execution = await api.platform.storage.get_execution(uuid.UUID(execution_id))
    assert execution is not None and execution.state is ExecutionState.QUEUED


async def test_every_published_route_but_health_and_metrics_shows_its_security(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            schemes = {name for s in operation.get("security", []) for name in s}
            expected = set() if path in OPEN_ROUTES else {"HTTPBearer", "APIKeyHeader"}
            assert schemes == expected, (method, path)
