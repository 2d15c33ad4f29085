"""``GET /sessions/{id}/provenance``: the session's ledger, paged, for its tenant only."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from limit_graph.storage.ledger import verify_entries
from tests.fixtures.api import Api, assert_problem

ENTRY_FIELDS = {
    "index",
    "timestamp",
    "actor",
    "action",
    "resource_type",
    "resource_id",
    "tenant",
    "session_id",
    "payload_sha256",
    "erasable",
    "leaf_hash",
    "proof",
}


async def _all_pages(client: httpx.AsyncClient, session_id: str, limit: int) -> list[Any]:
    items: list[Any] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await client.get(f"/sessions/{session_id}/provenance", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        params["cursor"] = page["next_cursor"]


async def test_the_ledger_says_who_deleted_a_session(api: Api) -> None:
    theirs = (await api.other.post("/sessions", json={})).json()["id"]
    for n in range(2):
        run = {"agent": "echo", "inputs": {"n": n}}
        assert (await api.other.post(f"/sessions/{theirs}/execute", json=run)).status_code == 200
    noise = await api.new_session()  # another session's entries interleave in the ledger
    await api.client.post(f"/sessions/{noise}/execute", json={"agent": "echo"})
    assert (await api.other.delete(f"/sessions/{theirs}")).status_code == 204
    assert_problem(await api.other.get(f"/sessions/{theirs}"), 404)

    entries = await _all_pages(api.other, theirs, limit=2)
    assert [e.keys() for e in entries] == [ENTRY_FIELDS] * len(entries)
    run = [("bob", "execution.started"), ("bob", "execution.succeeded")]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("bob", "session.created"),
        *run,
        *run,
        ("bob", "session.deleted"),
    ]
    assert entries[-1]["resource_type"] == "session"
    assert entries[-1]["resource_id"] == theirs
    # Another tenant's provenance is unknown to the platform admin too.
    assert_problem(await api.client.get(f"/sessions/{theirs}/provenance"), 404)
    stored = await api.platform.storage.list_entries(session_id=uuid.UUID(theirs))
    assert [e["leaf_hash"] for e in entries] == [e.leaf_hash for e in stored]
    assert [e["index"] for e in entries] == [e.index for e in stored]
    assert verify_entries(stored, contiguous=False) is None


async def test_denials_are_in_the_provenance_too(api: Api) -> None:
    sid = await api.new_session(backends=["local"])
    denied = {"agent": "echo", "backend": "remote"}
    assert_problem(await api.client.post(f"/sessions/{sid}/execute", json=denied), 403)
    page = (await api.client.get(f"/sessions/{sid}/provenance")).json()
    assert [e["action"] for e in page["items"]] == ["session.created", "execution.denied"]
    assert page["next_cursor"] is None


async def test_another_tenant_and_unknown_ids_get_404_and_bad_queries_422(
    api: Api, tmp_path: Path
) -> None:
    mine = await api.new_session()
    await api.client.delete(f"/sessions/{mine}")
    assert_problem(await api.other.get(f"/sessions/{mine}/provenance"), 404)
    assert_problem(await api.client.get(f"/sessions/{uuid.uuid4()}/provenance"), 404)
    assert_problem(await api.client.get("/sessions/not-a-uuid/provenance"), 404)
    path = f"/sessions/{mine}/provenance"
    for params in ({"cursor": "garbage!"}, {"limit": 0}, {"limit": 501}, {"limit": "1.5"}):
        assert_problem(await api.client.get(path, params=params), 422)
    forged = "WyJsZWRnZXIiLCAtNV0"  # ["ledger", -5]: well-formed, never issued
    assert_problem(await api.client.get(path, params={"cursor": forged}), 422)
    runner = {"X-API-Key": (tmp_path / "home" / "runner.key").read_text().strip()}
    denied = assert_problem(await api.client.get(path, headers=runner), 403)
    assert denied["policy_ids"] == ["default-deny"]


async def test_the_route_is_published_with_its_response_model(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    operation = document["paths"]["/sessions/{session_id}/provenance"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ProvenancePage"}
    assert {p["name"] for p in operation["parameters"]} == {"session_id", "limit", "cursor"}
    entry = document["components"]["schemas"]["ProvenanceEntryOut"]
    assert set(entry["required"]) == ENTRY_FIELDS - {"proof"}
