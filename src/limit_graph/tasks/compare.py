"""Comparison agents: results of several steps side by side, as a table and a plot.

Their outputs carry ``table`` (a list of row objects) and ``plot`` (``x``, ``series``,
labels and ``kind``), which a workflow run turns into a table artifact and a PNG:

- ``compare.sweep``: ``quantum.sample`` results over a grid of values (one list of
  results per series, e.g. per target), as the probability of one outcome per value
  and series, and the largest gap between series;
- ``compare.maxcut``: ``qaoa.maxcut`` against ``maxcut.exact`` per graph, as
  approximation ratios (best sampled cut / optimum, expected cut / optimum).

>>> run = lambda n00: {"pubs": [{"counts": {"00": n00, "11": 100 - n00}, "shots": 100}]}
>>> out = sweep.fn(SweepInput.model_validate({"x": [0.0, 3.14], "outcome": "00",
...     "runs": {"ideal": [run(100), run(0)], "noisy": [run(95), run(4)]}}))
>>> out.table[1], out.max_difference
({'x': 3.14, 'ideal': 0.0, 'noisy': 0.04, 'spread': 0.04}, 0.05)
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

from prefect import task
from pydantic import BaseModel, ConfigDict, Field, model_validator

from limit_graph.core.agents import AgentSpec
from limit_graph.core.models import BackendKind

__all__ = [
    "AGENTS",
    "MaxCutCompareInput",
    "MaxCutCompareOutput",
    "Plot",
    "SweepInput",
    "SweepOutput",
    "maxcut",
    "sweep",
]

MAX_POINTS = 10_000
MAX_SERIES = 20
RATIO_TOLERANCE = 1e-9
"""How far a QAOA cut may exceed the exact optimum before the two lists disagree."""
DIGITS = 6


class Plot(BaseModel):
    """A plot as a workflow run draws it (one PNG per step output)."""

    x: list[float | str]
    series: dict[str, list[float | None]]
    title: str | None = None
    xlabel: str | None = None
    ylabel: str | None = None
    kind: Literal["line", "bar"] = "line"


# --- compare.sweep --------------------------------------------------------------------


class _Counts(BaseModel):
    """One PUB of a ``quantum.sample`` result; other fields are ignored."""

    counts: dict[str, int] = Field(description="Counts by bitstring.")


class SampleResult(BaseModel):
    """A ``quantum.sample`` result (``target``, ``metadata`` and the rest are ignored)."""

    pubs: list[_Counts] = Field(min_length=1)


class SweepInput(BaseModel):
    """Sampling results over a grid of values, one list of results per series."""

    model_config = ConfigDict(extra="forbid")

    x: list[float] = Field(
        min_length=1, max_length=MAX_POINTS, description="The grid, e.g. the angles swept."
    )
    runs: dict[str, list[SampleResult]] = Field(
        min_length=1,
        max_length=MAX_SERIES,
        description="Series name (e.g. the target) → its quantum.sample results, one per "
        "value of `x`, in the same order (a mapped step's outputs).",
    )
    outcome: str = Field(
        pattern=r"^[01]{1,64}$",
        description="The bitstring whose probability is compared (Qiskit's order: the "
        'rightmost bit is clbit 0). Quote it in YAML: "00".',
    )
    pub: int = Field(default=0, ge=0, lt=64, description="Which PUB of each result.")
    x_label: str = Field(
        default="x", min_length=1, max_length=50, description="The grid's column name."
    )
    title: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name, results in self.runs.items():
            if name in (self.x_label, "spread"):
                raise ValueError(f"series {name!r} would hide the table's {name!r} column")
            if len(results) != len(self.x):
                raise ValueError(
                    f"series {name!r} has {len(results)} results for {len(self.x)} values of x"
                )
            for index, result in enumerate(results):
                if self.pub >= len(result.pubs):
                    raise ValueError(f"{name}[{index}] has no PUB {self.pub}")
                counts = result.pubs[self.pub].counts
                if not counts or sum(counts.values()) <= 0:
                    raise ValueError(f"{name}[{index}] has no counts")
                width = len(next(iter(counts)))
                if width != len(self.outcome):
                    raise ValueError(
                        f"outcome {self.outcome!r} has {len(self.outcome)} bits but "
                        f"{name}[{index}]'s bitstrings have {width}"
                    )
        return self


class SweepOutput(BaseModel):
    x: list[float]
    outcome: str
    probabilities: dict[str, list[float]] = Field(
        description="P(outcome) per series, one per value of x."
    )
    max_difference: float | None = Field(
        description="The largest gap between two series at one x; null with one series."
    )
    table: list[dict[str, float]] = Field(
        description="One row per x: x, each series' P(outcome), and their spread."
    )
    plot: Plot


def _probability(result: SampleResult, pub: int, outcome: str) -> float:
    counts = result.pubs[pub].counts
    return counts.get(outcome, 0) / sum(counts.values())


@task(name="compare.sweep", persist_result=False)
def sweep(inputs: SweepInput) -> SweepOutput:
    """P(outcome) per grid value and series, side by side."""
    probabilities = {
        name: [round(_probability(r, inputs.pub, inputs.outcome), DIGITS) for r in results]
        for name, results in inputs.runs.items()
    }
    table: list[dict[str, float]] = []
    spreads: list[float] = []
    for index, x in enumerate(inputs.x):
        values = [p[index] for p in probabilities.values()]
        row = {inputs.x_label: x, **{name: p[index] for name, p in probabilities.items()}}
        if len(values) > 1:
            spreads.append(round(max(values) - min(values), DIGITS))
            row["spread"] = spreads[-1]
        table.append(row)
    return SweepOutput(
        x=inputs.x,
        outcome=inputs.outcome,
        probabilities=probabilities,
        max_difference=max(spreads) if spreads else None,
        table=table,
        plot=Plot(
            x=list(inputs.x),
            series={name: list(p) for name, p in probabilities.items()},
            title=inputs.title or f"P({inputs.outcome}) over {inputs.x_label}",
            xlabel=inputs.x_label,
            ylabel=f"P({inputs.outcome})",
        ),
    )


# --- compare.maxcut -------------------------------------------------------------------


class QaoaResult(BaseModel):
    """What ``compare.maxcut`` reads of a ``qaoa.maxcut`` result."""

    value: float = Field(ge=0, allow_inf_nan=False, description="The best cut sampled.")
    expected_value: float | None = Field(
        default=None, allow_inf_nan=False, description="The optimised state's mean cut."
    )


class ExactResult(BaseModel):
    """What ``compare.maxcut`` reads of a ``maxcut.exact`` result."""

    value: float = Field(ge=0, allow_inf_nan=False, description="The maximum cut.")


class GraphLabel(BaseModel):
    """A graph as the workflow lists it: ``name`` (other fields but the size ignored)."""

    name: str = Field(min_length=1, max_length=100)
    nodes: int | None = Field(default=None, ge=1)
    edges: list[Any] | None = None


class MaxCutCompareInput(BaseModel):
    """QAOA's cuts and the exact optima of the same graphs, in the same order."""

    model_config = ConfigDict(extra="forbid")

    qaoa: list[QaoaResult] = Field(
        min_length=1, max_length=1000, description="qaoa.maxcut results, one per graph."
    )
    exact: list[ExactResult] = Field(
        min_length=1, max_length=1000, description="maxcut.exact results, in the same order."
    )
    graphs: list[GraphLabel] | None = Field(
        default=None, description="The graphs' names (and sizes), in the same order."
    )
    title: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _aligned(self) -> Self:
        if len(self.exact) != len(self.qaoa):
            raise ValueError(
                f"{len(self.qaoa)} QAOA results but {len(self.exact)} exact ones: "
                "give one of each per graph"
            )
        if self.graphs is not None and len(self.graphs) != len(self.qaoa):
            raise ValueError(f"{len(self.graphs)} graphs for {len(self.qaoa)} results")
        for index, (found, best) in enumerate(zip(self.qaoa, self.exact, strict=True)):
            if found.value > best.value * (1 + RATIO_TOLERANCE) + RATIO_TOLERANCE:
                raise ValueError(
                    f"graph {index}: QAOA's cut {found.value} exceeds the exact optimum "
                    f"{best.value}, so the lists do not describe the same graphs in order"
                )
        return self


