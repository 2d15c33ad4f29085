"""What the agents' JSON Schemas say a reference may name, and which types may feed
which: the static half of the wiring check.

A :class:`Shape` is what is known of a value: the schemas it may match (the
alternatives of ``anyOf``/``oneOf``, ``$ref`` followed into ``$defs``), or
:data:`ANYTHING`.  Descending a path follows ``properties``, ``additionalProperties``,
``patternProperties``, ``prefixItems`` and ``items``.  An object schema that lists
properties and says nothing of others (pydantic's default, ``extra="ignore"``) has
only those; one that allows others, or lists none, may hold anything.

>>> from pydantic import BaseModel
>>> class Out(BaseModel):
...     items: list[int]
>>> shape = model_shape(Out)
>>> types(child(child(shape, "items"), 0))
frozenset({'integer'})
>>> child(shape, "itemz")
Missing(message="has no field 'itemz' (its fields: items)")
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter

__all__ = [
    "ANYTHING",
    "Missing",
    "Shape",
    "child",
    "feeds",
    "field_adapter",
    "json_type",
    "literal_shape",
    "model_shape",
    "type_names",
    "types",
]

Types = frozenset[str] | None
"""The JSON types a value may have; ``None`` for any."""


@dataclass(frozen=True)
class Shape:
    """The schemas a value matches (any one of them), resolved against ``root``."""

    alternatives: tuple[dict[str, Any], ...]
    root: dict[str, Any]
    children: dict[str | int, Shape | Missing | None] = field(
        default_factory=dict, compare=False, repr=False
    )
    """What :func:`child` found under this shape, kept: agents' schemas do not change."""

    def __repr__(self) -> str:
        return f"Shape({type_names(types(self))})"


@dataclass(frozen=True)
class Missing:
    """A path the schema says cannot exist; ``message`` says why."""

    message: str


ANYTHING: Shape | None = None
"""The shape of a value about which nothing is known."""

_KEYWORDS = ("type", "properties", "items", "prefixItems", "enum", "const")
_OBJECT_KEYWORDS = ("properties", "additionalProperties", "patternProperties")


