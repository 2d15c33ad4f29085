"""The parts of a Python-built step: :class:`Map`, :class:`StepRef`, and how a
:meth:`~limit_graph.client.workflow.Workflow.step` call's arguments become the step's
spec document (:class:`StepWriter`), every problem found in one go.

>>> item = Map(over=[0.1, 0.2], as_="theta").item
>>> str(item), str(item["x"])
('${theta}', '${theta.x}')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from limit_graph.client.refs import Condition, Ref
from limit_graph.core.workflows import ExpressionError, Reference, parse_when
from limit_graph.core.workflows.problems import problem

__all__ = ["Map", "StepRef", "StepWriter"]

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Map:
    """Run a step once per item of ``over`` (a ref to a list, or the list itself); the
    step's inputs name the current item by :attr:`item` (``${as_}``).  One ``Map`` may
    serve several steps that go over the same items."""

    over: Ref | Sequence[Any]
    as_: str
    max_parallel: int | None = None

    @property
    def item(self) -> Ref:
        """The current item, ``${as_}``; index it for a part, ``item["x"]``."""
        return Ref(Reference("item", self.as_))


@dataclass(frozen=True, eq=False)
class StepRef:
    """A step of a :class:`~limit_graph.client.workflow.Workflow`: its id, and refs to
    its outputs."""

    id: str
    agent: str
    origin: object
    """The workflow it belongs to."""

    @property
    def outputs(self) -> Ref:
        """``${steps.ID.outputs}``: the step's output (a mapped step's: the list of its
        items' outputs)."""
        return Ref(Reference("steps", self.id), self.origin)

    def output(self, *path: str | int) -> Ref:
        """A part of the outputs: ``output("angles", 0)`` is
        ``${steps.ID.outputs.angles[0]}``."""
        ref = self.outputs
        for part in path:
            ref = ref[part]
        return ref

    def __str__(self) -> str:
        return self.id


class StepWriter:
    """Renders one step's arguments into its spec document, collecting problems."""

    def __init__(self, workflow: object, index: int, step_id: str, map_as: str | None) -> None:
        self.workflow = workflow
        self.index = index
        self.step_id = step_id
        self.map_as = map_as
        self.problems: list[dict[str, Any]] = []

    def add(self, path: Path, msg: str, kind: str) -> None:
        self.problems.append(problem(("steps", self.index, *path), msg, kind, self.step_id))

    def ref(self, ref: Ref, path: Path, *, items: bool) -> str:
        """A ref's text, if this step may use it at ``path``."""
        reference = ref.reference
        if reference.kind == "item":
            if not items:
                where = "`map.over`" if path[:1] == ("map",) else "`when`"
                self.add(path, f"{ref} is a map's item: {where} cannot use it", "item_misplaced")
            elif self.map_as is None:
                self.add(path, f"{ref} is a map's item, but the step has no map", "item_unknown")
            elif reference.name != self.map_as:
                self.add(
                    path,
                    f"{ref} is not this step's item (its map is `as: {self.map_as}`)",
                    "item_unknown",
                )
        elif ref.origin is not self.workflow:
            owner = getattr(ref.origin, "name", None)
            of = f"workflow {owner!r}" if owner else "another workflow"
            self.add(path, f"{ref} belongs to {of}", "foreign_reference")
        return ref.text

    def value(self, value: Any, path: Path, *, items: bool = True) -> Any:
        """``value`` as JSON, refs as their text."""
        if isinstance(value, Ref):
            return self.ref(value, path, items=items)
        if isinstance(value, str | bool | int) or value is None:
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                self.add(path, f"{value} is not a JSON number", "number_not_finite")
            return value
        if isinstance(value, StepRef):
            self.add(
                path,
                f"a step is not a value: write {value.id}.outputs for its outputs",
                "not_json",
            )
            return None
        if isinstance(value, BaseModel):
            return self.value(value.model_dump(mode="json", by_alias=True), path, items=items)
        if isinstance(value, Mapping):
            result: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.add(path, f"key {key!r} is not a string", "key_not_string")
                    continue
                result[key] = self.value(item, (*path, key), items=items)
            return result
        if isinstance(value, list | tuple):
            return [self.value(item, (*path, i), items=items) for i, item in enumerate(value)]
        kind = type(value).__name__
        hint = " (conditions go in `when`)" if isinstance(value, Condition) else ""
        self.add(path, f"a {kind} is not a JSON value{hint}", "not_json")
        return None

    def depends_on(self, given: StepRef | str | Sequence[StepRef | str]) -> list[str]:
        steps = [given] if isinstance(given, StepRef | str) else list(given)
        ids: list[str] = []
        for position, step in enumerate(steps):
            if isinstance(step, StepRef):
                if step.origin is not self.workflow:
                    self.add(
                        ("depends_on", position),
                        f"step {step.id!r} belongs to another workflow",
                        "foreign_reference",
                    )
                ids.append(step.id)
            elif isinstance(step, str):
                ids.append(step)
            else:
                self.add(("depends_on", position), f"{step!r} is not a step", "step_type")
        return ids

    def when(self, when: str | Condition | Ref) -> str | None:
        if isinstance(when, Ref):
            text = self.ref(when, ("when",), items=False)
        elif isinstance(when, Condition):
            text = when.text
        elif isinstance(when, str):
            text = when
        else:
            hint = ": `==` compares the refs themselves; write ref.eq(value)"
            self.add(
                ("when",),
                f"`when` is a condition, a ref or text, not {when!r}"
                + (hint if isinstance(when, bool) else ""),
                "when_type",
            )
            return None
        try:
            parse_when(text)
        except ExpressionError as exc:
            self.add(("when",), f"`when` does not parse: {exc}", "when_syntax")
        return text

    def map(self, given: Map) -> dict[str, Any] | None:
        if not isinstance(given, Map):
            self.add(("map",), f"`map` is a Map(over=..., as_=...), not {given!r}", "map_type")
            return None
        over = given.over
        if not isinstance(over, Ref | list | tuple):
            self.add(("map", "over"), "must be a ref to a list, or a list", "map_over_type")
        document: dict[str, Any] = {
            "over": self.value(over, ("map", "over"), items=False),
            "as": given.as_,
        }
        if given.max_parallel is not None:
            document["max_parallel"] = given.max_parallel
        return document
