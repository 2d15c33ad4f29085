"""The workflows in ``examples/`` run end to end, as a user runs them: the YAML file's
text posted to ``/sessions/{id}/execute`` of the real app (SQLite), quantum steps
served by a real quantum runner over HTTP, the results and artifacts read back over
REST.  Each test prints its run's wall time (``pytest -s``)."""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.dispatch import Stack, running, stack
from tests.fixtures.example_runs import artifact, artifact_names, result_of, run_workflow, steps

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DATA = EXAMPLES / "data"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Stack]:
    async with stack(tmp_path) as s, running(s.runner("quantum")):
        yield s


async def run_example(
    s: Stack, name: str, params: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """Post the example's YAML text, wait for the run's end; the run and its URL."""
    started = time.perf_counter()
    run, location = await run_workflow(s, (EXAMPLES / name).read_text(), params)
    took = time.perf_counter() - started
    print(f"\n{name}: {run['state']} in {took:.2f} s wall time")  # noqa: T201 (shown with -s)
    return run, location


def test_every_example_is_listed_in_the_readme_with_its_command() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    files = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert files == ["bell_sweep.yaml", "classical_pipeline.yaml", "qaoa_maxcut.yaml"]
    for name in files:
        assert f"limit run examples/{name}" in readme, name
        spec = yaml.safe_load((EXAMPLES / name).read_text())
        assert f"`{spec['name']}`" in readme, spec["name"]


async def test_every_example_validates_and_shows_its_dag(served: Stack) -> None:
    edges = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        response = await served.client.post(
            "/workflows/validate", json={"workflow": path.read_text()}
        )
        assert response.status_code == 200, f"{path.name}: {response.text}"
        answer = response.json()
        edges[path.name] = {(e["from"], e["to"]) for e in answer["edges"]}
        for node in answer["nodes"]:
            assert f'"{node["id"]}<br/>{node["agent"]}' in answer["mermaid"], node
    assert edges == {
        "bell_sweep.yaml": {("aer", "compare"), ("manila", "compare")},
        "qaoa_maxcut.yaml": {("qaoa", "compare"), ("exact", "compare")},
        "classical_pipeline.yaml": {("load", "clean"), ("clean", "summarize")},
    }


async def test_the_bell_sweep_compares_aer_and_manila_in_a_table_and_a_plot(
    served: Stack,
) -> None:
    run, location = await run_example(served, "bell_sweep.yaml")
    assert run["state"] == "succeeded", run
    thetas = yaml.safe_load((EXAMPLES / "bell_sweep.yaml").read_text())["params"]["thetas"][
        "default"
    ]
    by_id = steps(run)
    assert len(by_id["aer"]["execution_ids"]) == len(by_id["manila"]["execution_ids"]) == 9

    table = json.loads((await artifact(served, location, "compare-table")).content)
    assert [row["theta"] for row in table] == thetas
    for row in table:
        ideal = math.cos(row["theta"] / 2) ** 2
        assert abs(row["aer"] - ideal) < 0.05, row  # 2000 shots: ~0.011 standard error
        assert abs(row["fake:manila"] - ideal) < 0.15, row  # noisy, but the same curve
        assert row["spread"] == pytest.approx(abs(row["aer"] - row["fake:manila"]), abs=1e-6)
    # noise shows where the ideal state is one bitstring: manila leaks out of |00>
    assert table[0]["aer"] == 1.0 and table[0]["fake:manila"] < 1.0
    compare = await result_of(served, run, "compare")
    assert compare["max_difference"] == max(row["spread"] for row in table) > 0

    plot = await artifact(served, location, "compare-plot")
    assert plot.headers["content-type"] == "image/png"
    assert plot.content.startswith(PNG)
    assert {"summary", "steps", "compare-table", "compare-plot"} <= set(
        await artifact_names(served, location)
    )

    # Seeds are fixed: the same angle in another run gives the same counts.
    again, _ = await run_example(served, "bell_sweep.yaml", {"thetas": [thetas[2]]})
    assert again["state"] == "succeeded", again
    first = (await result_of(served, run, "manila"))[2]["pubs"][0]["counts"]
    second = (await result_of(served, again, "manila"))[0]["pubs"][0]["counts"]
    assert first == second


async def test_qaoa_maxcut_reports_approximation_ratios_against_the_exact_optimum(
    served: Stack,
) -> None:
    run, location = await run_example(served, "qaoa_maxcut.yaml")
    assert run["state"] == "succeeded", run
    table = json.loads((await artifact(served, location, "compare-table")).content)
    assert [row["graph"] for row in table] == ["triangle", "square", "weighted-5"]
    assert [row["optimum"] for row in table] == [2.0, 4.0, 9.0]
    assert [row["nodes"] for row in table] == [3, 4, 5]
    exact = await result_of(served, run, "exact")
    qaoa = await result_of(served, run, "qaoa")
    for row, best, found in zip(table, exact, qaoa, strict=True):
        assert row["optimum"] == best["value"] == found["optimum"]
        assert row["approximation_ratio"] == pytest.approx(found["value"] / best["value"])
        assert 0 < row["expected_ratio"] <= row["approximation_ratio"] <= 1
    plot = await artifact(served, location, "compare-plot")
    assert plot.content.startswith(PNG)
    assert plot.headers["content-type"] == "image/png"


def expected_summary() -> dict[str, dict[str, float]]:
    """The pipeline's answer computed straight from the CSV, per device."""
    with (DATA / "calibrations.csv").open(newline="") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if r["operational"] == "true" and float(r["readout_error"]) < 0.05
        ]
    found: dict[str, dict[str, float]] = {}
    for device in sorted({r["device"] for r in rows}):
        mine = [r for r in rows if r["device"] == device]
        t2 = [float(r["t2_us"]) for r in mine if r["t2_us"]]
        found[device] = {
            "rows": len(mine),
            "t1_us_mean": round(statistics.fmean(float(r["t1_us"]) for r in mine), 4),
            "t1_us_max": max(float(r["t1_us"]) for r in mine),
            "t2_us_count": len(t2),
            "readout_error_min": min(float(r["readout_error"]) for r in mine),
        }
    return found


