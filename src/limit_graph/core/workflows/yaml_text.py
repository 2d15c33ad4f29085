"""YAML text as JSON values, by the YAML 1.2 core schema (JSON's), with positions.

``true``/``false`` only (not ``yes``/``on``), no sexagesimal or octal surprises, no
timestamps (a date stays a string).  Anchors and aliases are expanded (within a size
bound); merge keys (``<<``) work.  What JSON cannot hold is refused with its line and
column: keys that are not strings, duplicate keys, ``.nan`` and ``.inf``, tags such as
``!!binary``.  PyYAML parses (with libyaml where it is installed); the values are built
here, so that nothing but JSON comes out.

>>> read_yaml("a: [1, yes, 2024-01-01, ~]")[0]
{'a': [1, 'yes', '2024-01-01', None]}
"""

from __future__ import annotations

import contextlib
import gc
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import yaml

from limit_graph.core.workflows.problems import WorkflowInvalid, problem

__all__ = ["MAX_NODES", "Positions", "place_constant", "read_yaml", "refusal"]

MAX_NODES = 1_000_000
"""Values a document may hold once its aliases are expanded (a billion laughs is not)."""

_BASE: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"


class _Loader(_BASE):  # type: ignore[misc]
    """Composes nodes only; :class:`_Builder` turns them into JSON values."""

    yaml_implicit_resolvers: dict[str, Any] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        """PyYAML's resolver without its path resolvers (unused here), which is most of
        its cost on large documents."""
        if kind is yaml.ScalarNode:
            if implicit[0]:  # plain
                for tag, pattern in self.yaml_implicit_resolvers.get(value[:1], ()):
                    if pattern.match(value):
                        return str(tag)
            return _TAG + "str"
        return _TAG + ("seq" if kind is yaml.SequenceNode else "map")


for _tag, _pattern, _first in (
    ("null", r"^(?:~|null|Null|NULL|)$", [*"~nN", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", [*"tTfF"]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", [*"-+0123456789"]),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        [*"-+.0123456789"],
    ),
    ("merge", r"^(?:<<)$", ["<"]),
):
    _Loader.add_implicit_resolver(_TAG + _tag, re.compile(_pattern), _first)


Path = tuple[str | int, ...]


class _Refused(Exception):
    def __init__(self, message: str, node: yaml.Node, kind: str, path: Path) -> None:
        super().__init__(message)
        self.message, self.node, self.kind, self.path = message, node, kind, path


