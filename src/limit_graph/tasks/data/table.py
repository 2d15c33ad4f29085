"""What the data agents pass between them: a table as a list of row objects.

A row maps column names to JSON scalars (text, integer, number, boolean or null);
the column order travels beside the rows (``columns``), so a table that a filter has
emptied still knows its columns.  The helpers here are the checks the agents share.

>>> columns_of([{"a": 1, "b": 2}, {"c": None, "a": 3}])
['a', 'b', 'c']
>>> is_number(True), is_number(2.5)
(False, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import Field

from limit_graph.core.errors import InvalidInput

__all__ = [
    "MAX_COLUMNS",
    "MAX_ROWS",
    "ColumnName",
    "ColumnType",
    "Row",
    "Scalar",
    "check_table",
    "columns_of",
    "is_number",
    "json_safe",
    "kind_of",
    "require_columns",
    "table_error",
]

MAX_ROWS = 100_000
"""Rows one table may have: results travel as JSON through the store."""
MAX_COLUMNS = 1_000

Scalar = str | int | float | bool | None
Row = dict[str, Scalar]
ColumnName = Annotated[str, Field(min_length=1, max_length=200)]
ColumnType = Literal["string", "integer", "number", "boolean"]


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is an integer or a number (a boolean is neither)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def kind_of(value: object) -> str:
    """The JSON type of a cell, for messages.

    >>> kind_of("x"), kind_of(1), kind_of(None)
    ('text', 'a number', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if is_number(value):
        return "a number"
    return "text"


def columns_of(rows: Iterable[Row]) -> list[str]:
    """Every column the rows name, in the order they first appear."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row:
            seen.setdefault(name, None)
    return list(seen)


def table_error(
    message: str, field: Sequence[str | int], kind: str = "value_error"
) -> InvalidInput:
    """An :class:`InvalidInput` for one problem of a table or an operation, located by
    ``field`` within the agent's inputs."""
    return InvalidInput(message, [{"loc": list(field), "msg": message, "type": kind}])


def require_columns(
    names: Iterable[str], columns: Sequence[str], field: Sequence[str | int]
) -> None:
    """Every name in ``names`` is one of ``columns``; else an error naming the first
    missing one and the columns there are."""
    known = set(columns)
    for name in names:
        if name not in known:
            listed = ", ".join(columns) if columns else "none"
            raise table_error(f"no column {name!r} (the columns: {listed})", field)


def check_table(rows: Sequence[Row], columns: Sequence[str] | None) -> list[str]:
    """The table's columns: ``columns`` if given (then no row may name another),
    else those the rows name."""
    if columns is None:
        return columns_of(rows)
    if len(set(columns)) != len(columns):
        raise table_error("columns repeat a name", ["columns"])
    known = set(columns)
    for index, row in enumerate(rows):
        extra = next((name for name in row if name not in known), None)
        if extra is not None:
            raise table_error(
                f"row {index} has column {extra!r}, which `columns` does not list",
                ["rows", index, extra],
            )
    return list(columns)


def json_safe(value: Any) -> Scalar:
    """``value`` as a cell; a float that JSON cannot hold (NaN, infinity) is null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{value!r} is not a table cell")
