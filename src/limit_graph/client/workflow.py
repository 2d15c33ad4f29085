"""Workflows built in Python: the same spec a YAML file holds, written with typed calls.

:meth:`Workflow.param` and :meth:`Workflow.step` return refs that later steps wire
into their ``inputs``, ``map`` and ``when``; each call checks what it can on the spot
(names, fields, duplicate ids, refs of another workflow, values JSON cannot hold) and
raises :class:`~limit_graph.core.workflows.WorkflowInvalid` with the same ``step`` and
``field`` the platform's validator would report.  What needs the agents' schemas or
the whole graph is :meth:`Workflow.validate`'s (locally) or the server's job.  A
``Workflow`` is a read-only mapping of its spec, so the SDK's ``run_workflow`` and
``validate_workflow`` (and the core ``validate_workflow``) take it as it is.

>>> wf = Workflow("bell-sweep", max_parallel=16)
>>> shots = wf.param("shots", int, default=1000)
>>> thetas = wf.param("thetas", list, default=[0.0, 0.785])
>>> prepare = wf.step("prepare", "echo", inputs={"angles": thetas})
>>> theta = Map(over=prepare.outputs["angles"], as_="theta")
>>> sample = wf.step("sample", "echo", map=theta,
...                  inputs={"theta": theta.item, "shots": wf.params.shots})
>>> report = wf.step("report", "echo", depends_on=[sample], when=shots >= 100,
...                  inputs={"runs": sample.outputs})
>>> wf.to_spec()["steps"][1]
{'id': 'sample', 'agent': 'echo', 'map': {'over': '${steps.prepare.outputs.angles}', \
'as': 'theta'}, 'inputs': {'theta': '${theta}', 'shots': '${params.shots}'}}
>>> wf["steps"][2]["when"]
'${params.shots} >= 100'
"""

from __future__ import annotations

import builtins
import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from enum import Enum
from typing import Any, Final, Literal

from pydantic import BaseModel, ValidationError

from limit_graph.client.refs import Condition, Ref
from limit_graph.client.spec_text import spec_yaml
from limit_graph.client.steps import Map, StepRef, StepWriter
from limit_graph.core.agents import AgentRegistry
from limit_graph.core.models import BackendKind
from limit_graph.core.workflows import (
    ParamSpec,
    ParamType,
    Reference,
    StepSpec,
    ValidWorkflow,
    WorkflowInvalid,
    WorkflowSpec,
    matches_type,
    validate_workflow,
)
from limit_graph.core.workflows.problems import problem, pydantic_problems

__all__ = ["REQUIRED", "Condition", "Map", "Params", "Ref", "StepRef", "Workflow"]

Path = tuple[str | int, ...]


class _Required(Enum):
    REQUIRED = "required"


REQUIRED: Final = _Required.REQUIRED
"""The default of a param every run must give."""

_TYPES: dict[type, ParamType] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


class Params:
    """A workflow's declared params as refs: ``wf.params.shots`` or
    ``wf.params["shots"]`` is ``${params.shots}``."""

    def __init__(self, workflow: Workflow) -> None:
        self._workflow = workflow

    def __getitem__(self, name: str) -> Ref:
        if name not in self._workflow._params:
            declared = ", ".join(self._workflow._params) or "none"
            raise KeyError(f"no param {name!r} is declared (the params are: {declared})")
        return Ref(Reference("params", name), self._workflow)

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._workflow._params))

    def __len__(self) -> int:
        return len(self._workflow._params)

    def __contains__(self, name: object) -> bool:
        return name in self._workflow._params