class MaxCutCompareOutput(BaseModel):
    ratios: list[float] = Field(description="Best sampled cut / optimum, per graph.")
    expected_ratios: list[float | None] = Field(
        description="Expected cut / optimum, per graph (null without an expected value)."
    )
    mean_ratio: float
    table: list[dict[str, str | int | float | None]] = Field(
        description="Per graph: name, size, QAOA's cut and expected cut, the optimum, ratios."
    )
    plot: Plot


def _ratio(value: float | None, optimum: float) -> float | None:
    """``value / optimum``; 1 for an empty cut of a graph with nothing to cut."""
    if value is None:
        return None
    return round(value / optimum, DIGITS) if optimum > 0 else 1.0


@task(name="compare.maxcut", persist_result=False)
def maxcut(inputs: MaxCutCompareInput) -> MaxCutCompareOutput:
    """Approximation ratios of QAOA's cuts against the exact optima."""
    labels = inputs.graphs or [GraphLabel(name=f"graph {i}") for i in range(len(inputs.qaoa))]
    ratios: list[float] = []
    expected: list[float | None] = []
    table: list[dict[str, str | int | float | None]] = []
    for label, found, best in zip(labels, inputs.qaoa, inputs.exact, strict=True):
        ratio = _ratio(found.value, best.value)
        assert ratio is not None
        ratios.append(ratio)
        expected.append(_ratio(found.expected_value, best.value))
        table.append(
            {
                "graph": label.name,
                "nodes": label.nodes,
                "edges": None if label.edges is None else len(label.edges),
                "qaoa_cut": found.value,
                "expected_cut": None
                if found.expected_value is None
                else round(found.expected_value, DIGITS),
                "optimum": best.value,
                "approximation_ratio": ratio,
                "expected_ratio": expected[-1],
            }
        )
    series: dict[str, list[float | None]] = {"best sampled cut / optimum": list(ratios)}
    if any(e is not None for e in expected):
        series["expected cut / optimum"] = expected
    return MaxCutCompareOutput(
        ratios=ratios,
        expected_ratios=expected,
        mean_ratio=round(math.fsum(ratios) / len(ratios), DIGITS),
        table=table,
        plot=Plot(
            x=[label.name for label in labels],
            series=series,
            title=inputs.title or "QAOA approximation ratio per graph",
            xlabel="graph",
            ylabel="cut / optimum",
            kind="bar",
        ),
    )


COMPARISON = (BackendKind.LOCAL, BackendKind.REMOTE)

AGENTS = (
    AgentSpec(
        name="compare.sweep",
        version="1.0.0",
        description="Compares quantum.sample results over a grid of values across series "
        "(e.g. targets): P(outcome) per value as a table and a line plot.",
        input_model=SweepInput,
        output_model=SweepOutput,
        fn=sweep.fn,
        backends=COMPARISON,
        deterministic=True,
        blocking=False,
        task=sweep,
    ),
    AgentSpec(
        name="compare.maxcut",
        version="1.0.0",
        description="Compares qaoa.maxcut cuts with maxcut.exact optima per graph: "
        "approximation ratios as a table and a bar plot.",
        input_model=MaxCutCompareInput,
        output_model=MaxCutCompareOutput,
        fn=maxcut.fn,
        backends=COMPARISON,
        deterministic=True,
        blocking=False,
        task=maxcut,
    ),
)
