"""The per-step half of validation: references, ``map``, ``when`` and typed inputs.

A :class:`StepChecker` walks one step: every reference must name a param, a step or
the step's own map item that exists, along a path the upstream agent's output schema
allows; a reference standing for an input (or part of one) must have a type that
input accepts; required inputs must be there; literal inputs must pass the agent's
input model.  It collects the steps the references name, for the graph.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from limit_graph.core.agents import AgentSpec
from limit_graph.core.workflows.expressions import ExpressionError, parse_when
from limit_graph.core.workflows.problems import close_match, problem, pydantic_problems
from limit_graph.core.workflows.references import (
    Reference,
    ReferenceSyntaxError,
    parse_template,
)
from limit_graph.core.workflows.schemas import (
    Missing,
    Shape,
    child,
    feeds,
    field_adapter,
    json_type,
    literal_shape,
    model_shape,
    type_names,
    types,
)
from limit_graph.core.workflows.spec import ParamSpec, StepSpec

__all__ = ["Catalog", "StepChecker"]

Path = tuple[str | int, ...]


@dataclass
class Catalog:
    """What every step check may consult: the workflow's steps, params and agents."""

    steps: Mapping[str, tuple[int, StepSpec]]
    """Step id → its first position and spec (steps that parsed)."""
    written: set[str]
    """Every step id written, including steps that did not parse."""
    params: Mapping[str, ParamSpec]
    written_params: list[str]
    """Every param name written, in order, including params that did not parse."""
    agents: Mapping[int, AgentSpec]
    """Step position → its agent, where it resolved."""
    validated: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Literal inputs already checked by an agent's input model (model and inputs →
    problems), so that a thousand identical steps are checked once."""
    outputs: dict[str, Shape | None] = field(default_factory=dict)

    def output_shape(self, step_id: str) -> Shape | None:
        """The shape of step ``step_id``'s outputs (a list of them, for a mapped step)."""
        if step_id not in self.outputs:
            self.outputs[step_id] = self._output_shape(step_id)
        return self.outputs[step_id]

    def _output_shape(self, step_id: str) -> Shape | None:
        position, spec = self.steps[step_id]
        agent = self.agents.get(position)
        if agent is None:
            return None
        shape = model_shape(agent.output_model)
        if spec.map is None:
            return shape
        items: Any = True if shape is None else {"anyOf": list(shape.alternatives)}
        root = {} if shape is None else shape.root
        return Shape(({"type": "array", "items": items},), root)


