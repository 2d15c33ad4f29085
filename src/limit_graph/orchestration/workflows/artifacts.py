"""What a finished workflow run shows people: a summary, a table of steps, and plots.

Every run gets ``summary`` (markdown: state, duration, params, one line per step) and
``steps`` (a table: state, executions, duration, result link, error).  A step whose
output (or, for a mapped step, each item's output) carries

- ``"table"``: a list of row objects → a table artifact ``<step>-table``;
- ``"plot"``: ``{"x": [...], "series": {"name": [y, ...]}, "title"?, "xlabel"?,
  "ylabel"?, "kind"?: "line" | "bar"}`` → a PNG ``<step>-plot`` (matplotlib, Agg);

which is how the comparison steps of the sweep and QAOA examples present their
numbers.  Artifacts are kept in the store's bookkeeping (namespace :data:`ARTIFACTS`:
``<run id>`` → the names, ``<run id>/<name>`` → the artifact) before the run's final
record is written, so whoever sees the end (the API, the Prefect mirror) finds them.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from limit_graph.core.models import StepRun, WorkflowRun

__all__ = ["ARTIFACTS", "Artifact", "PlotSpec", "make_artifacts", "render_plot"]

log = logging.getLogger(__name__)

ARTIFACTS = "workflow-artifacts"
TABLE_ROWS = 1000


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["markdown", "table", "image"]
    media_type: str
    data: str = Field(description="Markdown text, JSON text of the rows, or base64 PNG.")
    description: str = ""

    def content(self) -> bytes:
        """The artifact as served: UTF-8 text, or the PNG's bytes."""
        return base64.b64decode(self.data) if self.kind == "image" else self.data.encode()


class PlotSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: list[float | int | str] = Field(min_length=1, max_length=100_000)
    series: dict[str, list[float | int | None]] = Field(min_length=1, max_length=50)
    title: str | None = Field(default=None, max_length=200)
    xlabel: str | None = Field(default=None, max_length=100)
    ylabel: str | None = Field(default=None, max_length=100)
    kind: Literal["line", "bar"] = "line"


def _duration(step: StepRun) -> float | None:
    if step.started_at is None or step.finished_at is None:
        return None
    return round((step.finished_at - step.started_at).total_seconds(), 3)


def _step_rows(run: WorkflowRun) -> list[dict[str, Any]]:
    rows = []
    for step in run.steps:
        last = step.execution_ids[-1] if step.execution_ids else None
        rows.append(
            {
                "step": step.id,
                "state": step.state.value,
                "executions": len(step.execution_ids),
                "items": step.items,
                "duration_s": _duration(step),
                "result": f"/sessions/{run.session_id}/executions/{last}" if last else None,
                "error": f"{step.error.type}: {step.error.message}" if step.error else step.reason,
            }
        )
    return rows


