"""Reading a workflow: YAML or JSON text, or an already-parsed mapping, as JSON data.

YAML is read as JSON values (:mod:`.yaml_text`: the YAML 1.2 core schema, no dates,
no ``.nan``).  Text that looks like JSON is read as JSON first, so that its syntax
errors get JSON's message; a YAML flow mapping that only looks like JSON still reads.

>>> load_workflow("name: demo\\nsteps: [{id: a, agent: echo}]\\non: 2024-01-01")
{'name': 'demo', 'steps': [{'id': 'a', 'agent': 'echo'}], 'on': '2024-01-01'}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limit_graph.core.workflows.problems import WorkflowInvalid, pointer_parts, problem
from limit_graph.core.workflows.yaml_text import Positions, place_constant, read_yaml, refusal

__all__ = ["Loaded", "load", "load_workflow"]


@dataclass(frozen=True)
class Loaded:
    """A loaded document and, for text, where its values were written."""

    document: dict[str, Any]
    positions: Positions | None = None

    def locate(self, errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``errors`` with ``line`` and ``column`` added where the spec was text."""
        if self.positions is None:
            return errors
        for error in errors:
            if "line" not in error and error["type"] != "param_unknown":
                where = self.positions.find(pointer_parts(error["field"]))
                if where is not None:
                    error["line"], error["column"] = where
        return errors


class _NotJSON(Exception):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _NotJSON("duplicate key")
    return result


def _constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON number")


def _from_text(text: str) -> Loaded:
    body = text.removeprefix("\ufeff")
    if body.lstrip(" \t\r\n")[:1] in ("{", "["):
        try:
            value = json.loads(body, object_pairs_hook=_pairs, parse_constant=_constant)
        except _NotJSON as exc:
            if str(exc) != "duplicate key":  # NaN, Infinity: YAML would read strings
                raise place_constant(str(exc), body) from None
        except json.JSONDecodeError as exc:
            try:  # a YAML flow mapping looks like JSON too
                value, node = read_yaml(body)
            except WorkflowInvalid:
                raise refusal(f"JSON: {exc.msg}", "json_syntax", exc.lineno, exc.colno) from None
            return Loaded(_mapping(value), Positions(node))
        else:
            return Loaded(_mapping(_checked(value)), Positions(text=body))
    value, node = read_yaml(body)
    return Loaded(_mapping(value), Positions(node))


def _mapping(value: Any) -> dict[str, Any]:
    if value is None:
        raise refusal("the workflow is empty", "workflow_empty", None, None)
    if not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else f"a {type(value).__name__}"
        raise refusal(
            f"a workflow is a mapping (name, steps, ...), not {kind}", "workflow_type", 1, 1
        )
    return value


_SCALARS = (str, int, bool, type(None))


def _plain(value: Any) -> bool:
    """Whether ``value`` is JSON made of dicts and lists only (the quick check)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if not all(type(key) is str for key in item):
                return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind not in _SCALARS:
            return False
    return True


def _checked(value: Any) -> Any:
    """``value`` if it is plain JSON, else a JSON copy of it (tuples and other mappings
    become lists and dicts); anything else not JSON is refused."""
    if _plain(value):
        return value
    errors: list[dict[str, Any]] = []

    def copy(item: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(item, str | bool | int) or item is None:
            return item
        if isinstance(item, float):
            if not math.isfinite(item):
                errors.append(problem(path, f"{item} is not a JSON number", "number_not_finite"))
            return item
        if isinstance(item, Mapping):
            result = {}
            for key, sub in item.items():
                if not isinstance(key, str):
                    errors.append(problem(path, f"key {key!r} is not a string", "key_not_string"))
                    continue
                result[key] = copy(sub, (*path, key))
            return result
        if isinstance(item, list | tuple):
            return [copy(sub, (*path, index)) for index, sub in enumerate(item)]
        errors.append(problem(path, f"a {type(item).__name__} is not a JSON value", "not_json"))
        return None

    result = copy(value, ())
    if errors:
        raise WorkflowInvalid(errors)
    return result


def load(source: str | Mapping[str, Any]) -> Loaded:
    """The document and where its values were written; see :func:`load_workflow`."""
    if isinstance(source, str):
        return _from_text(source)
    if not isinstance(source, Mapping):
        raise refusal(
            f"a workflow is a mapping or YAML/JSON text, not a {type(source).__name__}",
            "workflow_type",
            None,
            None,
        )
    return Loaded(_mapping(_checked(source)))


def load_workflow(source: str | Mapping[str, Any]) -> dict[str, Any]:
    """The raw document of a workflow given as YAML or JSON text or as a mapping.

    Raises :class:`WorkflowInvalid`: syntax errors carry ``line`` and ``column``;
    a document that is not a mapping, or holds what JSON cannot, is refused too.
    """
    return load(source).document