class _Builder:
    """JSON values from a YAML node tree, refusing what JSON cannot hold."""

    def __init__(self) -> None:
        self.built: dict[int, tuple[Any, int]] = {}
        self.building: set[int] = set()

    def build(self, node: yaml.Node, path: Path) -> tuple[Any, int]:
        key = id(node)
        if key in self.built:
            return self.built[key]
        if key in self.building:
            raise _Refused("an alias refers to a value that contains it", node, "yaml_alias", path)
        self.building.add(key)
        if isinstance(node, yaml.ScalarNode):
            result: tuple[Any, int] = (self.scalar(node, path), 1)
        elif isinstance(node, yaml.SequenceNode):
            self.tagged(node, "seq", path)
            items = [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            result = ([value for value, _ in items], 1 + sum(size for _, size in items))
        else:
            result = self.mapping(node, path)
        self.building.discard(key)
        if result[1] > MAX_NODES:
            raise _Refused(
                f"the document holds more than {MAX_NODES:,} values once its aliases are expanded",
                node,
                "yaml_too_large",
                path,
            )
        self.built[key] = result
        return result

    @staticmethod
    def tagged(node: yaml.Node, expected: str, path: Path) -> None:
        if node.tag != _TAG + expected:
            shown = node.tag.replace(_TAG, "!!")
            raise _Refused(f"the YAML tag {shown} has no JSON value", node, "yaml_tag", path)

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        tag, text = node.tag.replace(_TAG, ""), node.value
        if tag == "str":
            return text
        if tag == "null":
            return None
        if tag == "bool":
            return text.lower() == "true"
        if tag == "int":
            return int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10)
        if tag == "float":
            lowered = text.lower()
            if "nan" in lowered or "inf" in lowered or math.isinf(value := float(text)):
                raise _Refused(f"{text} is not a JSON number", node, "number_not_finite", path)
            return value
        self.tagged(node, "str", path)
        raise AssertionError  # tagged() raised

    def mapping(self, node: yaml.MappingNode, path: Path) -> tuple[Any, int]:
        self.tagged(node, "map", path)
        result: dict[str, Any] = {}
        size = 1
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                size += self.merge(value_node, merged, path)
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _TAG + "str":
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                raise _Refused(
                    f"key {shown!r} is not a string (JSON keys are strings: quote it)",
                    key_node,
                    "key_not_string",
                    path,
                )
            if key_node.value in result:
                raise _Refused(
                    f"duplicate key {key_node.value!r}",
                    key_node,
                    "duplicate_key",
                    (*path, key_node.value),
                )
            value, value_size = self.build(value_node, (*path, key_node.value))
            result[key_node.value] = value
            size += value_size
        for key, value in merged.items():
            result.setdefault(key, value)
        return result, size

    def merge(self, node: yaml.Node, into: dict[str, Any], path: Path) -> int:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        size = 0
        for source in sources:
            value, value_size = self.build(source, path)
            if not isinstance(value, dict):
                raise _Refused("a merge key (<<) takes a mapping", source, "yaml_merge", path)
            for key, item in value.items():
                into.setdefault(key, item)
            size += value_size
        return size


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class Positions:
    """Where the values of a document were written, looked up by path."""

    def __init__(self, root: yaml.Node | None = None, text: str | None = None) -> None:
        self._root = root
        self._text = text

    def _node(self) -> yaml.Node | None:
        if self._root is None and self._text is not None:
            # JSON read by the json module: composed as YAML, only when asked
            with contextlib.suppress(yaml.YAMLError):
                self._root = yaml.compose(self._text, Loader=_Loader)
            self._text = None
        return self._root

    def find(self, path: Sequence[str | int]) -> tuple[int, int] | None:
        """(line, column), 1-based, of the value at ``path``, or of the key when the path
        ends at a mapping key; the nearest written ancestor for a path not written."""
        node = self._node()
        if node is None:
            return None
        found = _position(node)
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(node, yaml.MappingNode):
                match = next((pair for pair in node.value if pair[0].value == str(part)), None)
                if match is None:
                    return found
                node = match[1]
                found = _position(match[0] if last else match[1])
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return found
                node = node.value[part]
                found = _position(node)
            else:
                return found
        return found


def refusal(
    message: str, kind: str, line: int | None, column: int | None, path: Path = ()
) -> WorkflowInvalid:
    """The error for a document that cannot be read, at ``path`` (and line/column)."""
    error = problem(path, message, kind)
    if line is not None and column is not None:
        error["line"], error["column"] = line, column
    return WorkflowInvalid([error])


def _yaml_error(exc: yaml.YAMLError) -> WorkflowInvalid:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem_text = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    message = f"YAML: {problem_text}"
    if context:
        message += f" ({context}"
        if context_mark is not None and context_mark is not mark:
            message += f" at line {context_mark.line + 1}, column {context_mark.column + 1}"
        message += ")"
    if mark is None:
        return refusal(message, "yaml_syntax", None, None)
    return refusal(message, "yaml_syntax", mark.line + 1, mark.column + 1)


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: composing a large document makes many
    objects and no cycles, and the collections it would set off cost twice the parse."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The JSON value of a YAML document and its node tree (``None`` for none)."""
    loader = _Loader(text)
    with _collection_paused():
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise _yaml_error(exc) from None
        finally:
            loader.dispose()
        if node is None:
            return None, None
        try:
            value, _ = _Builder().build(node, ())
        except _Refused as exc:
            line, column = _position(exc.node)
            raise refusal(exc.message, exc.kind, line, column, exc.path) from None
    return value, node


def place_constant(message: str, text: str) -> WorkflowInvalid:
    """NaN or Infinity in JSON text, placed by composing the text as YAML."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        root = None
    stack: list[tuple[Any, Path]] = [(root, ())] if root is not None else []
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            stack.extend((v, (*path, k.value)) for k, v in reversed(node.value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in reversed(list(enumerate(node.value))))
        elif not node.style and node.value in ("NaN", "Infinity", "-Infinity"):
            line, column = _position(node)
            return refusal(message, "number_not_finite", line, column, path)
    return refusal(message, "number_not_finite", None, None)