def _summary(run: WorkflowRun, extra: Sequence[str]) -> str:
    took = (
        f"{(run.finished_at - run.created_at).total_seconds():.2f} s"
        if run.finished_at
        else "still running"
    )
    lines = [
        f"# Workflow {run.name}: {run.state.value}",
        "",
        f"Run `{run.id}` of session `{run.session_id}`, {took}; "
        f"spec SHA-256 `{run.spec_sha256[:16]}…`.",
    ]
    if run.error is not None:
        lines += ["", f"**{run.error.type}**: {run.error.message}"]
    if run.params:
        lines += ["", "Params: `" + json.dumps(run.params, sort_keys=True)[:500] + "`"]
    lines += [
        "",
        "| step | state | executions | duration (s) | note |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for row in _step_rows(run):
        note = (row["error"] or "").replace("|", "\\|").replace("\n", " ")[:200]
        duration = "" if row["duration_s"] is None else f"{row['duration_s']:.3f}"
        lines.append(
            f"| {row['step']} | {row['state']} | {row['executions']} | {duration} | {note} |"
        )
    lines += [
        "",
        f"Every execution is at `/sessions/{run.session_id}/results`; this run at "
        f"`/sessions/{run.session_id}/workflows/{run.id}`.",
    ]
    lines += list(extra)
    return "\n".join(lines)


def _presented(output: Any) -> list[Mapping[str, Any]]:
    """The outputs that may carry a table or plot: the output, or each item's."""
    if isinstance(output, Mapping):
        return [output]
    if isinstance(output, list):
        return [o for o in output if isinstance(o, Mapping)]
    return []


def render_plot(plot: PlotSpec) -> bytes:
    """The plot as a PNG, drawn off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.subplots()
    labels = [str(x) for x in plot.x]
    numeric = all(isinstance(x, int | float) for x in plot.x)
    positions = list(range(len(plot.x)))
    width = 0.8 / len(plot.series)
    for n, (name, ys) in enumerate(plot.series.items()):
        values = [math.nan if y is None else float(y) for y in ys[: len(plot.x)]]
        if plot.kind == "bar":
            axes.bar([p + n * width for p in positions[: len(values)]], values, width, label=name)
        else:
            xs = plot.x[: len(values)] if numeric else positions[: len(values)]
            axes.plot(xs, values, marker="o", label=name)
    if plot.kind == "bar" or not numeric:
        offset = width * (len(plot.series) - 1) / 2 if plot.kind == "bar" else 0
        axes.set_xticks([p + offset for p in positions], labels)
    if plot.title:
        axes.set_title(plot.title)
    axes.set_xlabel(plot.xlabel or "")
    axes.set_ylabel(plot.ylabel or "")
    axes.grid(True, alpha=0.3)
    if plot.kind == "bar":
        top = max((v for ys in plot.series.values() for v in ys if v is not None), default=1)
        axes.set_ylim(top=float(top) * 1.2 if top > 0 else None)  # room for the legend
    if len(plot.series) > 1 or plot.kind == "bar":
        axes.legend(loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def make_artifacts(run: WorkflowRun, outputs: Mapping[str, Any]) -> list[Artifact]:
    """The run's artifacts (see the module docstring); a malformed plot is left out and
    said so in the summary."""
    made: list[Artifact] = []
    notes: list[str] = []
    for step in run.steps:
        for n, output in enumerate(_presented(outputs.get(step.id))):
            suffix = "" if n == 0 else f"-{n}"
            rows = output.get("table")
            if isinstance(rows, list) and all(isinstance(r, Mapping) for r in rows) and rows:
                made.append(
                    Artifact(
                        name=f"{step.id}-table{suffix}",
                        kind="table",
                        media_type="application/json",
                        data=json.dumps(rows[:TABLE_ROWS]),
                        description=f"Table of step {step.id} of workflow {run.name}",
                    )
                )
            if "plot" in output:
                try:
                    plot = PlotSpec.model_validate(output["plot"])
                except ValidationError as exc:
                    notes.append(f"- step {step.id}'s plot was not drawn: {exc.errors()[0]['msg']}")
                    continue
                made.append(
                    Artifact(
                        name=f"{step.id}-plot{suffix}",
                        kind="image",
                        media_type="image/png",
                        data=base64.b64encode(render_plot(plot)).decode(),
                        description=plot.title or f"Plot of step {step.id} of workflow {run.name}",
                    )
                )
    if made:
        notes = ["", "Artifacts: " + ", ".join(f"`{a.name}`" for a in made), *notes]
    elif notes:
        notes = ["", *notes]
    summary = Artifact(
        name="summary",
        kind="markdown",
        media_type="text/markdown",
        data=_summary(run, notes),
        description=f"Workflow {run.name} {run.state.value}",
    )
    steps = Artifact(
        name="steps",
        kind="table",
        media_type="application/json",
        data=json.dumps(_step_rows(run)),
        description=f"The steps of workflow run {run.name}-{run.id.hex[:8]}",
    )
    return [summary, steps, *made]
