"""A data-quality declaration: its shape checked without GX, its suite built through GX.

The suite is GX's own JSON (what ``ExpectationSuite.to_json_dict()`` writes).  Its shape
is checked first, without GX, so a malformed one is refused at once; then each
expectation is built by its GX class, which knows the expectation types there are and
checks the kwargs (GX's pydantic models).  Every problem is listed in one
:class:`InvalidInput`, each located inside the declaration.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from limit_graph.core.errors import InvalidInput
from limit_graph.governance.compliance.data_quality.engine import Engine, engine

__all__ = [
    "CHECK_ID",
    "DataQualityDeclaration",
    "parse_data_quality",
    "value_error",
]

CHECK_ID = "data-quality"
_SETTINGS = frozenset({"meta", "notes", "description", "severity", "id", "rendered_content"})
"""An expectation's own fields beside its kwargs; none of them may be a kwarg."""


class ExpectationJSON(BaseModel):
    """One expectation as ``ExpectationSuite.to_json_dict()`` writes it."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=200, pattern=r"^[a-z][a-z0-9_]*$")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    notes: str | list[str] | None = None
    description: str | None = Field(default=None, max_length=10_000)
    severity: Literal["critical", "warning", "info"] = "critical"
    id: str | None = Field(default=None, description="Dropped: the gate's suite is its own.")
    rendered_content: Any = Field(default=None, description="Dropped: GX renders it anew.")


class ExpectationSuiteJSON(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    expectations: list[ExpectationJSON] = Field(min_length=1, max_length=500)
    id: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    notes: str | list[str] | None = None
    suite_parameters: dict[str, Any] = Field(default_factory=dict)


class DeclarationJSON(BaseModel):
    model_config = ConfigDict(extra="forbid")

    check: Literal["data-quality"]
    input: str = Field(min_length=1, max_length=128)
    root: str | None = Field(default=None, min_length=1, max_length=128)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    suite: ExpectationSuiteJSON


@dataclass(frozen=True, eq=False)
class DataQualityDeclaration:
    """A parsed gate: which input holds the table, and the suite, built through GX."""

    name: str
    """What verdicts call it: the declaration's ``name``, else the suite's."""
    input: str
    """The agent input holding the table (records, or a file reference)."""
    root: str | None
    """The agent input holding the folder a file reference is relative to, if any."""
    suite: dict[str, Any]
    """The suite as GX JSON (ids and rendered content dropped): what is stored and shown."""
    gx_suite: Any = field(repr=False)
    """The ``great_expectations.ExpectationSuite`` validated on each table."""

    @property
    def suite_name(self) -> str:
        return str(self.suite["name"])

    def to_json(self) -> dict[str, Any]:
        """The declaration as written back, e.g. into a stored session config."""
        found: dict[str, Any] = {"check": CHECK_ID, "input": self.input, "name": self.name}
        return found | ({"root": self.root} if self.root else {}) | {"suite": self.suite}


def value_error(loc: Sequence[str | int], msg: str) -> dict[str, Any]:
    """One entry of :attr:`InvalidInput.errors`."""
    return {"loc": list(loc), "msg": msg, "type": "value_error"}


def parse_data_quality(declaration: Mapping[str, Any]) -> DataQualityDeclaration:
    """The declaration checked and its suite built, or :class:`InvalidInput` listing every
    problem.  A malformed declaration is refused before GX is imported; a well-formed
    one imports GX if it is still cold (seconds: on an event loop, call this in a worker
    thread, as ``ComplianceChecks.aparse`` does)."""
    parsed = _structure(declaration)
    suite, errors = _build(engine(), parsed)
    if errors:
        raise _invalid(f"invalid expectation suite {parsed.suite.name!r}", errors)
    normal = parsed.suite.model_dump(exclude={"id"}, exclude_defaults=True)
    normal["expectations"] = [
        e.model_dump(exclude={"id", "rendered_content"}, exclude_defaults=True)
        | {"kwargs": e.kwargs}
        for e in parsed.suite.expectations
    ]
    name = parsed.name or parsed.suite.name
    return DataQualityDeclaration(name, parsed.input, parsed.root, normal, suite)


def _structure(declaration: Mapping[str, Any]) -> DeclarationJSON:
    """The declaration's shape, checked without GX."""
    errors: list[dict[str, Any]] = []
    suite = declaration.get("suite")
    listed = suite.get("expectations") if isinstance(suite, Mapping) else None
    legacy: set[int] = set()
    for i, item in enumerate(listed if isinstance(listed, list) else []):
        if isinstance(item, Mapping) and "expectation_type" in item and "type" not in item:
            msg = "GX 1.x calls it 'type' ('expectation_type' is GX 0.x's suite format)"
            errors.append(value_error(["suite", "expectations", i, "expectation_type"], msg))
            legacy.add(i)
    try:
        parsed = DeclarationJSON.model_validate(dict(declaration))
    except ValidationError as exc:
        errors += [
            value_error(e["loc"], e["msg"])
            for e in exc.errors(include_url=False, include_input=False)
            if tuple(e["loc"][:3]) not in {("suite", "expectations", i) for i in legacy}
        ]
    else:
        if parsed.suite.suite_parameters:
            msg = "suite parameters are not supported: write the values into the kwargs"
            errors.append(value_error(["suite", "suite_parameters"], msg))
    if errors:
        raise _invalid("malformed data-quality declaration", errors)
    return parsed


