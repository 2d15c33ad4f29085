"""``data.transform``: a table through a list of declarative operations, in order.

Five operations, each an object told apart by its ``op``:

- ``filter``: keep the rows whose ``column`` compares true with ``value`` by
  ``operator`` (``== != < <= > >= in``, ``not in``).  Ordering needs a number or text
  on both sides; a null cell never passes an ordering test; ``==`` and ``!=`` compare
  numbers as numbers and anything else only with its own type.
- ``derive``: ``column`` = ``left`` ``operator`` ``right`` (``+ - * /``), where ``left``
  is a column and ``right`` a column or a number; null in, null out, and so is a
  division by zero.  ``digits`` rounds the result.  An existing column is replaced.
- ``select``: keep these columns, in this order.
- ``rename``: ``{old: new, ...}``.
- ``sort``: by these columns (``descending`` or not), nulls last, stable.

No expression is ever evaluated as code: the operations are data.

>>> out = transform.fn(TransformInput.model_validate({
...     "rows": [{"x": 3, "y": 1}, {"x": 1, "y": 0}, {"x": 2, "y": 4}],
...     "operations": [
...         {"op": "filter", "column": "x", "operator": ">=", "value": 2},
...         {"op": "derive", "column": "ratio", "left": "y", "operator": "/", "right": "x",
...          "digits": 3},
...         {"op": "sort", "by": ["ratio"]},
...         {"op": "select", "columns": ["x", "ratio"]}]}))
>>> out.rows
[{'x': 3, 'ratio': 0.333}, {'x': 2, 'ratio': 2.0}]
"""

from __future__ import annotations

import operator as ops
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, Self, cast

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
    json_safe,
    kind_of,
    require_columns,
    table_error,
)

__all__ = [
    "MAX_OPERATIONS",
    "Derive",
    "Filter",
    "Operation",
    "Rename",
    "Select",
    "Sort",
    "TransformInput",
    "TransformOutput",
    "transform",
]

MAX_OPERATIONS = 100

Comparison = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]
Arithmetic = Literal["+", "-", "*", "/"]

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "<": ops.lt,
    "<=": ops.le,
    ">": ops.gt,
    ">=": ops.ge,
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": ops.add,
    "-": ops.sub,
    "*": ops.mul,
    "/": ops.truediv,
}


