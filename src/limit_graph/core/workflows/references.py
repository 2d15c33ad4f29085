"""References (``${...}``) in a spec's strings: parsing them, finding them, resolving them.

Three roots, each followed by an optional path of ``.field``, ``[n]`` and ``["key"]``
parts::

    ${params.shots}                       a run parameter
    ${steps.prepare.outputs.angles[0]}    a step's outputs (a mapped step's: a list)
    ${theta}                              the current item of the step's own map

A string that is exactly one reference takes the referenced value, JSON type and
all; references inside longer text are interpolated (strings as they are, anything
else as compact JSON).  Before ``{``, ``$$`` stands for one ``$``: ``$${x}`` is the
literal text ``${x}``, ``$$${x}`` a ``$`` followed by a reference.

>>> scope = Scope(params={"shots": 100}, outputs={"a": {"items": [1, 2]}})
>>> resolve({"n": "${params.shots}", "s": "got ${steps.a.outputs.items}", "e": "$${x}"}, scope)
{'n': 100, 's': 'got [1,2]', 'e': '${x}'}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from limit_graph.core.workflows.problems import WorkflowInvalid, WorkflowRuntimeError, problem

__all__ = [
    "Reference",
    "ReferenceSyntaxError",
    "Scope",
    "Template",
    "lookup",
    "parse_template",
    "read_reference",
    "references",
    "resolve",
    "strings",
]

Part = str | int
Kind = Literal["params", "steps", "item"]

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[([0-9]+)\]")
_KEY = re.compile(r"""\[(?:"([^"]*)"|'([^']*)')\]""")
_OPENING = re.compile(r"(\$+)\{")


class ReferenceSyntaxError(ValueError):
    """A malformed reference; ``offset`` is where in the string (0-based)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def _render(kind: Kind, name: str, path: tuple[Part, ...]) -> str:
    head = {"params": f"params.{name}", "steps": f"steps.{name}.outputs", "item": name}[kind]
    for part in path:
        if isinstance(part, int):
            head += f"[{part}]"
        elif _NAME.fullmatch(part):
            head += f".{part}"
        else:
            head += f'["{part}"]' if '"' not in part else f"['{part}']"
    return head


@dataclass(frozen=True, slots=True)
class Reference:
    """One parsed reference: its root (``kind`` and ``name``) and its path."""

    kind: Kind
    name: str
    """The param's name, the step's id, or the map item's ``as`` name."""
    path: tuple[Part, ...] = ()

    @property
    def step(self) -> str | None:
        """The step whose outputs this names, if any."""
        return self.name if self.kind == "steps" else None

    def prefix(self, length: int) -> str:
        """The reference cut after ``length`` path parts, as text (for messages)."""
        return _render(self.kind, self.name, self.path[:length])

    def __str__(self) -> str:
        return "${" + _render(self.kind, self.name, self.path) + "}"


Template = tuple[str | Reference, ...]
"""A string as literal text and references, in order; escapes already undone."""


def _path(text: str, at: int, end: int) -> tuple[tuple[Part, ...], int]:
    parts: list[Part] = []
    while at < end and text[at] in ".[":
        if text[at] == ".":
            found = _NAME.match(text, at + 1, end)
            if found is None:
                raise ReferenceSyntaxError("expected a field name after '.'", at + 1)
            parts.append(found.group())
        elif found := _INDEX.match(text, at, end):
            parts.append(int(found.group(1)))
        elif found := _KEY.match(text, at, end):
            parts.append(found.group(1) if found.group(1) is not None else found.group(2))
        else:
            raise ReferenceSyntaxError(
                "expected an index such as [0] or a quoted key such as [\"00\"] after '['", at
            )
        at = found.end()
    return tuple(parts), at


def read_reference(text: str, start: int) -> tuple[Reference, int]:
    """The reference whose ``${`` is at ``start``, and where it ends (after ``}``)."""
    close = text.find("}", start)
    quoted = text.find("[", start, close) if close >= 0 else -1
    if quoted >= 0:  # a "}" may stand inside a quoted key
        close = _closing_after_keys(text, start)
    if close < 0:
        raise ReferenceSyntaxError("'${' is not closed by '}' (write $${ for a literal ${)", start)
    at = start + 2
    while at < close and text[at] == " ":
        at += 1
    end = close
    while end > at and text[end - 1] == " ":
        end -= 1
    if at == end:
        raise ReferenceSyntaxError("empty reference '${}'", start)
    root = _NAME.match(text, at, end)
    if root is None:
        raise ReferenceSyntaxError(f"unexpected {text[at]!r} in a reference", at)
    path, stop = _path(text, root.end(), end)
    if stop != end:
        raise ReferenceSyntaxError(f"unexpected {text[stop]!r} in a reference", stop)
    return _interpret(root.group(), path, at), close + 1


def _closing_after_keys(text: str, start: int) -> int:
    at = start + 2
    while at < len(text):
        char = text[at]
        if char == "}":
            return at
        if char in "\"'":
            at = text.find(char, at + 1)
            if at < 0:
                return -1
        at += 1
    return -1


