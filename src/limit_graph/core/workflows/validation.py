"""Validating a workflow before anything runs: every problem, in one pass.

:func:`validate_workflow` reads the spec (:mod:`.loading`), checks its shape
(:mod:`.spec`), then what needs the registry and the whole graph: unique step ids,
agents and backends, ``depends_on``, references and typed wiring (:mod:`.wiring`),
cycles, the step limit and, for a run, the params.  It raises
:class:`~limit_graph.core.workflows.problems.WorkflowInvalid` listing everything
found, or returns a :class:`ValidWorkflow`: the spec, its canonical document and
hash, the graph, and the agent and backend each step resolved to.

>>> from limit_graph.core.agents import AgentRegistry
>>> from limit_graph.tasks.general import AGENTS
>>> valid = validate_workflow('''
... name: pair
... steps:
...   - {id: first, agent: echo, inputs: {n: 1}}
...   - {id: second, agent: echo, inputs: {n: "${steps.first.outputs.n}"}}
... ''', AgentRegistry(AGENTS))
>>> valid.graph.upstream["second"], valid.agents["second"].version, valid.backends["second"]
(['first'], '1.0.0', <BackendKind.LOCAL: 'local'>)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.canonical import sha256_hex
from limit_graph.core.errors import NotFound
from limit_graph.core.models import BackendKind
from limit_graph.core.workflows.graph import GraphNode, WorkflowGraph, find_cycles
from limit_graph.core.workflows.loading import load
from limit_graph.core.workflows.params import bind_params, default_problems
from limit_graph.core.workflows.problems import WorkflowInvalid, problem, pydantic_problems
from limit_graph.core.workflows.spec import ParamSpec, StepSpec, WorkflowSpec
from limit_graph.core.workflows.wiring import Catalog, StepChecker

__all__ = ["ValidWorkflow", "validate_workflow"]

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class ValidWorkflow:
    """A workflow that passed validation, with what validation resolved."""

    spec: WorkflowSpec
    document: dict[str, Any]
    """The spec as JSON, as written (unset fields left out): what a run records."""
    sha256: str
    """SHA-256 of the canonical JSON of ``document``."""
    graph: WorkflowGraph
    agents: dict[str, AgentSpec]
    """Step id → the agent version it runs (its pin, or the newest when validated)."""
    backends: dict[str, BackendKind]
    """Step id → the backend it runs on."""
    _steps: dict[str, StepSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_steps", {step.id: step for step in self.spec.steps})

    def step(self, step_id: str) -> StepSpec:
        """The spec of step ``step_id``; ``KeyError`` for an unknown one."""
        return self._steps[step_id]

    def bind(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """A run's param values: ``params`` checked against the declarations, defaults
        filled in.  Unknown, missing or mistyped params raise :class:`WorkflowInvalid`
        (``field`` ``/params/NAME``, ``step`` ``None``)."""
        values, problems = bind_params(self.spec.params, params)
        if problems:
            raise WorkflowInvalid(problems, name=self.spec.name)
        return values


class _Validation:
    """One validation pass over a loaded document."""

    def __init__(
        self,
        document: dict[str, Any],
        registry: AgentRegistry,
        allowed_backends: Sequence[BackendKind] | None,
        default_backend: BackendKind,
        max_steps: int,
    ) -> None:
        self.document = document
        self.registry = registry
        self.allowed = None if allowed_backends is None else tuple(allowed_backends)
        self.default_backend = default_backend
        self.max_steps = max_steps
        self.problems: list[dict[str, Any]] = []
        self.spec: WorkflowSpec | None = None
        self.steps: list[tuple[int, StepSpec]] = []
        self.params: dict[str, ParamSpec] = {}
        self.params_parsed = False
        self.agents: dict[int, AgentSpec] = {}
        self.backends: dict[int, BackendKind] = {}
        self.upstream: dict[str, list[str]] = {}

    def run(self) -> None:
        raw_steps = self.document.get("steps")
        if isinstance(raw_steps, list) and len(raw_steps) > self.max_steps:
            self.problems.append(
                problem(
                    ["steps"],
                    f"the workflow has {len(raw_steps):,} steps; at most "
                    f"{self.max_steps:,} are allowed",
                    "too_many_steps",
                )
            )
            self.parse_header()
            return
        self.parse()
        self.check()

    def parse_header(self) -> None:
        """Shape problems outside ``steps`` only (too many steps to look at them)."""
        try:
            WorkflowSpec.model_validate({**self.document, "steps": [{"id": "x", "agent": "x"}]})
        except ValidationError as exc:
            self.problems.extend(pydantic_problems(exc, (), None))

    def parse(self) -> None:
        try:
            self.spec = WorkflowSpec.model_validate(self.document)
        except ValidationError as exc:
            raw_steps = self.document.get("steps")
            for error in pydantic_problems(exc, (), None):
                loc = error["loc"][2:]
                if loc[:1] == ["steps"] and len(loc) > 1 and isinstance(raw_steps, list):
                    raw = raw_steps[loc[1]]
                    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                        error["step"] = raw["id"]
                self.problems.append(error)
            self.parse_parts(raw_steps)
        else:
            self.steps = list(enumerate(self.spec.steps))
            self.params = dict(self.spec.params)
            self.params_parsed = True

    def parse_parts(self, raw_steps: Any) -> None:
        """The steps and params that parse on their own, to check them further."""
        for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
            try:
                self.steps.append((index, StepSpec.model_validate(raw)))
            except ValidationError:
                continue
        raw_params = self.document.get("params", {})
        if isinstance(raw_params, dict):
            self.params_parsed = True
            for name, raw in raw_params.items():
                try:
                    self.params[name] = ParamSpec.model_validate(raw)
                except ValidationError:
                    self.params_parsed = False

    def written_ids(self) -> set[str]:
        raw_steps = self.document.get("steps")
        return {
            raw["id"]
            for raw in (raw_steps if isinstance(raw_steps, list) else [])
            if isinstance(raw, dict) and isinstance(raw.get("id"), str)
        }

    def check(self) -> None:
        self.problems.extend(default_problems(self.params))
        first: dict[str, tuple[int, StepSpec]] = {}
        for index, step in self.steps:
            if step.id in first:
                self.problems.append(
                    problem(
                        ["steps", index, "id"],
                        f"duplicate step id {step.id!r} (also /steps/{first[step.id][0]})",
                        "duplicate_step",
                        step.id,
                    )
                )
            else:
                first[step.id] = (index, step)
        for index, step in self.steps:
            self.resolve_agent(index, step)
        raw_params = self.document.get("params")
        catalog = Catalog(
            steps=first,
            written=self.written_ids(),
            params=self.params,
            written_params=list(raw_params) if isinstance(raw_params, dict) else [],
            agents=self.agents,
        )
        sources: dict[str, dict[str, Path]] = {}
        for index, step in self.steps:
            checker = StepChecker(catalog, index, step)
            checker.check()
            self.problems.extend(checker.problems)
            if first[step.id][0] == index:
                position = {s: first[s][0] for s in checker.upstream}
                self.upstream[step.id] = sorted(checker.upstream, key=position.__getitem__)
                sources[step.id] = checker.upstream
        for cycle in find_cycles(list(first), self.upstream):
            start, last = cycle[0], cycle[-1]
            shown = " → ".join([*cycle, start])
            self.problems.append(
                problem(
                    ["steps", first[start][0], *sources[start][last]],
                    f"the steps form a cycle: {shown}",
                    "cycle",
                    start,
                )
            )

    def resolve_agent(self, index: int, step: StepSpec) -> None:
        try:
            agent = self.registry.find(step.agent)
        except NotFound as exc:
            self.problems.append(
                problem(["steps", index, "agent"], exc.detail, "unknown_agent", step.id)
            )
            return
        self.agents[index] = agent
        backend = step.backend or self.default_backend
        self.backends[index] = backend
        if backend not in agent.backends:
            runs_on = ", ".join(b.value for b in agent.backends)
            how = ""
            if step.backend is None:
                how = f" (the default backend; set `backend: {agent.backends[0].value}`)"
            self.problems.append(
                problem(
                    ["steps", index, "backend"],
                    f"agent {agent.name!r} runs on {runs_on}, not on {backend.value}{how}",
                    "backend_unsupported",
                    step.id,
                )
            )
        elif self.allowed is not None and backend not in self.allowed:
            allowed = ", ".join(b.value for b in self.allowed) or "none"
            self.problems.append(
                problem(
                    ["steps", index, "backend"],
                    f"the session does not allow the {backend.value} backend (it allows {allowed})",
                    "backend_not_allowed",
                    step.id,
                )
            )

    def result(self) -> ValidWorkflow:
        spec = self.spec
        assert spec is not None
        nodes = {}
        agents: dict[str, AgentSpec] = {}
        backends: dict[str, BackendKind] = {}
        for index, step in self.steps:
            agent, backend = self.agents[index], self.backends[index]
            agents[step.id], backends[step.id] = agent, backend
            nodes[step.id] = GraphNode(
                agent=step.agent,
                version=agent.version,
                backend=backend.value,
                map=step.map.as_ if step.map is not None else None,
                when=step.when,
            )
        graph = WorkflowGraph([s.id for s in spec.steps], self.upstream, nodes)
        document = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return ValidWorkflow(spec, document, sha256_hex(document), graph, agents, backends)


def _section(error: dict[str, Any]) -> tuple[int, int]:
    """Where a problem sits in the spec, to list problems top to bottom."""
    loc = error["loc"]
    if loc[:2] == ["body", "params"] or loc[2:3] == ["params"]:
        return (1, 0)
    if loc[2:3] == ["steps"] and len(loc) > 3 and isinstance(loc[3], int):
        return (2, loc[3])
    return (0, 0)


def validate_workflow(
    source: str | Mapping[str, Any],
    registry: AgentRegistry,
    *,
    allowed_backends: Sequence[BackendKind] | None = None,
    default_backend: BackendKind = BackendKind.LOCAL,
    max_steps: int = 10_000,
    params: Mapping[str, Any] | None = None,
) -> ValidWorkflow:
    """Check a workflow (YAML or JSON text, or a mapping) against ``registry``.

    ``allowed_backends`` are the session's backends (``None``: any);
    ``default_backend`` is where steps without ``backend`` run; with ``params`` (a
    run), they are checked too.  Raises :class:`WorkflowInvalid` listing every
    problem found, each with ``step``, ``field`` and, for text, ``line``/``column``.
    """
    loaded = load(source)
    validation = _Validation(
        loaded.document, registry, allowed_backends, default_backend, max_steps
    )
    validation.run()
    problems = validation.problems
    if params is not None and validation.params_parsed:
        problems.extend(bind_params(validation.params, params)[1])
    if problems:
        problems.sort(key=_section)
        name = loaded.document.get("name")
        raise WorkflowInvalid(loaded.locate(problems), name=name if isinstance(name, str) else None)
    return validation.result()
