"""``compare.sweep`` and ``compare.maxcut``: the numbers they compare, tables and plots
a workflow run can draw, real quantum and MaxCut results as inputs, and a clear error
for every inconsistent input."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from pydantic import ValidationError

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.models import BackendKind
from limit_graph.orchestration.workflows.artifacts import PlotSpec, render_plot
from limit_graph.tasks.compare import (
    AGENTS,
    MaxCutCompareInput,
    MaxCutCompareOutput,
    SweepInput,
    SweepOutput,
    maxcut,
    sweep,
)
from limit_graph.tasks.quantum.agents import SampleInput, sample
from limit_graph.tasks.quantum.maxcut import Graph, QaoaInput, solve_exact, solve_qaoa

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; input float[64] theta; qubit[2] q; bit[2] c; '
    "ry(theta) q[0]; cx q[0], q[1]; c = measure q;"
)


def counts(**by_bits: int) -> dict[str, Any]:
    return {"pubs": [{"counts": {k.lstrip("_"): v for k, v in by_bits.items()}, "shots": 1}]}


def run_sweep(**fields: Any) -> SweepOutput:
    return sweep.fn(SweepInput.model_validate(fields))


def run_maxcut(**fields: Any) -> MaxCutCompareOutput:
    return maxcut.fn(MaxCutCompareInput.model_validate(fields))


def drawn(plot: Any) -> bytes:
    """The plot as the workflow engine draws it."""
    return render_plot(PlotSpec.model_validate(plot.model_dump()))


# --- compare.sweep --------------------------------------------------------------------


def test_a_sweep_compares_the_probability_of_one_outcome_across_series() -> None:
    out = run_sweep(
        x=[0.0, 1.0, 2.0],
        outcome="01",
        x_label="theta",
        runs={
            "a": [counts(_01=3, _10=1), counts(_01=1, _10=1), counts(_10=5)],
            "b": [counts(_01=1, _10=3), counts(_01=2, _00=2), counts(_01=1, _10=4)],
        },
    )
    assert out.probabilities == {"a": [0.75, 0.5, 0.0], "b": [0.25, 0.5, 0.2]}
    assert out.table == [
        {"theta": 0.0, "a": 0.75, "b": 0.25, "spread": 0.5},
        {"theta": 1.0, "a": 0.5, "b": 0.5, "spread": 0.0},
        {"theta": 2.0, "a": 0.0, "b": 0.2, "spread": 0.2},
    ]
    assert out.max_difference == 0.5
    assert out.plot.kind == "line" and out.plot.xlabel == "theta"
    assert out.plot.series == out.probabilities and out.plot.ylabel == "P(01)"
    assert drawn(out.plot).startswith(b"\x89PNG")


def test_one_series_has_no_spread() -> None:
    out = run_sweep(x=[1.0], outcome="1", runs={"only": [counts(_1=1, _0=3)]})
    assert out.table == [{"x": 1.0, "only": 0.25}]
    assert out.max_difference is None


def test_real_sampling_results_feed_the_sweep_as_a_mapped_step_gives_them() -> None:
    thetas = [0.0, math.pi / 2, math.pi]
    runs: dict[str, list[dict[str, Any]]] = {}
    for target in ("aer", "fake:manila"):
        runs[target] = [
            sample.fn(
                SampleInput.model_validate(
                    {
                        "target": target,
                        "seed": 7,
                        "pubs": [
                            {
                                "circuit": {"format": "qasm3", "source": BELL},
                                "parameter_values": {"theta": theta},
                                "shots": 2000,
                            }
                        ],
                    }
                )
            ).model_dump(mode="json")
            for theta in thetas
        ]
    out = run_sweep(x=thetas, outcome="00", runs=runs)
    aer = out.probabilities["aer"]
    assert aer[0] == 1.0 and aer[2] == 0.0 and abs(aer[1] - 0.5) < 0.05
    manila = out.probabilities["fake:manila"]
    assert 0.8 < manila[0] < 1.0  # noise leaks out of |00>
    assert out.max_difference is not None and out.max_difference > 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"runs": {"a": [counts(_00=1)]}}, "series 'a' has 1 results for 2 values of x"),
        ({"outcome": "000"}, "outcome '000' has 3 bits but a[0]'s bitstrings have 2"),
        ({"pub": 1}, "a[0] has no PUB 1"),
        ({"runs": {"spread": [counts(_00=1)] * 2}}, "would hide the table's 'spread' column"),
        ({"x_label": "a"}, "would hide the table's 'a' column"),
        ({"runs": {"a": [{"pubs": [{"counts": {}}]}] * 2}}, "a[0] has no counts"),
        ({"outcome": "0a"}, "String should match pattern"),
        ({"outcome": 0}, "Input should be a valid string"),
        ({"runs": {}}, "at least 1 item"),
        ({"x": []}, "at least 1 item"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_an_inconsistent_sweep_is_refused(fields: dict[str, Any], message: str) -> None:
    good: dict[str, Any] = {
        "x": [0.0, 1.0],
        "outcome": "00",
        "runs": {"a": [counts(_00=1, _11=1)] * 2},
    }
    with pytest.raises(ValidationError, match=re.escape(message)):
        SweepInput.model_validate({**good, **fields})


# --- compare.maxcut -------------------------------------------------------------------


def test_maxcut_ratios_are_cuts_over_the_exact_optimum() -> None:
    out = run_maxcut(
        qaoa=[{"value": 2.0, "expected_value": 1.5}, {"value": 3.0, "expected_value": 2.4}],
        exact=[{"value": 2.0}, {"value": 4.0}],
        graphs=[
            {"name": "p3", "nodes": 3, "edges": [[0, 1, 1], [1, 2, 1]]},
            {"name": "sq", "nodes": 4, "edges": [[0, 1, 1]] * 4},
        ],
    )
    assert out.ratios == [1.0, 0.75]
    assert out.expected_ratios == [0.75, 0.6]
    assert out.mean_ratio == 0.875
    assert out.table[1] == {
        "graph": "sq",
        "nodes": 4,
        "edges": 4,
        "qaoa_cut": 3.0,
        "expected_cut": 2.4,
        "optimum": 4.0,
        "approximation_ratio": 0.75,
        "expected_ratio": 0.6,
    }
    assert out.plot.kind == "bar" and out.plot.x == ["p3", "sq"]
    assert out.plot.series == {
        "best sampled cut / optimum": [1.0, 0.75],
        "expected cut / optimum": [0.75, 0.6],
    }
    assert drawn(out.plot).startswith(b"\x89PNG")


def test_without_names_or_expected_values_the_graphs_are_numbered() -> None:
    out = run_maxcut(qaoa=[{"value": 0.0}], exact=[{"value": 0.0}])
    assert out.ratios == [1.0]  # nothing to cut, and nothing was cut
    assert out.table[0]["graph"] == "graph 0" and out.table[0]["expected_ratio"] is None
    assert list(out.plot.series) == ["best sampled cut / optimum"]


def test_real_qaoa_and_exact_results_feed_the_comparison() -> None:
    graphs = [
        Graph(nodes=3, edges=[(0, 1, 1.0), (1, 2, 1.0), (0, 2, 1.0)]),
        Graph(nodes=4, edges=[(0, 1, 1.0), (1, 2, 1.0), (2, 3, 1.0), (3, 0, 1.0)]),
    ]
    qaoa = [
        solve_qaoa(QaoaInput(graph=g, maxiter=20, shots=500, seed=3)).model_dump(mode="json")
        for g in graphs
    ]
    exact = [solve_exact(g).model_dump(mode="json") for g in graphs]
    out = run_maxcut(qaoa=qaoa, exact=exact)
    assert [row["optimum"] for row in out.table] == [2.0, 4.0]
    for ratio, found in zip(out.ratios, qaoa, strict=True):
        assert ratio == pytest.approx(found["approximation_ratio"], abs=1e-6)
    assert all(0 < r <= 1 for r in out.expected_ratios if r is not None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"exact": [{"value": 2.0}]}, "2 QAOA results but 1 exact ones"),
        ({"graphs": [{"name": "g"}]}, "1 graphs for 2 results"),
        ({"qaoa": [{"value": 5.0}, {"value": 1.0}]}, "QAOA's cut 5.0 exceeds the exact optimum"),
        ({"qaoa": [{"value": -1.0}, {"value": 1.0}]}, "greater than or equal to 0"),
        ({"exact": [{"value": float("nan")}, {"value": 1.0}]}, "finite number"),
        ({"qaoa": []}, "at least 1 item"),
    ],
)
def test_an_inconsistent_maxcut_comparison_is_refused(fields: dict[str, Any], message: str) -> None:
    good: dict[str, Any] = {
        "qaoa": [{"value": 2.0}, {"value": 1.0}],
        "exact": [{"value": 2.0}, {"value": 2.0}],
    }
    with pytest.raises(ValidationError, match=re.escape(message)):
        MaxCutCompareInput.model_validate({**good, **fields})


# --- registration ---------------------------------------------------------------------


def test_the_comparison_agents_are_registered_and_run_where_classical_work_runs() -> None:
    registry = AgentRegistry.from_entry_points()
    for spec in AGENTS:
        assert registry.get(spec.name) == spec
        assert spec.deterministic
        assert set(spec.backends) == {BackendKind.LOCAL, BackendKind.REMOTE}
        schema = spec.describe()["output_schema"]
        assert {"table", "plot"} <= set(schema["properties"])