def json_type(value: Any) -> str:
    """The JSON type of a Python value.

    >>> json_type(True), json_type(1), json_type(1.5), json_type(None)
    ('boolean', 'integer', 'number', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def _expand(schema: Any, root: dict[str, Any], seen: int = 0) -> list[dict[str, Any]] | None:
    """The concrete alternatives of ``schema`` (``None``: anything goes)."""
    if schema is True or schema == {}:
        return None
    if schema is False or not isinstance(schema, dict):
        return []
    if seen > 32:  # a $ref cycle with nothing concrete in it
        return None
    if "$ref" in schema:
        return _expand(_dereference(schema["$ref"], root), root, seen + 1)
    union = schema.get("anyOf") or schema.get("oneOf")
    if union is not None:
        found: list[dict[str, Any]] = []
        for member in union:
            expanded = _expand(member, root, seen + 1)
            if expanded is None:
                return None
            found.extend(expanded)
        return found
    if "allOf" in schema:
        parts = schema["allOf"]
        return _expand(parts[0], root, seen + 1) if len(parts) == 1 else None
    if not any(key in schema for key in (*_KEYWORDS, *_OBJECT_KEYWORDS)):
        return None
    return [schema]


def _dereference(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#/"):
        return True  # an outside schema: nothing known
    node: Any = root
    for raw in ref[2:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return True
        node = node[key]
    return node


def shape_of(schema: Any, root: dict[str, Any]) -> Shape | None:
    """The shape of ``schema`` (a part of ``root``)."""
    expanded = _expand(schema, root)
    return None if expanded is None else Shape(tuple(expanded), root)


@lru_cache(maxsize=1024)
def model_shape(model: type[BaseModel]) -> Shape | None:
    """The shape of a pydantic model's JSON: its schema is computed once per model, and
    what is found under it is kept with it (see :attr:`Shape.children`)."""
    schema = model.model_json_schema()
    return shape_of(schema, schema)


@lru_cache(maxsize=4096)
def field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    """Validates one field of ``model`` alone, with its constraints (not the model's own
    validators, which need the other fields)."""
    info = model.model_fields[name]
    annotated: Any = Annotated[info.annotation, info]
    return TypeAdapter(annotated)


def literal_shape(types_: set[str]) -> Shape | None:
    """The shape of values known only by their JSON types."""
    if not types_:
        return None
    alternatives = tuple({"type": kind} for kind in sorted(types_))
    return Shape(alternatives, {})


def _alternative_types(schema: dict[str, Any]) -> frozenset[str] | None:
    declared = schema.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(declared)
    if "const" in schema:
        return frozenset({json_type(schema["const"])})
    if "enum" in schema:
        return frozenset(json_type(v) for v in schema["enum"])
    if any(key in schema for key in _OBJECT_KEYWORDS):
        return frozenset({"object"})
    if "items" in schema or "prefixItems" in schema:
        return frozenset({"array"})
    return None


def types(shape: Shape | None) -> Types:
    """The JSON types a value of ``shape`` may have (``None``: any)."""
    if shape is None:
        return None
    found: set[str] = set()
    for alternative in shape.alternatives:
        kinds = _alternative_types(alternative)
        if kinds is None:
            return None
        found |= kinds
    return frozenset(found)


def type_names(kinds: Types, *, plural: bool = False) -> str:
    """``kinds`` for a message: ``an integer or null`` (``integers or nulls``).

    >>> type_names(frozenset({"null", "integer"})), type_names(frozenset({"string"}), plural=True)
    ('an integer or null', 'strings')
    """
    if kinds is None:
        return "anything"
    ordered = sorted(kinds, key=lambda k: (k == "null", k))
    if plural:
        names = [kind + "s" for kind in ordered]
    else:
        names = [
            kind if kind == "null" else ("an " if kind[0] in "aeiou" else "a ") + kind
            for kind in ordered
        ]
    return " or ".join(names) or "nothing"


def _field(schema: dict[str, Any], key: str, root: dict[str, Any]) -> Shape | Missing | None:
    properties = schema.get("properties", {})
    if key in properties:
        return shape_of(properties[key], root)
    for pattern, sub in schema.get("patternProperties", {}).items():
        if re.search(pattern, key):
            return shape_of(sub, root)
    extra = schema.get("additionalProperties")
    if extra is None and not properties:
        return None
    if extra is None or extra is False:
        listed = ", ".join(properties)
        return Missing(f"has no field {key!r}" + (f" (its fields: {listed})" if listed else ""))
    return shape_of(extra, root)


def _item(schema: dict[str, Any], index: int, root: dict[str, Any]) -> Shape | Missing | None:
    prefix = schema.get("prefixItems", [])
    most = schema.get("maxItems")
    if isinstance(most, int) and index >= most:
        return Missing(
            f"has at most {most} item{'' if most == 1 else 's'}, so [{index}] is past it"
        )
    if index < len(prefix):
        return shape_of(prefix[index], root)
    if "items" in schema:
        if schema["items"] is False:
            return Missing(f"has only {len(prefix)} items, so [{index}] is past them")
        return shape_of(schema["items"], root)
    return None


def child(shape: Shape | None, part: str | int) -> Shape | Missing | None:
    """The shape at ``part`` (a field name or an index) of a value of ``shape``."""
    if shape is None:
        return None
    if part in shape.children:
        return shape.children[part]
    result = _child(shape, part)
    if len(shape.children) < 10_000:
        shape.children[part] = result
    return result


def _child(shape: Shape, part: str | int) -> Shape | Missing | None:
    found: list[dict[str, Any]] = []
    problems: list[str] = []
    for alternative in shape.alternatives:
        kinds = _alternative_types(alternative)
        if kinds is None:
            return None
        if isinstance(part, str) and "object" in kinds:
            sub = _field(alternative, part, shape.root)
        elif isinstance(part, int) and "array" in kinds:
            sub = _item(alternative, part, shape.root)
        else:
            if kinds and kinds != {"null"}:
                want = f"field {part!r}" if isinstance(part, str) else f"index [{part}]"
                problems.append(f"is {type_names(kinds)}, which has no {want}")
            continue
        if sub is None:
            return None
        if isinstance(sub, Missing):
            problems.append(sub.message)
        else:
            found.extend(sub.alternatives)
    if found:
        return Shape(tuple(found), shape.root)
    return Missing(problems[0] if problems else "is null")


def feeds(source: Types, target: Types) -> bool:
    """Whether a value of types ``source`` may be one ``target`` accepts (an integer is a
    number; unknown types feed and accept anything).

    >>> feeds(frozenset({"integer"}), frozenset({"number"})), feeds(frozenset({"string"}),
    ...     frozenset({"integer", "null"}))
    (True, False)
    """
    if source is None or target is None:
        return True
    return any(kind in target or (kind == "integer" and "number" in target) for kind in source)
