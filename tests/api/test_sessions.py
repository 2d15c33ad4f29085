"""Sessions over REST: shapes, lifecycle, paging, immutability, archive and restore."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import httpx

from limit_graph.api import create_app
from limit_graph.core.canonical import sha256_hex
from limit_graph.core.models import Session, SessionConfig, SessionState, utcnow
from limit_graph.core.settings import load_settings
from tests.fixtures.api import ADMIN_KEY, Api, assert_problem

SESSION_FIELDS = {
    "id",
    "name",
    "state",
    "config",
    "config_sha256",
    "owner",
    "tenant",
    "created_at",
    "updated_at",
    "prefect_flow_run_id",
}


async def test_create_session_returns_documented_shape_and_is_stored(api: Api) -> None:
    response = await api.client.post(
        "/sessions", json={"name": "demo", "config": {"tags": ["a"], "timeout_s": 5}}
    )
    assert response.status_code == 201
    body = response.json()
    assert body.keys() >= SESSION_FIELDS
    assert body["state"] == "active" and body["name"] == "demo" and body["owner"] == "admin"
    assert body["config_sha256"] == sha256_hex(body["config"])
    stored = await api.platform.storage.get_session(uuid.UUID(body["id"]))
    assert stored is not None and stored.config.tags == ["a"]
    entries = await api.platform.storage.list_entries(session_id=stored.id)
    assert [e.action for e in entries] == ["session.created"]


async def test_auth_is_required_except_for_health(api: Api) -> None:
    transport = api.client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        assert_problem(await anonymous.get("/sessions"), 401)
        wrong = await anonymous.get("/sessions", headers={"X-API-Key": "nope"})
        assert_problem(wrong, 401)
        bearer = await anonymous.get("/sessions", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert bearer.status_code == 200
        both_bad = await anonymous.get(
            "/sessions", headers={"Authorization": "Bearer nope", "X-API-Key": ADMIN_KEY}
        )
        assert_problem(both_bad, 401)
        basic = await anonymous.get("/sessions", headers={"Authorization": "Basic eDp5"})
        assert_problem(basic, 401)
        health = await anonymous.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.json()["checks"]["database"]["status"] == "ok"


async def test_list_filters_and_pages_through_every_session(api: Api) -> None:
    ids = [await api.new_session(tags=["even" if i % 2 == 0 else "odd"]) for i in range(7)]
    await api.client.post(f"/sessions/{ids[0]}/complete")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/sessions", params=params)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    even = (await api.client.get("/sessions", params={"tag": "even"})).json()["items"]
    assert [s["id"] for s in even] == ids[0::2]
    done = (await api.client.get("/sessions", params={"state": "completed"})).json()["items"]
    assert [s["id"] for s in done] == [ids[0]]
    assert_problem(await api.client.get("/sessions", params={"cursor": "garbage!"}), 422)
    assert_problem(await api.client.get("/sessions", params={"state": "sleeping"}), 422)
    assert_problem(await api.client.get("/sessions", params={"limit": 0}), 422)


async def test_sessions_are_isolated_by_tenant(api: Api) -> None:
    mine = await api.new_session()
    assert_problem(await api.other.get(f"/sessions/{mine}"), 404)
    assert_problem(await api.other.post(f"/sessions/{mine}/complete"), 404)
    assert (await api.other.get("/sessions")).json()["items"] == []
    theirs = (await api.other.post("/sessions", json={})).json()
    assert theirs["tenant"] == "other-tenant" and theirs["owner"] == "bob"
    # Nobody crosses tenants, the platform admin included.
    admin_view = (await api.client.get("/sessions")).json()["items"]
    assert {s["id"] for s in admin_view} == {mine}
    assert_problem(await api.client.get(f"/sessions/{theirs['id']}"), 404)


async def test_lifecycle_complete_delete(api: Api) -> None:
    sid = await api.new_session()
    completed = await api.client.post(f"/sessions/{sid}/complete")
    assert completed.status_code == 200 and completed.json()["state"] == "completed"
    assert_problem(await api.client.post(f"/sessions/{sid}/complete"), 409)
    deleted = await api.client.delete(f"/sessions/{sid}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert_problem(await api.client.get(f"/sessions/{sid}"), 404)
    assert_problem(await api.client.get(f"/sessions/{sid}/results"), 404)
    assert (await api.client.get("/sessions")).json()["items"] == []
    gone = (await api.client.get("/sessions", params={"state": "deleted"})).json()["items"]
    assert [s["id"] for s in gone] == [sid]
    actions = [e.action for e in await api.platform.storage.list_entries(session_id=uuid.UUID(sid))]
    assert actions == ["session.created", "session.completed", "session.deleted"]
    assert_problem(await api.client.delete(f"/sessions/{sid}"), 404)


async def test_unknown_and_malformed_ids(api: Api) -> None:
    missing = uuid.uuid4()
    body = assert_problem(await api.client.get(f"/sessions/{missing}"), 404)
    assert str(missing) in str(body["detail"])
    assert_problem(await api.client.get("/sessions/not-a-uuid"), 404)
    wrong_method = await api.client.patch("/sessions/restore", json={})
    assert_problem(wrong_method, 405)
    assert wrong_method.headers["allow"] == "POST"
    assert_problem(await api.client.post(f"/sessions/{missing}/archive"), 404)
    active = await api.new_session()
    not_yet = assert_problem(await api.client.get(f"/sessions/{active}/archive"), 409)
    assert "no archive yet" in str(not_yet["detail"])
    assert_problem(await api.client.get("/no/such/route"), 404)
    not_allowed = await api.client.put(f"/sessions/{missing}")
    assert_problem(not_allowed, 405)
    assert not_allowed.headers["allow"] == "DELETE, GET, PATCH"


async def test_config_is_immutable(api: Api) -> None:
    sid = await api.new_session(tags=["x"])
    session = (await api.client.get(f"/sessions/{sid}")).json()
    before = await api.ledger_size()
    changed = {**session["config"], "tags": ["y"]}
    body = assert_problem(await api.client.patch(f"/sessions/{sid}", json={"config": changed}), 409)
    assert "immutable" in str(body["detail"])
    assert await api.ledger_size() == before
    same = await api.client.patch(
        f"/sessions/{sid}", json={"config": session["config"], "name": "renamed"}
    )
    assert same.status_code == 200 and same.json()["name"] == "renamed"
    assert same.json()["config_sha256"] == session["config_sha256"]


async def test_bad_bodies_are_problems_and_write_nothing(api: Api) -> None:
    before = await api.ledger_size()
    cases = [
        (b"{not json", 400),
        (b'{"config": {"tags": "not-a-list"}}', 422),
        (b'{"config": {}, "surprise": 1}', 422),
        (b'{"config": {"backends": ["mainframe"]}}', 422),
        (b'{"config": {"timeout_s": -1}}', 422),
        (b'{"config": {"quotas": {"shots": false}}}', 422),
        (b'{"config": {"timeout_s": "10"}}', 422),
        (b'{"config": {"backends": ["local"], "default_backend": "quantum"}}', 422),
        (b"[]", 422),
    ]
    for raw, status in cases:
        response = await api.client.post(
            "/sessions", content=raw, headers={"Content-Type": "application/json"}
        )
        body = assert_problem(response, status)
        assert body.get("errors"), raw
    unknown = await api.client.post("/sessions", json={"config": {}, "surprise": 1})
    assert assert_problem(unknown, 422)["errors"][0]["loc"] == ["body", "surprise"]  # type: ignore[index]
    big = await api.client.post(
        "/sessions",
        content=b'{"name": "' + b"x" * (2 << 20) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(big, 413)
    assert await api.ledger_size() == before
    assert (await api.client.get("/sessions")).json()["items"] == []


async def _archived(api: Api) -> tuple[str, dict[str, Any]]:
    sid = await api.new_session(tags=["keep"])
    for n in range(3):
        done = await api.client.post(
            f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {"n": n}}
        )
        assert done.json()["state"] == "succeeded"
    await api.client.post(f"/sessions/{sid}/execute", json={"agent": "fail", "inputs": {}})
    summary = await api.client.post(f"/sessions/{sid}/archive")
    assert summary.status_code == 200
    assert summary.json()["entries"] == 9  # created + 2 per execution
    bundle = (await api.client.get(f"/sessions/{sid}/archive")).json()
    assert bundle["bundle_sha256"] == summary.json()["bundle_sha256"]
    return sid, bundle


async def test_archive_then_restore_round_trips(api: Api) -> None:
    sid, bundle = await _archived(api)
    assert (await api.client.get(f"/sessions/{sid}")).json()["state"] == "archived"
    execute = await api.client.post(f"/sessions/{sid}/execute", json={"agent": "echo"})
    assert assert_problem(execute, 409)["policy_ids"] == ["session-active"]
    assert_problem(await api.client.post(f"/sessions/{sid}/archive"), 409)
    restored = await api.client.post("/sessions/restore", json=bundle)
    assert restored.status_code == 201, restored.text
    assert restored.json()["state"] == "active"
    assert restored.json()["restored_from"] == bundle["bundle_sha256"]
    results = (await api.client.get(f"/sessions/{sid}/results")).json()["items"]
    assert len(results) == 4
    assert_problem(await api.client.post("/sessions/restore", json=bundle), 409)


async def test_restore_into_another_platform(api: Api, tmp_path: Path) -> None:
    sid, bundle = await _archived(api)
    settings = load_settings(
        environ={},
        home=str(tmp_path / "elsewhere"),
        admin_api_key=ADMIN_KEY,
        storage__type="memory",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"X-API-Key": ADMIN_KEY}
        ) as fresh:
            restored = await fresh.post("/sessions/restore", json=bundle)
            assert restored.status_code == 201, restored.text
            items = (await fresh.get(f"/sessions/{sid}/results")).json()["items"]
            assert sorted(e["result"]["n"] for e in items if e["result"]) == [0, 1, 2]


def _rehash(bundle: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in bundle.items() if k != "bundle_sha256"}
    return {**body, "bundle_sha256": sha256_hex(body)}


async def test_tampered_bundles_are_refused_naming_the_bad_part(api: Api) -> None:
    sid, bundle = await _archived(api)
    before = await api.ledger_size()

    def tampered(edit: Any, rehash: bool = True) -> dict[str, Any]:
        copy_ = copy.deepcopy(bundle)
        edit(copy_)
        return _rehash(copy_) if rehash else copy_

    def set_result(b: dict[str, Any]) -> None:
        b["executions"][0]["result"] = {"n": 99}

    def set_payload(b: dict[str, Any]) -> None:
        b["entries"][2]["payload"]["result"] = {"n": 42}

    def set_actor(b: dict[str, Any]) -> None:
        b["entries"][1]["actor"] = "mallory"

    def set_tags(b: dict[str, Any]) -> None:
        b["session"]["config"]["tags"] = ["forged"]

    def drop_pointed_entry(b: dict[str, Any]) -> None:
        del b["entries"][2]

    def drop_entry(b: dict[str, Any]) -> None:
        del b["entries"][1]

    cases = [
        (tampered(set_result, rehash=False), "bundle_sha256"),
        (tampered(set_result), "does not match its ledger entry"),
        (tampered(set_payload), f"entry {bundle['entries'][2]['index']}: payload"),
        (tampered(set_actor), f"entry {bundle['entries'][1]['index']}: leaf_hash"),
        (tampered(set_tags), "session record does not match"),
        (tampered(drop_pointed_entry), "has no ledger entry"),
        (tampered(drop_entry), f"entry {bundle['entries'][1]['index']} of this ledger is missing"),
    ]
    for document, expected in cases:
        body = assert_problem(await api.client.post("/sessions/restore", json=document), 422)
        assert expected in str(body["detail"]), (expected, body["detail"])
    not_a_bundle = await api.client.post("/sessions/restore", json={"hello": 1})
    assert assert_problem(not_a_bundle, 422)["errors"]
    assert await api.ledger_size() == before
    stored = await api.platform.storage.get_session(uuid.UUID(sid))
    assert stored is not None and stored.state is SessionState.ARCHIVED


def _error_locs(body: dict[str, Any]) -> dict[tuple[str, ...], str]:
    return {tuple(e["loc"]): e["msg"] for e in body["errors"]}


async def test_bad_quotas_or_policies_are_a_422_naming_each_and_nothing_is_stored(
    api: Api,
) -> None:
    before = await api.ledger_size()
    cases = [
        ({"quotas": {"shots": -1}}, ("body", "config", "quotas"), "greater than or equal to 0"),
        ({"quotas": {"shot": 10}}, ("body", "config", "quotas"), "Extra inputs"),
        (
            {"quotas": {"shots": 10, "period": "day"}},
            ("body", "config", "quotas", "period"),
            "valid number",
        ),
        ({"policies": ["deny-all"]}, ("body", "config", "policies", 0), "dictionary"),
        ({"policies": [{"max_qubits": 7}]}, ("body", "config", "policies"), "names no check"),
        (
            {"policies": [{"check": "no-such-check"}]},
            ("body", "config", "policies", 0, "check"),
            "unknown check",
        ),
        (
            {"policies": [{"check": "circuit-limits", "max_qubits": 0}]},
            ("body", "config", "policies", 0, "max_qubits"),
            "greater than or equal to 1",
        ),
    ]
    for config, loc, says in cases:
        body = assert_problem(await api.client.post("/sessions", json={"config": config}), 422)
        locs = _error_locs(body)
        assert loc in locs, (config, locs)
        assert says in locs[loc] or says in str(body["detail"]), (config, body)
    assert await api.ledger_size() == before
    assert (await api.client.get("/sessions")).json()["items"] == []

    good = {
        "quotas": {"shots": 10_000, "executions": 5},
        "policies": [{"check": "circuit-limits", "max_qubits": 7}],
    }
    created = await api.client.post("/sessions", json={"config": good})
    assert created.status_code == 201, created.text
    assert created.json()["config"]["quotas"] == {"shots": 10_000, "executions": 5}
    assert created.json()["config"]["policies"] == good["policies"]


async def test_patch_with_another_config_is_a_conflict(api: Api) -> None:
    sid = await api.new_session(tags=["x"])
    session = (await api.client.get(f"/sessions/{sid}")).json()
    before = await api.ledger_size()
    asking = {"config": {**session["config"], "quotas": {"executions": 1}}, "name": "new"}
    assert_problem(await api.client.patch(f"/sessions/{sid}", json=asking), 409)
    assert await api.ledger_size() == before
    after = (await api.client.get(f"/sessions/{sid}")).json()
    assert after["name"] == session["name"] and after["config"] == session["config"]


async def test_a_session_with_quotas_and_policies_archives_and_restores(api: Api) -> None:
    config = {
        "quotas": {"executions": 3},
        "policies": [{"check": "allowed-targets", "targets": ["aer"]}],
    }
    sid = await api.new_session(**config)
    assert (await api.client.post(f"/sessions/{sid}/archive")).status_code == 200
    bundle = (await api.client.get(f"/sessions/{sid}/archive")).json()
    restored = await api.client.post("/sessions/restore", json=bundle)
    assert restored.status_code == 201, restored.text
    assert restored.json()["config"]["quotas"] == config["quotas"]
    assert restored.json()["config"]["policies"] == config["policies"]
    assert restored.json()["config_sha256"] == bundle["session"]["config_sha256"]


async def test_a_bundle_with_a_bad_declaration_is_not_restored(api: Api) -> None:
    """A bundle from elsewhere may declare a check this platform does not know."""
    legacy = make_session_record(quotas={"executions": 1.0}, policies=[{"check": "nope"}])
    await api.platform.storage.write_new_session(legacy, actor="admin", action="session.created")
    assert (await api.client.post(f"/sessions/{legacy.id}/archive")).status_code == 200
    bundle = (await api.client.get(f"/sessions/{legacy.id}/archive")).json()
    before = await api.ledger_size()
    body = assert_problem(await api.client.post("/sessions/restore", json=bundle), 422)
    assert ("body", "session", "config", "policies", 0, "check") in _error_locs(body)
    assert await api.ledger_size() == before
    stored = await api.platform.storage.get_session(legacy.id)
    assert stored is not None and stored.state is SessionState.ARCHIVED


def make_session_record(**config: Any) -> Session:
    settings = SessionConfig(**config)
    now = utcnow()
    return Session(
        id=uuid.uuid4(),
        name="legacy",
        state=SessionState.ACTIVE,
        config=settings,
        config_sha256=settings.sha256(),
        owner="admin",
        tenant="default",
        created_at=now,
        updated_at=now,
    )
