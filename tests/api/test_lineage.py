"""Lineage over REST: a workflow's graph, a circuit found across sessions (and by no other
tenant), a restart that carries on from the cursor, and the OpenLineage events it sent.

Each read is checked against the store behind it (``platform.storage.lineage``), and
right after the execution it describes finished: the read waits for the follower.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from limit_graph.api import create_app
from limit_graph.core.canonical import sha256_hex
from limit_graph.core.settings import Settings, load_settings
from limit_graph.orchestration.lineage_derive import circuit_hash
from limit_graph.orchestration.platform import Platform
from limit_graph.storage.lineage import GRAPH_CURSOR, OPENLINEAGE_CURSOR
from tests.fixtures.api import ADMIN_KEY, Api, assert_problem
from tests.fixtures.dispatch import Stack, running, stack
from tests.fixtures.identity import make_member
from tests.fixtures.openlineage import run_event_errors

BELL = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""
ROWS = [{"t": 1.5, "site": "a"}, {"t": 2.5, "site": "b"}]
QUALITY = {
    "check": "data-quality",
    "input": "rows",
    "suite": {
        "name": "readings",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "t"}}
        ],
    },
}
TWO_STEPS = {
    "name": "two-steps",
    "steps": [
        {"id": "load", "agent": "echo", "inputs": {"rows": ROWS, "n": 2}, "policies": [QUALITY]},
        {"id": "report", "agent": "echo", "inputs": {"all": "${steps.load.outputs}"}},
    ],
}


def events_of(settings: Settings) -> list[dict[str, Any]]:
    path = settings.openlineage_path
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


async def graph(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    response = await client.get(f"/sessions/{session_id}/lineage")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_two_step_workflows_graph_runs_from_its_inputs_to_its_last_output(
    api: Api,
) -> None:
    sid = await api.new_session()
    run = (
        await api.client.post(
            f"/sessions/{sid}/execute", json={"workflow": TWO_STEPS, "wait_s": 30}
        )
    ).json()
    assert run["state"] == "succeeded", run
    load_id, report_id = (step["execution_ids"][0] for step in run["steps"])

    body = await graph(api.client, sid)

    nodes = {n["id"]: n for n in body["nodes"]}
    edges = {(e["source"], e["target"], e["kind"]) for e in body["edges"]}
    load, report = f"execution:{load_id}", f"execution:{report_id}"
    rows, n = f"sha256:{sha256_hex(ROWS)}", f"sha256:{sha256_hex(2)}"
    loaded = f"sha256:{sha256_hex({'rows': ROWS, 'n': 2})}"
    reported = f"sha256:{sha256_hex({'all': {'rows': ROWS, 'n': 2}})}"
    assert set(nodes) == {load, report, rows, n, loaded, reported}
    assert {k: nodes[k]["kind"] for k in nodes} == {
        load: "execution",
        report: "execution",
        rows: "dataset",
        n: "input",
        loaded: "output",  # load's result, which report was given whole
        reported: "output",
    }
    assert edges == {
        (rows, load, "used"),
        (n, load, "used"),
        (load, loaded, "produced"),
        (loaded, report, "used"),
        (load, report, "informed"),
        (report, reported, "produced"),
    }
    assert nodes[rows]["hash"] == sha256_hex(ROWS) and nodes[load]["hash"] is None
    assert nodes[report]["attributes"]["workflow"] == {
        "run_id": run["id"],
        "name": "two-steps",
        "step": "report",
        "index": None,
    }
    assert nodes[load]["attributes"]["state"] == "succeeded"
    assert body["ledger_entries"] == await api.ledger_size()
    stored = await api.platform.storage.lineage.session_graph(uuid.UUID(sid))
    assert [node.id for node in stored.nodes] == [n["id"] for n in body["nodes"]]
    assert len(stored.edges) == len(body["edges"]) == 6

    await api.platform.lineage_follower.step()  # the events may still be on their way
    events = [e for e in events_of(api.platform.settings) if e["run"]["runId"] == load_id]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    complete = events[1]
    assert complete["job"] == {
        "namespace": "limit-graph",
        "name": "two-steps.load",
        "facets": complete["job"]["facets"],
    }
    parent = complete["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == run["id"] and parent["root"]["run"]["runId"] == sid
    inputs = {d["name"]: d for d in complete["inputs"]}
    assert set(inputs) == {rows, n}
    [assertion] = inputs[rows]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertion["success"] is True and assertion["name"] == "readings"
    assert [d["name"] for d in complete["outputs"]] == [loaded]
    assert run_event_errors(events) == []


@asynccontextmanager
async def quantum_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with stack(tmp_path) as s, running(s.runner("quantum")):
        yield s


def sample(source: str, seed: int) -> dict[str, Any]:
    pubs = [{"circuit": {"format": "qasm3", "source": source}, "shots": 64}]
    return {
        "agent": "quantum.sample",
        "backend": "quantum",
        "wait_s": 60,
        "inputs": {"target": "aer", "seed": seed, "pubs": pubs},
    }


async def test_a_circuit_is_found_in_every_session_that_ran_it_and_by_no_other_tenant(
    tmp_path: Path,
) -> None:
    async with quantum_stack(tmp_path) as s:
        ran = {}
        for seed, source in ((1, BELL), (2, BELL.replace("\n", "\r\n"))):  # the same circuit
            sid = await s.session()
            response = await s.execute(sid, **sample(source, seed))
            assert response.status_code == 200 and response.json()["state"] == "succeeded"
            ran[response.json()["id"]] = sid
        other = await s.execute(await s.session(), **sample(BELL.replace("h q[0]", "x q[0]"), 1))
        assert other.status_code == 200, other.text
        hashed = circuit_hash(BELL)

        response = await s.client.get("/lineage", params={"hash": hashed.upper()})

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["hash"] == hashed and body["next_cursor"] is None
        found = {item["execution_id"]: item for item in body["items"]}
        assert {e: item["session_id"] for e, item in found.items()} == ran
        for item in found.values():
            assert (item["relation"], item["kind"], item["names"]) == (
                "used",
                "circuit",
                ["pubs[0].circuit"],
            )
            assert (item["agent"], item["state"], item["tenant"]) == (
                "quantum.sample",
                "succeeded",
                "default",
            )
        uses = await s.platform.storage.lineage.uses_of(hashed, tenant="default")
        assert len(uses) == 2

        first = await s.client.get("/lineage", params={"hash": hashed, "limit": 1})
        second = await s.client.get(
            "/lineage", params={"hash": hashed, "cursor": first.json()["next_cursor"]}
        )
        paged = first.json()["items"] + second.json()["items"]
        assert [i["execution_id"] for i in paged] == [i["execution_id"] for i in body["items"]]

        outsider = await make_member(s.platform, "elsewhere", "eve")
        theirs = await s.client.get("/lineage", params={"hash": hashed}, headers=outsider.headers)
        assert theirs.status_code == 200 and theirs.json()["items"] == []
        session_of_theirs = next(iter(ran.values()))
        refused = await s.client.get(
            f"/sessions/{session_of_theirs}/lineage", headers=outsider.headers
        )
        assert_problem(refused, 404)

        for bad in ("abc", "z" * 64, hashed + "0", ""):
            problem = assert_problem(await s.client.get("/lineage", params={"hash": bad}), 422)
            assert [e["loc"] for e in problem["errors"]] == [["query", "hash"]]  # type: ignore[union-attr]
        assert_problem(await s.client.get("/lineage"), 422)
        assert_problem(
            await s.client.get("/lineage", params={"hash": hashed, "cursor": "junk"}), 422
        )


def restart_settings(tmp_path: Path) -> Settings:
    return load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'restart.db'}",
    )


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"X-API-Key": ADMIN_KEY}
        ) as client:
            yield client, app.state.platform


async def echo(client: httpx.AsyncClient, sid: str, **inputs: Any) -> str:
    response = await client.post(
        f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": inputs}
    )
    assert response.status_code == 200 and response.json()["state"] == "succeeded", response.text
    execution_id: str = response.json()["id"]
    return execution_id


async def test_a_restarted_platform_carries_on_from_its_cursors_without_duplicates(
    tmp_path: Path,
) -> None:
    settings = restart_settings(tmp_path)
    async with serving(settings) as (client, platform):
        sid = (await client.post("/sessions", json={})).json()["id"]
        first = await echo(client, sid, x=1)
        before = await graph(client, sid)
        await platform.lineage_follower.step()
        graph_cursor = await platform.storage.lineage.cursor(GRAPH_CURSOR)
    sent = events_of(settings)
    assert [(e["run"]["runId"], e["eventType"]) for e in sent] == [
        (first, "START"),
        (first, "COMPLETE"),
    ]

    async with serving(settings) as (client, platform):
        lineage = platform.storage.lineage
        assert await lineage.cursor(GRAPH_CURSOR) >= graph_cursor
        second = await echo(client, sid, x=2)
        after = await graph(client, sid)
        await platform.lineage_follower.step()
        assert await lineage.cursor(OPENLINEAGE_CURSOR) == await lineage.cursor(GRAPH_CURSOR)

    assert {n["id"] for n in before["nodes"]} < {n["id"] for n in after["nodes"]}
    assert len(after["nodes"]) == len({n["id"] for n in after["nodes"]}) == 6  # 2 × 3
    assert [(e["run"]["runId"], e["eventType"]) for e in events_of(settings)] == [
        (first, "START"),
        (first, "COMPLETE"),
        (second, "START"),
        (second, "COMPLETE"),
    ]
    assert run_event_errors(events_of(settings)) == []


@pytest.fixture
def api_settings() -> dict[str, Any]:
    return {"lineage__poll_s": 3600}  # only reads wake the follower: the waits are theirs


async def test_a_read_right_after_an_execution_finished_sees_it(api: Api) -> None:
    sid = await api.new_session()
    for x in range(3):
        execution_id = await echo(api.client, sid, x=x)
        nodes = {n["id"] for n in (await graph(api.client, sid))["nodes"]}
        assert f"execution:{execution_id}" in nodes
    hashed = sha256_hex(2)
    found = (await api.client.get("/lineage", params={"hash": hashed})).json()["items"]
    assert [i["execution_id"] for i in found] == [execution_id]
