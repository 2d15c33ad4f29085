"""Several versions of one agent over REST: listed each, described by version, and
pinned by executions, which record the version they ran."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.version import Version

from limit_graph.api import create_app
from limit_graph.core.settings import load_settings
from limit_graph.orchestration.platform import Platform
from tests.fixtures.agent_folders import write_greet_folder
from tests.fixtures.api import assert_problem

ADMIN_KEY = "test-admin-key-0123456789abcdef"


@dataclass
class Api:
    client: httpx.AsyncClient
    platform: Platform


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'agents.db'}",
        agents__paths=[str(write_greet_folder(tmp_path / "agents"))],
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"X-API-Key": ADMIN_KEY}
        ) as client:
            yield Api(client, app.state.platform)


async def test_agents_lists_each_version_by_name_then_version(api: Api) -> None:
    response = await api.client.get("/agents")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    keys = [(a["id"], Version(a["version"])) for a in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    greets = [a for a in items if a["id"] == "greet"]
    assert [(a["version"], a["latest"]) for a in greets] == [("1.0.0", False), ("2.0.0", True)]
    assert greets[0]["description"] == "Greets someone by name."
    assert greets[1]["description"] == "Greets someone by name, and says so twice."
    assert greets[0]["input_schema"]["required"] == ["name"]
    assert greets[0]["output_schema"]["properties"].keys() == {"text", "version"}
    echo = next(a for a in items if a["id"] == "echo")
    assert (echo["version"], echo["latest"]) == ("1.0.0", True)


async def test_an_agent_is_its_newest_version_unless_one_is_asked_for(api: Api) -> None:
    newest = (await api.client.get("/agents/greet")).json()
    assert (newest["version"], newest["latest"]) == ("2.0.0", True)
    for path, params in (("/agents/greet", {"version": "1.0.0"}), ("/agents/greet@1.0.0", {})):
        older = await api.client.get(path, params=params)
        assert older.status_code == 200, older.text
        assert (older.json()["version"], older.json()["latest"]) == ("1.0.0", False)

    unknown = await api.client.get("/agents/greet", params={"version": "3.0.0"})
    problem = assert_problem(unknown, 404)
    assert problem["detail"] == "agent 'greet' has no version '3.0.0' (it has 1.0.0, 2.0.0)"
    assert_problem(await api.client.get("/agents/greet@9"), 404)
    assert_problem(await api.client.get("/agents/nobody", params={"version": "1.0.0"}), 404)
    both = await api.client.get("/agents/greet@1.0.0", params={"version": "2.0.0"})
    assert assert_problem(both, 422)["detail"] == (
        "'greet@1.0.0' names version 1.0.0 and ?version= names 2.0.0"
    )


async def test_an_execution_pinned_to_an_older_version_runs_that_version(api: Api) -> None:
    session = (await api.client.post("/sessions", json={})).json()["id"]
    runs = {}
    for reference in ("greet@1.0.0", "greet"):
        body = {"agent": reference, "inputs": {"name": "Ada"}, "wait_s": 30}
        response = await api.client.post(f"/sessions/{session}/execute", json=body)
        assert response.status_code == 200, response.text
        runs[reference] = response.json()
    old, new = runs["greet@1.0.0"], runs["greet"]
    assert (old["state"], old["agent"], old["agent_version"]) == ("succeeded", "greet", "1.0.0")
    assert old["result"] == {"text": "Hello, Ada.", "version": "1"}
    assert (new["state"], new["agent_version"]) == ("succeeded", "2.0.0")
    assert new["result"] == {"text": "Hello, Ada. Hello again, Ada!", "version": "2"}
    stored = await api.platform.storage.get_execution(uuid.UUID(old["id"]))
    assert stored is not None and (stored.agent_version, stored.result) == ("1.0.0", old["result"])

    one_off = await api.client.post(
        "/agents/greet@1.0.0/execute", json={"inputs": {"name": "Bo"}, "wait_s": 30}
    )
    assert one_off.status_code == 200, one_off.text
    assert (one_off.json()["agent_version"], one_off.json()["result"]["version"]) == ("1.0.0", "1")


async def test_an_unknown_version_or_bad_inputs_record_nothing(api: Api) -> None:
    session = (await api.client.post("/sessions", json={})).json()["id"]
    before = await api.platform.storage.ledger_size()
    missing = await api.client.post(
        f"/sessions/{session}/execute", json={"agent": "greet@3.0.0", "inputs": {"name": "Ada"}}
    )
    assert assert_problem(missing, 422)["detail"] == (
        "agent 'greet' has no version '3.0.0' (it has 1.0.0, 2.0.0)"
    )
    bad = await api.client.post(
        f"/sessions/{session}/execute", json={"agent": "greet@1.0.0", "inputs": {"who": "Ada"}}
    )
    assert_problem(bad, 422)
    assert await api.platform.storage.ledger_size() == before
    results = await api.client.get(f"/sessions/{session}/results")
    assert results.json()["items"] == []
