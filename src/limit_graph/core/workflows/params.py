"""Run parameters: their declared JSON types, defaults and binding a run's values.

>>> from limit_graph.core.workflows.spec import ParamSpec
>>> declared = {"shots": ParamSpec(type="integer", default=1000), "tag": ParamSpec(type="string")}
>>> values, problems = bind_params(declared, {"tag": "x"})
>>> values, problems
({'shots': 1000, 'tag': 'x'}, [])
>>> for found in bind_params(declared, {"shots": 1.5, "tags": "x"})[1]:
...     print(found["field"], found["msg"])
/params/tags unknown param 'tags' (the params are: shots, tag)
/params/shots must be an integer, not a number
/params/tag missing param 'tag', which has no default
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from limit_graph.core.workflows.problems import problem
from limit_graph.core.workflows.spec import ParamSpec

__all__ = ["bind_params", "default_problems", "matches_type"]

_ARTICLES = {"integer": "an integer", "array": "an array", "object": "an object"}


def matches_type(value: Any, kind: str) -> bool:
    """Whether ``value`` is a JSON value of type ``kind`` (an integer is a number).

    >>> matches_type(3, "number"), matches_type(True, "integer"), matches_type(2.0, "integer")
    (True, False, False)
    """
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def _named(kind: str) -> str:
    return _ARTICLES.get(kind, f"a {kind}")


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    for kind in ("boolean", "integer", "number", "string", "array", "object"):
        if matches_type(value, kind):
            return _named(kind)
    return f"a {type(value).__name__}"


def default_problems(params: Mapping[str, ParamSpec]) -> list[dict[str, Any]]:
    """Declared defaults that do not have their param's type (``null`` never does)."""
    return [
        problem(
            ["params", name, "default"],
            f"the default must be {_named(spec.type)}, not {_kind_of(spec.default)}",
            "param_default_type",
        )
        for name, spec in params.items()
        if spec.has_default and not matches_type(spec.default, spec.type)
    ]


def bind_params(
    params: Mapping[str, ParamSpec], given: Mapping[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run's param values (given ones, then defaults) and the problems with them.

    A problem's ``field`` points at the param's declaration (``/params/NAME``), its
    ``loc`` at the run's value (``["body", "params", NAME]``); ``step`` is ``None``.
    """
    given = given or {}
    problems: list[dict[str, Any]] = []
    declared = ", ".join(params) or "none"
    for name in given:
        if name not in params:
            problems.append(
                _param_problem(
                    name, f"unknown param {name!r} (the params are: {declared})", "param_unknown"
                )
            )
    values: dict[str, Any] = {}
    for name, spec in params.items():
        if name in given:
            value = given[name]
            if not matches_type(value, spec.type):
                problems.append(
                    _param_problem(
                        name,
                        f"must be {_named(spec.type)}, not {_kind_of(value)}",
                        "param_type",
                    )
                )
                continue
            values[name] = value
        elif spec.has_default:
            values[name] = copy.deepcopy(spec.default)
        else:
            problems.append(
                _param_problem(
                    name, f"missing param {name!r}, which has no default", "param_missing"
                )
            )
    return values, problems


def _param_problem(name: str, msg: str, kind: str) -> dict[str, Any]:
    error = problem(["params", name], msg, kind)
    error["loc"] = ["body", "params", name]
    return error
