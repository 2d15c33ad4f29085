"""The workflow spec: a DAG of steps, each an agent run with wired inputs.

These models check the spec's *shape* (fields, types, bounds, names); what needs the
agent registry or the whole graph (agents, references, cycles, wiring types) is
:mod:`limit_graph.core.workflows.validation`'s job.  ``WorkflowSpec.model_json_schema
(by_alias=True)`` is the schema ``GET /workflows/schema`` serves.

>>> spec = WorkflowSpec.model_validate({"name": "hello", "steps": [
...     {"id": "greet", "agent": "echo", "inputs": {"text": "hi"}}]})
>>> spec.steps[0].retries, spec.steps[0].map is None
(0, True)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator

from limit_graph.core.models import BackendKind

__all__ = [
    "ALIAS_PATTERN",
    "MapSpec",
    "ParamSpec",
    "ParamType",
    "StepSpec",
    "WorkflowSpec",
]

ALIAS_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""Names of params and of a map's current item."""
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
AGENT_PATTERN = r"^[^@\s]+(@[^@\s]+)?$"
RESERVED_ALIASES = frozenset({"params", "steps"})

ParamType = Literal["string", "integer", "number", "boolean", "array", "object"]

_BELL_SWEEP: dict[str, Any] = {
    "name": "bell-sweep",
    "description": "Sample a parameterized Bell circuit over a grid of angles.",
    "params": {
        "shots": {"type": "integer", "default": 1000},
        "thetas": {"type": "array", "default": [0.0, 0.785, 1.571]},
    },
    "max_parallel": 16,
    "steps": [
        {"id": "prepare", "agent": "echo", "inputs": {"angles": "${params.thetas}"}},
        {
            "id": "sample",
            "agent": "quantum.sample",
            "backend": "quantum",
            "map": {"over": "${steps.prepare.outputs.angles}", "as": "theta"},
            "inputs": {
                "target": "aer",
                "seed": 7,
                "pubs": [
                    {
                        "circuit": {"format": "qasm3", "source": "..."},
                        "parameter_values": {"theta": "${theta}"},
                        "shots": "${params.shots}",
                    }
                ],
            },
            "retries": 2,
            "timeout_s": 60,
        },
        {
            "id": "report",
            "agent": "echo",
            "depends_on": ["sample"],
            "when": "${params.shots} >= 100",
            "inputs": {"runs": "${steps.sample.outputs}"},
        },
    ],
}


def _param_schema(schema: dict[str, Any]) -> None:
    """No ``default`` shown for ``default``: leaving it out means "required", not null."""
    schema["properties"]["default"].pop("default", None)
    schema["examples"] = [{"type": "integer", "default": 1000}, {"type": "string"}]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ParamSpec(_Spec):
    """A typed run parameter; a run may override its default."""

    model_config = ConfigDict(json_schema_extra=_param_schema)

    type: ParamType = Field(description="The JSON type a value must have.")
    default: Any = Field(
        default=None,
        description="The value a run gets when it gives none, of the param's type; without "
        "one, every run must give the param.",
    )
    description: str | None = Field(default=None, max_length=4096)

    @property
    def has_default(self) -> bool:
        """Whether the spec gave a default, so a run may leave the param out."""
        return "default" in self.model_fields_set


def _over(value: Any) -> str | list[Any]:
    if isinstance(value, str | list):
        return value
    raise ValueError("must be a reference such as ${steps.ID.outputs} or a list")


Over = Annotated[
    str | list[Any],
    PlainValidator(_over),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "A reference to an array."},
                {"type": "array", "description": "The items themselves."},
            ]
        }
    ),
]


class MapSpec(_Spec):
    """Runs the step once per item of an array; its outputs is the list of theirs."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"over": "${steps.prepare.outputs.angles}", "as": "x"}]}
    )

    over: Over = Field(
        description="The items: a reference to an array (`${params.NAME}`, "
        "`${steps.ID.outputs...}`), or a literal list.",
    )
    as_: str = Field(
        alias="as",
        pattern=ALIAS_PATTERN,
        max_length=100,
        description="The name the current item goes by in this step's `inputs` and "
        "`when`: `${NAME}`, `${NAME.field}`, `${NAME[0]}`.",
    )
    max_parallel: int | None = Field(
        default=None, ge=1, le=10_000, description="Items of this step in flight at once."
    )

    @field_validator("as_")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_ALIASES:
            raise ValueError(f"{name!r} is reserved for references; choose another name")
        return name


class StepSpec(_Spec):
    """One node of the DAG: an agent run on a backend with inputs wired from params and
    the outputs of other steps."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "report",
                    "agent": "echo",
                    "depends_on": ["sample"],
                    "when": "${params.shots} >= 100",
                    "inputs": {"runs": "${steps.sample.outputs}"},
                }
            ]
        }
    )

    id: str = Field(
        pattern=STEP_ID_PATTERN,
        max_length=128,
        description="Unique in the workflow; what references and `depends_on` name.",
    )
    agent: str = Field(
        pattern=AGENT_PATTERN,
        max_length=300,
        description="A registered agent: `name` (its newest version) or `name@version`.",
        examples=["echo", "quantum.sample@1.0.0"],
    )
    backend: BackendKind | None = Field(
        default=None, description="Where the step runs; by default the session's backend."
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="The agent's inputs.  Strings may hold references, at any depth: a "
        "string that is exactly one reference takes the referenced value; one inside "
        "longer text is interpolated.  `$${` writes a literal `${`.",
    )
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="Steps that must finish first, besides those the step's references name.",
    )
    map: MapSpec | None = Field(default=None, description="Run the step once per item.")
    when: str | None = Field(
        default=None,
        max_length=4096,
        description="Run the step only if this is true, e.g. `${params.shots} >= 100` "
        "(operators `== != < <= > >= and or not in`, parentheses); if false the step and "
        "the steps that depend on it are skipped.",
        examples=["${params.shots} >= 100", "'ok' in ${steps.check.outputs.flags}"],
    )
    retries: int = Field(
        default=0, ge=0, le=10, description="Retries after a retryable failure, with backoff."
    )
    retry_backoff_s: float = Field(
        default=1.0, ge=0, le=3600, description="First retry's delay; each next one doubles."
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=86_400, description="Each attempt's time limit."
    )
    allow_cached: bool = Field(
        default=False, description="Whether an earlier identical result may answer."
    )
    policies: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=64,
        description="Compliance checks each of its executions passes, as in a session's "
        'policies: `{"check": "data-quality", "input": "records", "suite": {...}}`.',
    )
    description: str | None = Field(default=None, max_length=4096)


class WorkflowSpec(_Spec):
    """A workflow: typed params and a DAG of steps, written as YAML or JSON."""

    model_config = ConfigDict(
        title="Workflow",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "examples": [_BELL_SWEEP],
        },
    )

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=100,
        description="Names the workflow's runs (and their Prefect flow runs).",
        examples=["bell-sweep"],
    )
    description: str | None = Field(default=None, max_length=4096)
    params: dict[Annotated[str, Field(pattern=ALIAS_PATTERN, max_length=100)], ParamSpec] = Field(
        default_factory=dict,
        description="Run parameters by name, referenced as `${params.NAME}`.",
    )
    max_parallel: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Steps and map items in flight at once; by default the platform's.",
    )
    steps: list[StepSpec] = Field(min_length=1, description="The steps, in any order.")
