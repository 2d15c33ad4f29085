"""``data.summarize``: count, mean, min, max (and sum, stdev) of numeric columns,
overall or per value of one column.

The answer is a ``table`` (one row per group: the group's value, its ``rows``, then
``<measure>_<statistic>``), which a workflow run shows as a table artifact.  Groups
are ordered by their value, null last.  Nulls are left out of every statistic; a
statistic of no values is null (``count`` is 0), and ``stdev`` (the sample standard
deviation) needs two.

>>> out = summarize.fn(SummarizeInput(rows=[
...     {"kind": "a", "x": 1}, {"kind": "b", "x": 4}, {"kind": "a", "x": 3}], group_by="kind"))
>>> out.table
[{'kind': 'a', 'rows': 2, 'x_count': 2, 'x_mean': 2.0, 'x_min': 1, 'x_max': 3}, \
{'kind': 'b', 'rows': 1, 'x_count': 1, 'x_mean': 4.0, 'x_min': 4, 'x_max': 4}]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Literal, Self

from prefect import task
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from limit_graph.tasks.data.table import (
    MAX_COLUMNS,
    MAX_ROWS,
    ColumnName,
    Row,
    Scalar,
    check_table,
    is_number,
    kind_of,
    require_columns,
    table_error,
)

__all__ = ["DEFAULT_STATISTICS", "Statistic", "SummarizeInput", "SummarizeOutput", "summarize"]

Statistic = Literal["count", "mean", "min", "max", "sum", "stdev"]
DEFAULT_STATISTICS: tuple[Statistic, ...] = ("count", "mean", "min", "max")
ROWS = "rows"
"""The table's column holding each group's number of rows."""

_STATISTICS: dict[str, Callable[[list[float | int]], Scalar]] = {
    "count": len,
    "mean": lambda xs: statistics.fmean(xs) if xs else None,
    "min": lambda xs: min(xs) if xs else None,
    "max": lambda xs: max(xs) if xs else None,
    "sum": lambda xs: math.fsum(xs) if xs else None,
    "stdev": lambda xs: statistics.stdev(xs) if len(xs) > 1 else None,
}


class SummarizeInput(BaseModel):
    """A table, the column to group it by, and what to compute."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Row] = Field(max_length=MAX_ROWS, description="The table's rows.")
    columns: list[ColumnName] | None = Field(
        default=None, max_length=MAX_COLUMNS, description="The table's columns, in order."
    )
    group_by: ColumnName | None = Field(
        default=None, description="One row of results per value of this column."
    )
    measures: list[ColumnName] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_COLUMNS,
        description="The numeric columns to summarize; by default every column (but "
        "group_by) whose cells are all numbers or null.",
    )
    statistics: list[Statistic] = Field(
        default_factory=lambda: list(DEFAULT_STATISTICS),
        min_length=1,
        max_length=6,
        description="count, mean, min, max, sum, stdev (sample).",
    )
    digits: int | None = Field(
        default=6, ge=0, le=15, description="Round non-integer results; null keeps them."
    )

    @field_validator("statistics", "measures")
    @classmethod
    def _distinct(cls, names: list[str] | None) -> list[str] | None:
        if names is not None and len(set(names)) != len(names):
            raise ValueError("names one twice")
        return names

    @model_validator(mode="after")
    def _group_is_not_measured(self) -> Self:
        if self.measures and self.group_by in self.measures:
            raise ValueError(f"{self.group_by!r} is the group_by column, so not a measure")
        return self


class SummarizeOutput(BaseModel):
    group_by: str | None
    measures: list[str]
    statistics: list[Statistic]
    groups: int
    row_count: int
    table: list[Row] = Field(
        description="One row per group: its value, `rows`, then `<measure>_<statistic>`."
    )


def _numeric(rows: list[Row], name: str) -> bool:
    cells = [r.get(name) for r in rows if r.get(name) is not None]
    return bool(cells) and all(is_number(c) for c in cells)


def _measures(inputs: SummarizeInput, columns: list[str]) -> list[str]:
    if inputs.measures is None:
        return [c for c in columns if c != inputs.group_by and _numeric(inputs.rows, c)]
    require_columns(inputs.measures, columns, ["measures"])
    for name in inputs.measures:
        for index, row in enumerate(inputs.rows):
            cell = row.get(name)
            if cell is not None and not is_number(cell):
                raise table_error(
                    f"row {index}: measure {name!r} holds {kind_of(cell)}, not a number",
                    ["measures"],
                )
    return list(inputs.measures)


def _group_order(key: Scalar) -> tuple[bool, str, Scalar]:
    return (key is None, kind_of(key), 0 if key is None else key)


def _rounded(value: Scalar, digits: int | None) -> Scalar:
    if digits is not None and isinstance(value, float):
        return round(value, digits)
    return value


@task(name="data.summarize", persist_result=False)
def summarize(inputs: SummarizeInput) -> SummarizeOutput:
    """Statistics of the measures, per group."""
    columns = check_table(inputs.rows, inputs.columns)
    if inputs.group_by is not None:
        require_columns([inputs.group_by], columns, ["group_by"])
    measures = _measures(inputs, columns)
    names = [f"{m}_{s}" for m in measures for s in inputs.statistics]
    taken = [ROWS, *names] + ([inputs.group_by] if inputs.group_by else [])
    clash = next((n for n in taken if taken.count(n) > 1), None)
    if clash is not None:
        raise table_error(f"two result columns would be named {clash!r}", ["group_by"])

    groups: dict[Scalar, list[Row]] = {}
    for row in inputs.rows:
        key = row.get(inputs.group_by) if inputs.group_by is not None else None
        groups.setdefault(key, []).append(row)
    if not groups and inputs.group_by is None:
        groups[None] = []
    table: list[Row] = []
    for key in sorted(groups, key=_group_order):
        members = groups[key]
        out: Row = {inputs.group_by: key} if inputs.group_by is not None else {}
        out[ROWS] = len(members)
        for measure in measures:
            values = [c for r in members if is_number(c := r.get(measure))]
            for statistic in inputs.statistics:
                value = _STATISTICS[statistic](values)
                out[f"{measure}_{statistic}"] = _rounded(value, inputs.digits)
        table.append(out)
    return SummarizeOutput(
        group_by=inputs.group_by,
        measures=measures,
        statistics=list(inputs.statistics),
        groups=len(table),
        row_count=len(inputs.rows),
        table=table,
    )
