"""``examples/data_quality/``, run as a user runs it: the workflow's text posted to the
real app (SQLite), its good CSV let through the great-expectations gate and reported,
its bad CSV refused at the gate before the transform runs, with every failed
expectation in the refusal, the execution's record and the run's summary."""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.dispatch import Stack, stack
from tests.fixtures.example_runs import artifact, artifact_names, result_of, run_workflow, steps

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data_quality"
WORKFLOW = EXAMPLE / "sensor_quality.yaml"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Stack]:
    async with stack(tmp_path) as s:
        yield s


async def run(s: Stack, file: str) -> tuple[dict[str, Any], str]:
    """The example run on ``file`` to its end: the run and its URL."""
    return await run_workflow(s, WORKFLOW.read_text(), {"data_root": str(EXAMPLE), "file": file})


def test_the_example_ships_its_files_and_says_how_to_run_it() -> None:
    assert sorted(p.name for p in EXAMPLE.iterdir()) == [
        "README.md",
        "bad.csv",
        "good.csv",
        "sensor_quality.yaml",
    ]
    readme = (EXAMPLE / "README.md").read_text()
    assert "limit run examples/data_quality/sensor_quality.yaml" in readme
    assert "--param file=bad.csv" in readme
    spec = yaml.safe_load(WORKFLOW.read_text())
    gate = spec["steps"][1]["policies"][0]
    assert gate["check"] == "data-quality" and gate["input"] == "rows"


async def test_the_good_csv_passes_the_gate_and_is_reported(served: Stack) -> None:
    found, location = await run(served, "good.csv")
    assert found["state"] == "succeeded", found
    assert {s["id"]: s["state"] for s in found["steps"]} == dict.fromkeys(
        ["load", "convert", "report"], "succeeded"
    )
    converted = await result_of(served, found, "convert")
    for row in converted["rows"]:
        assert row["fahrenheit"] == pytest.approx(row["celsius"] * 1.8 + 32, abs=0.01)

    with (EXAMPLE / "good.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = json.loads((await artifact(served, location, "report-table")).content)
    for summary in table:
        mine = [float(r["celsius"]) for r in rows if r["site"] == summary["site"]]
        assert summary["rows"] == len(mine)
        assert summary["celsius_mean"] == pytest.approx(statistics.fmean(mine), abs=1e-3)

    execution_id = steps(found)["convert"]["execution_ids"][0]
    response = await served.client.get(f"/sessions/{found['session_id']}/executions/{execution_id}")
    checks = response.json().get("checks", [])
    assert any(c["check"] == "data-quality" and c["passed"] for c in checks), checks


async def test_the_bad_csv_is_refused_at_the_gate_before_the_transform_runs(
    served: Stack,
) -> None:
    found, location = await run(served, "bad.csv")
    assert found["state"] == "failed", found
    by_id = steps(found)
    assert by_id["load"]["state"] == "succeeded"
    assert by_id["convert"]["state"] == "failed"
    assert by_id["report"]["state"] == "skipped"
    error = by_id["convert"]["error"]
    assert error["type"] == "CheckFailed", error
    message = error["message"]
    for expected in (
        "sensor-readings",
        "expect_column_values_to_not_be_null(sensor)",
        "expect_column_values_to_not_be_null(celsius)",
        "expect_column_values_to_be_between(celsius): observed [128.3, -61.0]",
        "expect_column_values_to_be_between(humidity): observed [1.69]",
    ):
        assert expected in message, message
    assert "expect_column_values_to_be_in_set" not in message  # the sites are all known

    # The transform never ran: no execution of it succeeded, nothing reported.
    for execution_id in by_id["convert"]["execution_ids"]:
        response = await served.client.get(
            f"/sessions/{found['session_id']}/executions/{execution_id}"
        )
        assert response.json()["state"] != "succeeded"
    names = await artifact_names(served, location)
    assert "report-table" not in names and "convert-table" not in names

    # The refusal's details are in the run's summary and its table of steps.
    summary = (await artifact(served, location, "summary")).text
    assert "| convert | failed |" in summary and "CheckFailed" in summary
    assert "expect_column_values_to_not_be_null(sensor)" in summary
    table = json.loads((await artifact(served, location, "steps")).content)
    note = next(row["error"] for row in table if row["step"] == "convert")
    assert "expect_column_values_to_be_between(humidity): observed [1.69]" in note


async def test_the_refusal_is_a_422_listing_each_failed_expectation(served: Stack) -> None:
    """The same gate on a direct execute: the problem document a client gets."""
    gate = yaml.safe_load(WORKFLOW.read_text())["steps"][1]["policies"][0]
    with (EXAMPLE / "bad.csv").open(newline="") as handle:
        rows: list[dict[str, Any]] = [
            {k: (float(v) if k in ("celsius", "humidity") and v else v or None)
             for k, v in r.items()}
            for r in csv.DictReader(handle)
        ]  # fmt: skip
    config = {"config": {"policies": [gate]}}
    response = await served.client.post("/sessions", json=config)
    assert response.status_code == 201, response.text
    session_id = response.json()["id"]
    response = await served.execute(
        session_id,
        agent="data.transform",
        backend="local",
        inputs={"rows": rows, "operations": [{"op": "sort", "by": ["site"]}]},
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["policy_ids"] == ["data-quality"]
    failed = {(f["expectation"], f["kwargs"].get("column")): f for f in problem["failures"]}
    assert set(failed) == {
        ("expect_column_values_to_not_be_null", "sensor"),
        ("expect_column_values_to_not_be_null", "celsius"),
        ("expect_column_values_to_be_between", "celsius"),
        ("expect_column_values_to_be_between", "humidity"),
    }
    assert failed[("expect_column_values_to_be_between", "celsius")]["observed_value"] == [
        128.3,
        -61.0,
    ]
    assert failed[("expect_column_values_to_not_be_null", "sensor")]["unexpected_count"] == 1


async def test_a_malformed_suite_on_a_step_is_refused_before_anything_runs(
    served: Stack,
) -> None:
    spec = yaml.safe_load(WORKFLOW.read_text())
    spec["steps"][1]["policies"][0]["suite"]["expectations"][0]["type"] = "expect_the_moon"
    session_id = await served.session()
    response = await served.execute(session_id, workflow=spec, wait_s=0)
    assert response.status_code == 422, response.text
    assert "unknown expectation type 'expect_the_moon'" in response.text
    listed = await served.client.get(f"/sessions/{session_id}/workflows")
    assert listed.status_code == 200 and listed.json()["items"] == []