class StepChecker:
    """Checks one step (at ``index`` in the spec); ``problems`` and ``upstream`` (step id
    → the first path that named it) are what it found."""

    def __init__(self, catalog: Catalog, index: int, step: StepSpec) -> None:
        self.catalog = catalog
        self.index = index
        self.step = step
        self.agent = catalog.agents.get(index)
        self.problems: list[dict[str, Any]] = []
        self.upstream: dict[str, Path] = {}
        self.item: Shape | None = None

    def add(self, path: Path, msg: str, kind: str) -> None:
        self.problems.append(problem(("steps", self.index, *path), msg, kind, self.step.id))

    def check(self) -> None:
        self.check_depends_on()
        if self.step.map is not None:
            self.item = self.check_over(self.step.map.over)
        if self.step.when is not None:
            self.check_when(self.step.when)
        self.check_inputs()

    def check_depends_on(self) -> None:
        for position, name in enumerate(self.step.depends_on):
            path = ("depends_on", position)
            if name == self.step.id:
                self.add(path, "a step cannot depend on itself", "self_dependency")
            elif name not in self.catalog.written:
                hint = close_match(name, self.catalog.written)
                self.add(path, f"unknown step {name!r}{hint}", "unknown_step")
            elif name in self.catalog.steps:
                self.upstream.setdefault(name, path)

    # references

    def shape_of(self, reference: Reference, path: Path, where: str) -> Shape | None | Missing:
        """What ``reference`` names, as far as the schemas know, or a :class:`Missing`
        after reporting why it cannot exist."""
        text = str(reference)
        if reference.kind == "params":
            return self.param_shape(reference, path, text)
        if reference.kind == "steps":
            name = reference.name
            if name == self.step.id:
                self.add(path, f"{text}: a step cannot use its own outputs", "self_reference")
                return Missing("self")
            if name not in self.catalog.written:
                hint = close_match(name, self.catalog.written)
                self.add(path, f"{text}: unknown step {name!r}{hint}", "unknown_step")
                return Missing("unknown")
            if name not in self.catalog.steps:
                return None
            self.upstream.setdefault(name, path)
            shape = self.catalog.output_shape(name)
        else:
            mapped = self.step.map
            if mapped is None or mapped.as_ != reference.name:
                named = f" (this step's map item is {mapped.as_!r})" if mapped else ""
                self.add(
                    path,
                    f"{text}: unknown name {reference.name!r}: a reference starts with "
                    f"params., steps. or the step's map `as` name{named}",
                    "unknown_name",
                )
                return Missing("unknown")
            if where != "inputs":
                why = (
                    "a map cannot go over its own items"
                    if where == "over"
                    else "`when` decides for the whole step, before its items are known"
                )
                self.add(path, f"{text}: {why}", "item_out_of_place")
                return Missing("misplaced")
            shape = self.item
        return self.descend(reference, shape, path)

    def param_shape(self, reference: Reference, path: Path, text: str) -> Shape | None | Missing:
        name = reference.name
        if name not in self.catalog.written_params:
            declared = ", ".join(self.catalog.written_params) or "none"
            self.add(
                path,
                f"{text}: unknown param {name!r} (the params are: {declared})",
                "unknown_param",
            )
            return Missing("unknown")
        spec = self.catalog.params.get(name)
        if spec is None:
            return None
        if reference.path and spec.type not in ("array", "object"):
            self.add(
                path,
                f"{text}: params.{name} is {type_names(frozenset({spec.type}))}, which has "
                "no fields or items",
                "unknown_output_field",
            )
            return Missing("scalar")
        return None if reference.path else literal_shape({spec.type})

    def descend(
        self, reference: Reference, shape: Shape | None, path: Path
    ) -> Shape | None | Missing:
        """The shape at the end of ``reference``'s path, starting from ``shape``."""
        for depth, part in enumerate(reference.path):
            found = child(shape, part)
            if isinstance(found, Missing):
                self.add(
                    path,
                    f"{reference}: {reference.prefix(depth)} {found.message}",
                    "unknown_output_field",
                )
                return found
            shape = found
        return shape

    def template(self, text: str, path: Path) -> tuple[str | Reference, ...] | None:
        try:
            return parse_template(text)
        except ReferenceSyntaxError as exc:
            self.add(
                path,
                f"bad reference at character {exc.offset + 1}: {exc.message}",
                "reference_syntax",
            )
            return None

    # map and when

    def check_over(self, over: str | list[Any]) -> Shape | None:
        """Checks ``map.over``; the shape of one item."""
        path: Path = ("map", "over")
        if isinstance(over, list):
            if self.walk(over, None, path, "over"):
                return None
            return literal_shape({json_type(item) for item in over})
        parts = self.template(over, path)
        if parts is None:
            return None
        if len(parts) != 1 or not isinstance(parts[0], Reference):
            for part in parts:
                if isinstance(part, Reference):
                    self.shape_of(part, path, "over")
            self.add(
                path,
                "map.over must be a reference to an array, such as "
                "${steps.ID.outputs.items}, or a list; this is a string",
                "map_not_array",
            )
            return None
        shape = self.shape_of(parts[0], path, "over")
        if isinstance(shape, Missing):
            return None
        kinds = types(shape)
        if kinds is not None and "array" not in kinds:
            self.add(
                path,
                f"map.over must be an array; {parts[0]} is {type_names(kinds)}",
                "map_not_array",
            )
            return None
        item = child(shape, 0)
        return None if isinstance(item, Missing) else item

    def check_when(self, text: str) -> None:
        path: Path = ("when",)
        try:
            expression = parse_when(text)
        except ExpressionError as exc:
            self.add(path, f"`when` does not parse: {exc}", "when_syntax")
            return
        for reference in expression.references:
            self.shape_of(reference, path, "when")

    # inputs

    def check_inputs(self) -> None:
        inputs = self.step.inputs
        model = self.agent.input_model if self.agent is not None else None
        target = model_shape(model) if model is not None else None
        wired = {
            key
            for key, value in inputs.items()
            if self.walk(value, child(target, key), ("inputs", key), "inputs")
        }
        if model is None:
            return
        if not wired:
            self.validate_literal(model, inputs)
            return
        schema = target.root if target is not None else {}
        for name in schema.get("required", []):
            if name not in inputs:
                self.add(
                    ("inputs", name),
                    f"missing required input {name!r} of agent {self.agent_name}",
                    "missing_input",
                )
        fields = _fields_by_alias(model)
        for key, value in inputs.items():
            if key not in fields:
                if schema.get("additionalProperties") is False:
                    hint = close_match(key, fields)
                    self.add(
                        ("inputs", key),
                        f"unknown input {key!r} of agent {self.agent_name}{hint}",
                        "unknown_input",
                    )
            elif key not in wired:
                self.validate_field(model, fields[key], key, value)

    @property
    def agent_name(self) -> str:
        agent = self.agent
        return f"'{agent.name}@{agent.version}'" if agent is not None else repr(self.step.agent)

    def validate_literal(self, model: type[BaseModel], inputs: dict[str, Any]) -> None:
        key = f"{id(model)}:" + json.dumps(inputs, sort_keys=True)
        found = self.catalog.validated.get(key)
        if found is None:
            found = []
            try:
                model.model_validate(inputs)
            except ValidationError as exc:
                found = pydantic_problems(exc, (), None)
            except Exception as exc:  # an agent's own validator failing otherwise
                found = [problem((), f"the agent's input check failed: {exc}", "input_invalid")]
            self.catalog.validated[key] = found
        for error in found:
            self.add(("inputs", *error["loc"][2:]), error["msg"], error["type"])

    def validate_field(self, model: type[BaseModel], name: str, key: str, value: Any) -> None:
        try:
            field_adapter(model, name).validate_python(value)
        except ValidationError as exc:
            for error in pydantic_problems(exc, (), None):
                self.add(("inputs", key, *error["loc"][2:]), error["msg"], error["type"])
        except Exception:  # a field that cannot be checked alone is left to the run
            return

    def walk(self, value: Any, target: Shape | None | Missing, path: Path, where: str) -> bool:
        """Checks the references in ``value`` against what its place (``target``)
        takes; whether it held any."""
        if isinstance(target, Missing):
            target = None
        if isinstance(value, str):
            if "${" not in value:
                return False
            parts = self.template(value, path)
            if parts is None:
                return True
            references = [p for p in parts if isinstance(p, Reference)]
            shapes = [self.shape_of(r, path, where) for r in references]
            if not references or target is None:
                return bool(references)
            if len(parts) == 1:
                shape = shapes[0]
                if not isinstance(shape, Missing):
                    self.check_feed(references[0], shape, target, path)
            elif not feeds(frozenset({"string"}), types(target)):
                self.add(
                    path,
                    f"text with references is a string, but {_place(path)} takes "
                    f"{type_names(types(target))}",
                    "type_mismatch",
                )
            return True
        if isinstance(value, dict):
            items: list[tuple[str | int, Any]] = list(value.items())
            kind = "object"
        elif isinstance(value, list):
            items = list(enumerate(value))
            kind = "array"
        else:
            return False
        wired = False
        for part, item in items:
            sub = child(target, part) if target is not None else None
            wired = self.walk(item, sub, (*path, part), where) or wired
        if wired and target is not None and not feeds(frozenset({kind}), types(target)):
            wanted = type_names(types(target))
            self.add(path, f"{_place(path)} takes {wanted}, not an {kind}", "type_mismatch")
        return wired

    def check_feed(
        self, reference: Reference, source: Shape | None, target: Shape, path: Path
    ) -> None:
        wanted, got = types(target), types(source)
        if not feeds(got, wanted):
            self.add(
                path,
                f"{reference} is {type_names(got)}, but {_place(path)} takes {type_names(wanted)}",
                "type_mismatch",
            )
            return
        if got == frozenset({"array"}) and wanted == frozenset({"array"}):
            source_item, target_item = child(source, 0), child(target, 0)
            if isinstance(source_item, Missing) or isinstance(target_item, Missing):
                return
            if not feeds(types(source_item), types(target_item)):
                got_items = type_names(types(source_item), plural=True)
                wanted_items = type_names(types(target_item), plural=True)
                self.add(
                    path,
                    f"{reference} is a list of {got_items}, but {_place(path)} takes a list "
                    f"of {wanted_items}",
                    "type_mismatch",
                )


def _place(path: Path) -> str:
    """``input 'pubs[0].shots'`` for a path under ``inputs``."""
    if path[:1] != ("inputs",):
        return "/".join(str(p) for p in path)
    text = ""
    for part in path[1:]:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return f"input {text!r}"


def _fields_by_alias(model: type[BaseModel]) -> dict[str, str]:
    """The names an input model's fields are written by, to their attribute names."""
    found = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        found[alias or name] = name
    return found