class Workflow(Mapping[str, Any]):
    """A workflow spec under construction: params, then steps wired by refs.

    As a mapping it is its spec (:meth:`to_spec`), which is what the SDK's
    ``run_workflow``/``validate_workflow`` send.
    """

    def __init__(
        self,
        name: str,
        *,
        description: str | None = None,
        params: Mapping[str, ParamSpec | Mapping[str, Any]] | None = None,
        max_parallel: int | None = None,
    ) -> None:
        header: dict[str, Any] = {"name": name}
        if description is not None:
            header["description"] = description
        if max_parallel is not None:
            header["max_parallel"] = max_parallel
        try:  # the header's fields, checked on their own (the steps come later)
            WorkflowSpec.model_validate({**header, "steps": [{"id": "x", "agent": "x"}]})
        except ValidationError as exc:
            raise WorkflowInvalid(pydantic_problems(exc, (), None), name=name) from None
        self.name = name
        self._header = header
        self._params: dict[str, dict[str, Any]] = {}
        self._steps: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self.params = Params(self)
        for param_name, declared in (params or {}).items():
            if isinstance(declared, ParamSpec):
                declared = declared.model_dump(mode="json", exclude_unset=True)
            self._declare(param_name, dict(declared))

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}: {len(self._params)} params, {len(self._steps)} steps>"

    # --- params --------------------------------------------------------------------

    def param(
        self,
        name: str,
        type: ParamType | type,
        *,
        default: Any = REQUIRED,
        description: str | None = None,
    ) -> Ref:
        """Declare a run parameter; its ref, ``${params.NAME}``.  ``type`` is the spec's
        JSON type (``"integer"``) or the Python one (``int``); without ``default``
        every run must give it."""
        kind = _TYPES.get(type, type) if isinstance(type, builtins.type) else type
        declared: dict[str, Any] = {"type": kind}
        if default is not REQUIRED:
            declared["default"] = default
        if description is not None:
            declared["description"] = description
        return self._declare(name, declared)

    def _declare(self, name: str, declared: dict[str, Any]) -> Ref:
        at: Path = ("params", name)
        problems: list[dict[str, Any]] = []
        if name in self._params:
            problems.append(problem(at, f"param {name!r} is declared twice", "duplicate_param"))
        if "default" in declared:
            checker = StepWriter(self, 0, "", None)
            declared["default"] = checker.value(declared["default"], (), items=False)
            problems += [  # the checker's paths are under /steps/0: move them here
                problem((*at, "default", *p["loc"][4:]), p["msg"], p["type"])
                for p in checker.problems
            ]
        try:
            WorkflowSpec.model_validate(
                {"name": "x", "params": {name: declared}, "steps": [{"id": "x", "agent": "x"}]}
            )
        except ValidationError as exc:
            problems += pydantic_problems(exc, (), None)
        else:
            spec = ParamSpec.model_validate(declared)
            if spec.has_default and not matches_type(spec.default, spec.type):
                problems.append(
                    problem(
                        (*at, "default"),
                        f"the default {spec.default!r} is not of type {spec.type}",
                        "param_default_type",
                    )
                )
        if problems:
            raise WorkflowInvalid(problems, name=self.name)
        self._params[name] = declared
        return Ref(Reference("params", name), self)

    # --- steps ---------------------------------------------------------------------

    def step(
        self,
        id: str,
        agent: str,
        *,
        inputs: Mapping[str, Any] | BaseModel | None = None,
        backend: BackendKind | Literal["local", "remote", "quantum"] | None = None,
        depends_on: StepRef | str | Sequence[StepRef | str] | None = None,
        map: Map | None = None,
        when: str | Condition | Ref | None = None,
        retries: int | None = None,
        retry_backoff_s: float | None = None,
        timeout_s: float | None = None,
        allow_cached: bool | None = None,
        description: str | None = None,
    ) -> StepRef:
        """Add a step running ``agent`` (``name`` or ``name@version``); its ref.

        ``inputs`` are JSON values and refs at any depth (a pydantic model is dumped
        as JSON); ``depends_on`` names steps besides those the refs name.  Fields left
        out are left out of the spec, as in YAML.
        """
        index = len(self._steps)
        step = StepWriter(self, index, id, map.as_ if isinstance(map, Map) else None)
        if id in self._ids:
            first = next(i for i, s in enumerate(self._steps) if s["id"] == id)
            step.add(("id",), f"duplicate step id {id!r} (also /steps/{first})", "duplicate_step")
        document: dict[str, Any] = {"id": id}
        if description is not None:
            document["description"] = description
        document["agent"] = agent
        if backend is not None:
            document["backend"] = backend.value if isinstance(backend, BackendKind) else backend
        if depends_on is not None:
            document["depends_on"] = step.depends_on(depends_on)
        if map is not None:
            document["map"] = step.map(map)
        if when is not None:
            document["when"] = step.when(when)
        if inputs is not None:
            document["inputs"] = step.value(inputs, ("inputs",))
        for key, value in (
            ("retries", retries),
            ("retry_backoff_s", retry_backoff_s),
            ("timeout_s", timeout_s),
            ("allow_cached", allow_cached),
        ):
            if value is not None:
                document[key] = value
        try:
            StepSpec.model_validate(document)
        except ValidationError as exc:
            found = {p["field"] for p in step.problems}
            step.problems += [  # not again where a value was refused already
                p
                for p in pydantic_problems(exc, ("steps", index), id)
                if not any(p["field"] == f or p["field"].startswith(f + "/") for f in found)
            ]
        if step.problems:
            raise WorkflowInvalid(step.problems, name=self.name)
        self._steps.append(document)
        self._ids.add(id)
        return StepRef(id, agent, self)

    # --- the spec ------------------------------------------------------------------

    def to_spec(self) -> dict[str, Any]:
        """The spec as JSON values: what the same workflow's YAML file loads to (a new
        copy each call)."""
        spec: dict[str, Any] = {"name": self._header["name"]}
        if "description" in self._header:
            spec["description"] = self._header["description"]
        if self._params:
            spec["params"] = copy.deepcopy(self._params)
        if "max_parallel" in self._header:
            spec["max_parallel"] = self._header["max_parallel"]
        spec["steps"] = copy.deepcopy(self._steps)
        return spec

    def to_yaml(self) -> str:
        """The spec as YAML text (which reads back as :meth:`to_spec`)."""
        return spec_yaml(self.to_spec())

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_spec(), indent=indent, ensure_ascii=False)

    def validate(
        self,
        registry: AgentRegistry | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        allowed_backends: Sequence[BackendKind] | None = None,
        default_backend: BackendKind = BackendKind.LOCAL,
    ) -> ValidWorkflow:
        """Validate locally against ``registry`` (by default the installed agents,
        from their entry points), as the server would; raises ``WorkflowInvalid``
        listing every problem."""
        return validate_workflow(
            self.to_spec(),
            registry if registry is not None else AgentRegistry.from_entry_points(),
            params=params,
            allowed_backends=allowed_backends,
            default_backend=default_backend,
        )

    # --- the mapping of the spec ---------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.to_spec()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_spec())

    def __len__(self) -> int:
        return len(self.to_spec())