def _invalid(what: str, errors: list[dict[str, Any]]) -> InvalidInput:
    """The 422: one error per place (GX's alternatives for a field joined), the first
    named in the detail."""
    merged: dict[tuple[str | int, ...], dict[str, Any]] = {}
    for e in errors:
        found = merged.setdefault(tuple(e["loc"]), {**e, "msg": ""})
        found["msg"] = f"{found['msg']}; {e['msg']}" if found["msg"] else e["msg"]
    first, *rest = merged.values()
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(rest)} more)" if rest else ""
    return InvalidInput(f"{what}: {where}: {first['msg']}{more}", list(merged.values()))


def _build(gx_engine: Engine, parsed: DeclarationJSON) -> tuple[Any, list[dict[str, Any]]]:
    """The GX suite, each expectation built by its class (which checks the kwargs)."""
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    built: list[Any] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(parsed.suite.expectations):
        loc: list[str | int] = ["suite", "expectations", i]
        if item.type not in gx_engine.known:
            near = difflib.get_close_matches(item.type, sorted(gx_engine.known), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            msg = f"unknown expectation type {item.type!r}{hint}"
            errors.append(value_error([*loc, "type"], msg))
            continue
        before = len(errors)
        _parameters(item.kwargs, [*loc, "kwargs"], errors)
        reserved = sorted(set(item.kwargs) & _SETTINGS)
        if reserved:
            msg = f"not an expectation argument: {', '.join(reserved)}"
            errors.append(value_error([*loc, "kwargs"], msg))
        if len(errors) > before:
            continue
        settings: dict[str, Any] = {"meta": item.meta, "notes": item.notes}
        settings["severity"] = item.severity
        if item.description is not None:
            settings["description"] = item.description
        impl: Any = get_expectation_impl(item.type)
        try:
            built.append(impl(**item.kwargs, **settings))
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            listed = getattr(exc, "errors", None)
            for e in listed() if callable(listed) else [{"loc": (), "msg": str(exc)}]:
                where = [str(p) for p in e["loc"] if p != "__root__"]
                errors.append(value_error([*loc, "kwargs", *where], str(e["msg"])))
    if errors:
        return None, errors
    return gx.ExpectationSuite(name=parsed.suite.name, expectations=built), errors


def _parameters(value: Any, loc: list[str | int], errors: list[dict[str, Any]]) -> None:
    """GX's ``{"$PARAMETER": ...}`` kwargs need values the gate has no way to be given."""
    if isinstance(value, Mapping):
        if "$PARAMETER" in value:
            errors.append(value_error(loc, "suite parameters ($PARAMETER) are not supported"))
        for key, item in value.items():
            _parameters(item, [*loc, key], errors)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _parameters(item, [*loc, i], errors)
