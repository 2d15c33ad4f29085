"""How the CLI shows workflows: validation problems, a run's steps, its summary.

>>> print("\\n".join(problem_lines([SpecProblem(step="b", field="/steps/1/agent",
...     msg="unknown agent 'nope'"), SpecProblem(field="/", msg="bad", line=3, column=5)])))
b  /steps/1/agent  unknown agent 'nope'
-  /               bad (line 3, column 5)
>>> format_duration(75.5)
'1m15s'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from limit_graph.client import SpecProblem
from limit_graph.core.models import StepRun, StepState, WorkflowRun, utcnow

__all__ = [
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "format_duration",
    "problem_lines",
    "run_row",
    "run_summary",
    "step_row",
    "steps_table",
]

STEP_COLUMNS = ("step", "state", "items", "executions", "duration", "error")
RUN_COLUMNS = ("id", "session", "name", "state", "steps", "created")
_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
}


def problem_lines(problems: Iterable[SpecProblem]) -> list[str]:
    """One ``step  field  message`` line per problem, the columns aligned."""
    rows = []
    for p in problems:
        message = p.msg
        if p.line is not None:
            message += f" (line {p.line}" + (f", column {p.column})" if p.column else ")")
        rows.append((p.step or "-", p.field or "-", message))
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [f"{s:<{widths[0]}}  {f:<{widths[1]}}  {m}".rstrip() for s, f, m in rows]


def format_duration(seconds: float) -> str:
    """A duration as people read it: ``0.42s``, ``12.3s``, ``4m05s``, ``2h07m``."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _span(start: datetime | None, end: datetime | None, now: datetime) -> str:
    if start is None:
        return ""
    return format_duration(max(((end or now) - start).total_seconds(), 0.0))


def _items(step: StepRun, states: Mapping[str, str] | None) -> str:
    """A mapped step's items: ``37/100 done`` when it is known how many succeeded."""
    if step.items is None:
        return ""
    if step.state is StepState.SUCCEEDED:
        return f"{step.items}/{step.items} done"
    if states is None:
        return f"{step.items} items"
    done = sum(1 for e in step.execution_ids if states.get(str(e)) == "succeeded")
    return f"{min(done, step.items)}/{step.items} done"


def step_row(
    step: StepRun, states: Mapping[str, str] | None = None, now: datetime | None = None
) -> tuple[str, ...]:
    """A step as a row of :data:`STEP_COLUMNS`; ``states`` (execution id → state) gives
    a mapped step's progress."""
    error = f"{step.error.type}: {step.error.message}" if step.error else step.reason or ""
    return (
        step.id,
        step.state.value,
        _items(step, states),
        str(len(step.execution_ids)),
        _span(step.started_at, step.finished_at, now or utcnow()),
        error,
    )


def steps_table(
    run: WorkflowRun, states: Mapping[str, str] | None = None, now: datetime | None = None
) -> Group:
    """The run's summary line over a rich table of its steps, states in colour."""
    now = now or utcnow()
    table = Table()
    for column in STEP_COLUMNS:
        table.add_column(column, no_wrap=column == "step")
    for step in run.steps:
        row = step_row(step, states, now)
        cells = [Text(cell) for cell in row]
        cells[1].stylize(_STYLES.get(row[1], ""))
        table.add_row(*cells)
    return Group(Text(run_summary(run, now)), table)


def run_summary(run: WorkflowRun, now: datetime | None = None) -> str:
    """``run <id> (<name>): <state> after <duration>``, with the run's error if any."""
    took = _span(run.started_at or run.created_at, run.finished_at, now or utcnow())
    text = f"run {run.id} ({run.name}): {run.state.value}" + (f" after {took}" if took else "")
    if run.error is not None:
        text += f"; {run.error.type}: {run.error.message}"
    return text


def run_row(run: WorkflowRun) -> Sequence[str]:
    """A run as a row of :data:`RUN_COLUMNS` (steps as ``succeeded/total``)."""
    succeeded = sum(1 for s in run.steps if s.state is StepState.SUCCEEDED)
    return (
        str(run.id),
        str(run.session_id),
        run.name,
        run.state.value,
        f"{succeeded}/{len(run.steps)} succeeded",
        run.created_at.isoformat()[:19],
    )