async def test_the_classical_pipeline_loads_transforms_and_summarizes_the_csv(
    served: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # its default data_root, examples/data, is relative to where the platform runs
    monkeypatch.chdir(EXAMPLES.parent)
    run, location = await run_example(served, "classical_pipeline.yaml")
    assert run["state"] == "succeeded", run
    load = await result_of(served, run, "load")
    assert load["row_count"] == 17 and load["types"]["operational"] == "boolean"
    assert load["source"]["sha256"] and load["source"]["path"] == "calibrations.csv"
    clean = await result_of(served, run, "clean")
    assert clean["columns"] == [
        "device",
        "qubit",
        "t1_us",
        "t2_us",
        "t2_over_t1",
        "readout_error",
    ]
    assert all(r["readout_error"] < 0.05 for r in clean["rows"])

    table = json.loads((await artifact(served, location, "summarize-table")).content)
    expected = expected_summary()
    assert [row["device"] for row in table] == list(expected)
    for row in table:
        want = expected[row["device"]]
        assert {k: row[k] for k in want} == want
    assert "summarize-plot" not in await artifact_names(served, location)


async def test_the_classical_pipeline_refuses_a_file_outside_its_data_root(
    served: Stack,
) -> None:
    run, location = await run_example(
        served,
        "classical_pipeline.yaml",
        {"data_root": str(DATA), "file": "../bell_sweep.yaml"},
    )
    assert run["state"] == "failed"
    by_id = steps(run)
    assert by_id["load"]["state"] == "failed"
    assert "outside the root folder" in by_id["load"]["error"]["message"]
    assert by_id["clean"]["state"] == by_id["summarize"]["state"] == "skipped"
    assert "summarize-table" not in await artifact_names(served, location)
