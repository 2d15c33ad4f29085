"""Workflows over REST: schema, validate, run, read, cancel, resume, artifacts."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.fixtures.api import Api, assert_problem
from tests.fixtures.waiting import eventually

PIPELINE = {
    "name": "pipeline",
    "params": {"n": {"type": "integer", "default": 3}},
    "steps": [
        {"id": "load", "agent": "echo", "inputs": {"rows": [1, 2, 3], "n": "${params.n}"}},
        {
            "id": "each",
            "agent": "echo",
            "map": {"over": "${steps.load.outputs.rows}", "as": "row"},
            "inputs": {"row": "${row}", "label": "row ${row} of ${params.n}"},
        },
        {"id": "report", "agent": "echo", "inputs": {"all": "${steps.each.outputs}"}},
    ],
}


async def run_workflow(api: Api, sid: str, spec: Any, **body: Any) -> Any:
    return await api.client.post(f"/sessions/{sid}/execute", json={"workflow": spec, **body})


async def test_the_schema_is_served_and_describes_the_spec(api: Api) -> None:
    response = await api.client.get("/workflows/schema")
    assert response.status_code == 200
    schema = response.json()
    assert {"name", "steps", "params", "max_parallel"} <= set(schema["properties"])
    assert "steps" in schema["required"]


async def test_validate_answers_the_dag_and_mermaid_without_running_anything(api: Api) -> None:
    before = await api.ledger_size()
    response = await api.client.post("/workflows/validate", json={"workflow": PIPELINE})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True and body["steps"] == 3
    assert {(e["from"], e["to"]) for e in body["edges"]} == {("load", "each"), ("each", "report")}
    assert [n["id"] for n in body["nodes"]] == ["load", "each", "report"]
    assert body["mermaid"].startswith("flowchart")
    assert await api.ledger_size() == before


async def test_validate_lists_every_problem_with_step_and_field(api: Api) -> None:
    bad = {
        "name": "broken",
        "steps": [
            {"id": "a", "agent": "no-such-agent", "inputs": {}},
            {"id": "a", "agent": "echo", "inputs": {"x": "${steps.ghost.outputs}"}},
            {"id": "c", "agent": "sleep", "inputs": {}, "surprise": 1},
        ],
    }
    response = await api.client.post("/workflows/validate", json={"workflow": bad})
    problem = assert_problem(response, 422)
    errors = problem["errors"]
    assert isinstance(errors, list) and len(errors) >= 4
    pairs = {(e["step"], e["field"]) for e in errors}
    assert ("a", "/steps/0/agent") in pairs
    assert any(field == "/steps/1/id" for _, field in pairs)  # the duplicate id
    assert any("ghost" in e["msg"] for e in errors)
    assert ("c", "/steps/2/surprise") in pairs


async def test_yaml_text_with_a_syntax_error_is_refused_with_line_and_column(api: Api) -> None:
    text = "name: x\nsteps:\n  - id: a\n    agent: echo\n   inputs: {\n"
    response = await api.client.post("/workflows/validate", json={"workflow": text})
    problem = assert_problem(response, 422)
    error = problem["errors"][0]  # type: ignore[index]
    assert error["line"] >= 4 and error["column"] >= 1


async def test_a_workflow_runs_from_yaml_text_and_is_read_back(api: Api) -> None:
    sid = await api.new_session()
    response = await run_workflow(api, sid, yaml.safe_dump(PIPELINE), params={"n": 3})
    assert response.status_code == 202, response.text
    run = response.json()
    assert response.headers["location"] == f"/sessions/{sid}/workflows/{run['id']}"
    assert run["name"] == "pipeline" and run["params"] == {"n": 3}
    assert len(run["spec_sha256"]) == 64

    async def read() -> dict[str, Any]:
        body: dict[str, Any] = (
            await api.client.get(f"/sessions/{sid}/workflows/{run['id']}")
        ).json()
        return body

    done = await eventually(read, lambda body: body["state"] == "succeeded")
    assert [s["state"] for s in done["steps"]] == ["succeeded"] * 3
    assert [len(s["execution_ids"]) for s in done["steps"]] == [1, 3, 1]
    report_id = done["steps"][2]["execution_ids"][0]
    report = (await api.client.get(f"/sessions/{sid}/executions/{report_id}")).json()
    assert [r["label"] for r in report["result"]["all"]] == [f"row {i} of 3" for i in (1, 2, 3)]
    listed = (await api.client.get(f"/sessions/{sid}/workflows")).json()
    assert [r["id"] for r in listed["items"]] == [run["id"]]


async def test_a_run_finished_within_wait_s_answers_200(api: Api) -> None:
    sid = await api.new_session()
    response = await run_workflow(api, sid, PIPELINE, wait_s=30)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "succeeded"


async def test_bad_run_params_are_refused_and_nothing_is_recorded(api: Api) -> None:
    sid = await api.new_session()
    before = await api.ledger_size()
    response = await run_workflow(api, sid, PIPELINE, params={"n": "three", "extra": 1})
    problem = assert_problem(response, 422)
    fields = {e["field"] for e in problem["errors"]}  # type: ignore[union-attr]
    assert {"/params/n", "/params/extra"} <= fields
    assert await api.ledger_size() == before
    assert (await api.client.get(f"/sessions/{sid}/workflows")).json()["items"] == []


async def test_a_workflow_body_with_an_unknown_field_is_a_422(api: Api) -> None:
    sid = await api.new_session()
    response = await run_workflow(api, sid, PIPELINE, surprise=True)
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", "surprise"]  # type: ignore[index]


async def test_another_tenant_sees_no_runs(api: Api) -> None:
    sid = await api.new_session()
    run = (await run_workflow(api, sid, PIPELINE, wait_s=30)).json()
    response = await api.other.get(f"/sessions/{sid}/workflows/{run['id']}")
    assert_problem(response, 404)


async def test_cancel_and_resume_over_rest(api: Api) -> None:
    sid = await api.new_session()
    spec = {
        "name": "slow",
        "steps": [
            {"id": "wait", "agent": "sleep", "inputs": {"seconds": 60}},
            {"id": "then", "agent": "echo", "depends_on": ["wait"], "inputs": {"ok": True}},
        ],
    }
    run = (await run_workflow(api, sid, spec)).json()
    base = f"/sessions/{sid}/workflows/{run['id']}"

    async def read() -> dict[str, Any]:
        body: dict[str, Any] = (await api.client.get(base)).json()
        return body

    await eventually(read, lambda body: bool(body["steps"][0]["execution_ids"]), every_s=0.05)
    cancelled = await api.client.post(base + "/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert_problem(await api.client.post(base + "/cancel"), 409)
    unknown = await api.client.post(base + "/resume", json={"from_step": "nope"})
    assert_problem(unknown, 422)
    resumed = await api.client.post(base + "/resume", json={})
    assert resumed.status_code == 202 and resumed.json()["resumes"] == 1
    await api.client.post(base + "/cancel")


async def test_artifacts_are_listed_and_downloadable(api: Api) -> None:
    sid = await api.new_session()
    spec = {
        "name": "plotted",
        "steps": [
            {
                "id": "compare",
                "agent": "echo",
                "inputs": {
                    "table": [{"theta": 0.0, "p": 0.5}, {"theta": 1.5, "p": 0.9}],
                    "plot": {"x": [0.0, 1.5], "series": {"p": [0.5, 0.9]}, "title": "P(00)"},
                },
            }
        ],
    }
    run = (await run_workflow(api, sid, spec, wait_s=30)).json()
    assert run["state"] == "succeeded", run
    base = f"/sessions/{sid}/workflows/{run['id']}/artifacts"
    listing = (await api.client.get(base)).json()["items"]
    names = {a["name"]: a for a in listing}
    assert set(names) == {"summary", "steps", "compare-table", "compare-plot"}
    png = await api.client.get(base + "/compare-plot")
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    table = await api.client.get(base + "/compare-table")
    assert json.loads(table.content) == spec["steps"][0]["inputs"]["table"]  # type: ignore[index]
    summary = await api.client.get(base + "/summary")
    assert summary.headers["content-type"].startswith("text/markdown")
    assert "| compare | succeeded |" in summary.text
    assert_problem(await api.client.get(base + "/nothing"), 404)


async def test_the_openapi_document_offers_both_execute_bodies(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    body = document["paths"]["/sessions/{session_id}/execute"]["post"]["requestBody"]
    refs = {o["$ref"] for o in body["content"]["application/json"]["schema"]["oneOf"]}
    assert refs == {
        "#/components/schemas/ExecuteRequest",
        "#/components/schemas/WorkflowExecuteRequest",
    }
    assert {"ExecuteRequest", "WorkflowExecuteRequest"} <= set(document["components"]["schemas"])