class _Operation(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filter(_Operation):
    """Keep the rows whose ``column`` compares true with ``value``."""

    op: Literal["filter"]
    column: ColumnName
    operator: Comparison = Field(description="== != < <= > >= in, or not in.")
    value: Scalar | list[Scalar] = Field(
        description="What to compare with: a list for `in` and `not in`, else one value."
    )

    @model_validator(mode="after")
    def _value_fits(self) -> Self:
        listed = isinstance(self.value, list)
        if self.operator in ("in", "not in"):
            if not listed:
                raise ValueError(f"`{self.operator}` needs a list as its value")
            if len(cast(list[Scalar], self.value)) > 10_000:
                raise ValueError("a value list has at most 10000 items")
        elif listed:
            raise ValueError(f"`{self.operator}` compares with one value, not a list")
        elif self.operator in _ORDERING and not (
            isinstance(self.value, str) or is_number(self.value)
        ):
            raise ValueError(f"`{self.operator}` needs a number or text, not {kind_of(self.value)}")
        return self


class Derive(_Operation):
    """Add (or replace) ``column`` = ``left`` ``operator`` ``right``."""

    op: Literal["derive"]
    column: ColumnName = Field(description="The column to write.")
    left: ColumnName = Field(description="A column of numbers.")
    operator: Arithmetic = Field(description="+ - * or /.")
    right: float | ColumnName = Field(description="A number, or a column of numbers.")
    digits: int | None = Field(
        default=None, ge=0, le=15, description="Round the result to this many digits."
    )


class Select(_Operation):
    """Keep these columns, in this order."""

    op: Literal["select"]
    columns: list[ColumnName] = Field(min_length=1, max_length=MAX_COLUMNS)

    @field_validator("columns")
    @classmethod
    def _distinct(cls, columns: list[str]) -> list[str]:
        if len(set(columns)) != len(columns):
            raise ValueError("names a column twice")
        return columns


class Rename(_Operation):
    """Rename columns: ``{old: new}``."""

    op: Literal["rename"]
    columns: dict[ColumnName, ColumnName] = Field(min_length=1, max_length=MAX_COLUMNS)


class Sort(_Operation):
    """Order the rows by these columns; nulls last; equal rows keep their order."""

    op: Literal["sort"]
    by: list[ColumnName] = Field(min_length=1, max_length=20)
    descending: bool = False


Operation = Annotated[Filter | Derive | Select | Rename | Sort, Field(discriminator="op")]


class TransformInput(BaseModel):
    """A table and what to do to it."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Row] = Field(max_length=MAX_ROWS, description="The table's rows.")
    columns: list[ColumnName] | None = Field(
        default=None,
        max_length=MAX_COLUMNS,
        description="The table's columns in order (e.g. data.load_csv's `columns`); by "
        "default those the rows name.",
    )
    operations: list[Operation] = Field(
        min_length=1, max_length=MAX_OPERATIONS, description="Applied in order."
    )


class TransformOutput(BaseModel):
    columns: list[str]
    rows: list[Row]
    row_count: int
    input_row_count: int


Where = Sequence[str | int]


def _equal(cell: Scalar, value: Scalar) -> bool:
    if is_number(cell) and is_number(value):
        return cell == value
    return type(cell) is type(value) and cell == value


def _filter(step: Filter, rows: list[Row], where: Where) -> list[Row]:
    if step.operator in ("in", "not in"):
        values = step.value if isinstance(step.value, list) else [step.value]
        wanted = step.operator == "in"
        return [r for r in rows if any(_equal(r[step.column], v) for v in values) is wanted]
    value = step.value
    assert not isinstance(value, list)
    if step.operator in ("==", "!="):
        wanted = step.operator == "=="
        return [r for r in rows if _equal(r[step.column], value) is wanted]
    compare = _ORDERING[step.operator]
    kept = []
    for index, row in enumerate(rows):
        cell = row[step.column]
        if cell is None:
            continue
        if not (is_number(cell) and is_number(value)) and not (
            isinstance(cell, str) and isinstance(value, str)
        ):
            raise table_error(
                f"row {index}: column {step.column!r} holds {kind_of(cell)}, which "
                f"`{step.operator}` cannot compare with {kind_of(value)}",
                [*where, "value"],
            )
        if compare(cell, value):
            kept.append(row)
    return kept


def _number(row: Row, index: int, name: str, where: Where) -> float | int | None:
    cell = row[name]
    if cell is None or is_number(cell):
        return cell
    raise table_error(f"row {index}: column {name!r} holds {kind_of(cell)}, not a number", [*where])


def _derive(step: Derive, rows: list[Row], where: Where) -> list[Row]:
    apply = _ARITHMETIC[step.operator]
    derived = []
    for index, row in enumerate(rows):
        left = _number(row, index, step.left, [*where, "left"])
        right = (
            _number(row, index, step.right, [*where, "right"])
            if isinstance(step.right, str)
            else step.right
        )
        result: Scalar = None
        if left is not None and right is not None and not (step.operator == "/" and right == 0):
            try:
                result = apply(left, right)
            except OverflowError:
                result = None
            if step.digits is not None and isinstance(result, float):
                result = round(result, step.digits)
        derived.append({**row, step.column: json_safe(result)})
    return derived


def _rename(step: Rename, columns: list[str], where: Where) -> list[str]:
    require_columns(step.columns, columns, [*where, "columns"])
    renamed = [step.columns.get(name, name) for name in columns]
    if len(set(renamed)) != len(renamed):
        clash = next(n for n in renamed if renamed.count(n) > 1)
        raise table_error(f"renaming would make two columns named {clash!r}", [*where, "columns"])
    return renamed


def _sort(step: Sort, rows: list[Row], where: Where) -> list[Row]:
    ordered = list(rows)
    for name in reversed(step.by):
        kinds = {kind_of(r[name]) for r in ordered} - {"null"}
        if len(kinds) > 1:
            raise table_error(
                f"column {name!r} mixes {' and '.join(sorted(kinds))}, which do not sort together",
                [*where, "by"],
            )
        present = [r for r in ordered if r[name] is not None]
        missing = [r for r in ordered if r[name] is None]
        present.sort(key=lambda r: cast(Any, r[name]), reverse=step.descending)
        ordered = present + missing
    return ordered


def apply_operation(
    step: Operation, rows: list[Row], columns: list[str], where: Where
) -> tuple[list[Row], list[str]]:
    """One operation on a table whose every row has exactly ``columns``."""
    if isinstance(step, Filter):
        require_columns([step.column], columns, [*where, "column"])
        return _filter(step, rows, where), columns
    if isinstance(step, Derive):
        require_columns([step.left], columns, [*where, "left"])
        if isinstance(step.right, str):
            require_columns([step.right], columns, [*where, "right"])
        added = columns if step.column in columns else [*columns, step.column]
        return _derive(step, rows, where), added
    if isinstance(step, Select):
        require_columns(step.columns, columns, [*where, "columns"])
        return [{name: row[name] for name in step.columns} for row in rows], list(step.columns)
    if isinstance(step, Rename):
        renamed = _rename(step, columns, where)
        mapping = dict(zip(columns, renamed, strict=True))
        return [{mapping[k]: v for k, v in row.items()} for row in rows], renamed
    require_columns(step.by, columns, [*where, "by"])
    return _sort(step, rows, where), columns


@task(name="data.transform", persist_result=False)
def transform(inputs: TransformInput) -> TransformOutput:
    """Apply ``inputs.operations`` to the table, in order."""
    columns = check_table(inputs.rows, inputs.columns)
    rows: list[Row] = [{name: row.get(name) for name in columns} for row in inputs.rows]
    for index, step in enumerate(inputs.operations):
        rows, columns = apply_operation(step, rows, columns, ["operations", index])
    return TransformOutput(
        columns=columns, rows=rows, row_count=len(rows), input_row_count=len(inputs.rows)
    )