def _interpret(root: str, path: tuple[Part, ...], at: int) -> Reference:
    if root == "params":
        if not path or not isinstance(path[0], str):
            raise ReferenceSyntaxError("name the param, e.g. ${params.shots}", at)
        if not _IDENTIFIER.fullmatch(path[0]):
            raise ReferenceSyntaxError(f"{path[0]!r} is not a param name", at)
        return Reference("params", path[0], path[1:])
    if root == "steps":
        if not path or not isinstance(path[0], str) or not _STEP_ID.fullmatch(path[0]):
            raise ReferenceSyntaxError("name the step, e.g. ${steps.ID.outputs}", at)
        if path[1:2] != ("outputs",):
            raise ReferenceSyntaxError(
                f"a step reference goes on with .outputs, e.g. ${{steps.{path[0]}.outputs}}", at
            )
        return Reference("steps", path[0], path[2:])
    if not _IDENTIFIER.fullmatch(root):
        raise ReferenceSyntaxError(
            f"{root!r} is not a name: a reference starts with params., steps. or the "
            "step's map `as` name",
            at,
        )
    return Reference("item", root, path)


@lru_cache(maxsize=8192)
def parse_template(text: str) -> Template:
    """``text`` as literal text and references; raises :class:`ReferenceSyntaxError`.

    >>> parse_template("n=${params.n}, $${not} $$5")
    ('n=', Reference(kind='params', name='n', path=()), ', ${not} $$5')
    """
    if "${" not in text:
        return (text,)
    parts: list[str | Reference] = []
    literal: list[str] = []
    at = 0
    while (found := _OPENING.search(text, at)) is not None:
        dollars = len(found.group(1))
        literal.append(text[at : found.start()] + "$" * (dollars // 2))
        if dollars % 2 == 0:
            literal.append("{")
            at = found.end()
            continue
        reference, at = read_reference(text, found.end() - 2)
        if chunk := "".join(literal):
            parts.append(chunk)
        literal = []
        parts.append(reference)
    literal.append(text[at:])
    if chunk := "".join(literal):
        parts.append(chunk)
    return tuple(parts)


def strings(value: Any, path: tuple[Part, ...] = ()) -> Iterator[tuple[tuple[Part, ...], str]]:
    """Every string in a JSON value (not its keys), with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from strings(item, (*path, index))


def references(value: Any) -> list[Reference]:
    """Every reference in a JSON value, in document order; bad syntax raises
    :class:`WorkflowInvalid` with each problem's pointer relative to ``value``.

    >>> [str(r) for r in references({"a": ["${params.x}", "${steps.s.outputs[0]} and ${y}"]})]
    ['${params.x}', '${steps.s.outputs[0]}', '${y}']
    """
    found: list[Reference] = []
    errors: list[dict[str, Any]] = []
    for path, text in strings(value):
        try:
            found.extend(p for p in parse_template(text) if isinstance(p, Reference))
        except ReferenceSyntaxError as exc:
            errors.append(problem(path, exc.message, "reference_syntax"))
    if errors:
        raise WorkflowInvalid(errors)
    return found


@dataclass(frozen=True)
class Scope:
    """What references resolve against while a run is under way."""

    params: Mapping[str, Any]
    outputs: Mapping[str, Any]
    """Step id → its output (a mapped step's: the list of its items' outputs)."""
    names: Mapping[str, Any] = field(default_factory=dict)
    """A map's ``as`` name → the current item."""


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def lookup(reference: Reference, scope: Scope) -> Any:
    """The value ``reference`` names in ``scope``; raises :class:`WorkflowRuntimeError`."""
    text = str(reference)
    if reference.kind == "params":
        if reference.name not in scope.params:
            raise WorkflowRuntimeError(f"{text}: the run has no param {reference.name!r}", text)
        value = scope.params[reference.name]
    elif reference.kind == "steps":
        if reference.name not in scope.outputs:
            raise WorkflowRuntimeError(
                f"{text}: step {reference.name!r} has no outputs (it has not succeeded)", text
            )
        value = scope.outputs[reference.name]
    else:
        if reference.name not in scope.names:
            raise WorkflowRuntimeError(f"{text}: no map item is named {reference.name!r}", text)
        value = scope.names[reference.name]
    for depth, part in enumerate(reference.path):
        if isinstance(part, int):
            if not isinstance(value, list):
                raise WorkflowRuntimeError(
                    f"{text}: {reference.prefix(depth)} is {_kind_of(value)}, not an array, "
                    f"so [{part}] does not apply",
                    text,
                )
            if part >= len(value):
                raise WorkflowRuntimeError(
                    f"{text}: index {part} is out of range: {reference.prefix(depth)} has "
                    f"{len(value)} item{'' if len(value) == 1 else 's'}",
                    text,
                )
        elif not isinstance(value, dict):
            raise WorkflowRuntimeError(
                f"{text}: {reference.prefix(depth)} is {_kind_of(value)}, not an object, "
                f"so it has no field {part!r}",
                text,
            )
        elif part not in value:
            fields = ", ".join(sorted(value)[:20]) or "none"
            raise WorkflowRuntimeError(
                f"{text}: {reference.prefix(depth)} has no field {part!r} (its fields: {fields})",
                text,
            )
        value = value[part]
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _resolve_string(text: str, scope: Scope) -> Any:
    if "${" not in text:
        return text
    try:
        parts = parse_template(text)
    except ReferenceSyntaxError as exc:
        raise WorkflowRuntimeError(f"{text!r}: {exc.message}") from None
    if len(parts) == 1:
        only = parts[0]
        return lookup(only, scope) if isinstance(only, Reference) else only
    return "".join(_text(lookup(p, scope)) if isinstance(p, Reference) else p for p in parts)


def resolve(value: Any, scope: Scope) -> Any:
    """``value`` with every reference replaced, at any depth (keys are left alone).

    Raises :class:`WorkflowRuntimeError` (an ``InvalidInput``, 422) naming the
    reference when what it names does not exist in ``scope``.
    """
    if isinstance(value, str):
        return _resolve_string(value, scope)
    if isinstance(value, dict):
        return {key: resolve(item, scope) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, scope) for item in value]
    return value
