"""Reading a workflow (YAML, JSON, mappings) and the spec's models and JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.workflows import (
    MapSpec,
    StepSpec,
    WorkflowInvalid,
    WorkflowSpec,
    load_workflow,
    validate_workflow,
)
from limit_graph.tasks.general import AGENTS
from limit_graph.tasks.quantum.agents import AGENTS as QUANTUM

REGISTRY = AgentRegistry(AGENTS)

DIAMOND_YAML = """\
name: diamond
steps:
  - id: top
    agent: echo
    inputs: {n: 1}
  - id: left
    agent: echo
    inputs: {n: "${steps.top.outputs.n}"}
  - id: right
    agent: sleep
    inputs: {seconds: "${steps.top.outputs.n}"}
  - id: bottom
    agent: echo
    inputs: {l: "${steps.left.outputs}", r: "${steps.right.outputs.slept_s}"}
"""


def refused(source: Any) -> dict[str, Any]:
    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow(source)
    assert len(caught.value.errors) == 1, caught.value.errors
    return caught.value.errors[0]


def test_yaml_and_the_same_json_load_to_the_same_document() -> None:
    from_yaml = load_workflow(DIAMOND_YAML)
    from_json = load_workflow(json.dumps(from_yaml, indent=2))
    assert from_yaml == from_json
    assert from_yaml["steps"][3]["inputs"] == {
        "l": "${steps.left.outputs}",
        "r": "${steps.right.outputs.slept_s}",
    }
    assert (
        validate_workflow(DIAMOND_YAML, REGISTRY).sha256
        == validate_workflow(json.dumps(from_yaml), REGISTRY).sha256
    )


def test_a_mapping_loads_as_it_is_with_tuples_as_lists() -> None:
    assert load_workflow({"name": "x", "steps": ({"id": "a"},)}) == {
        "name": "x",
        "steps": [{"id": "a"}],
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("v: yes", "yes"),  # YAML 1.2: only true/false are booleans
        ("v: on", "on"),
        ("v: True", True),
        ("v: 2024-01-01", "2024-01-01"),  # no timestamps
        ("v: 2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
        ("v: 1:20", "1:20"),  # no sexagesimal numbers
        ("v: 007", 7),  # decimal, not octal
        ("v: 0o17", 15),
        ("v: 0x1F", 31),
        ("v: 1e3", 1000.0),
        ("v: -2.5", -2.5),
        ("v: 1_000", "1_000"),
        ("v: [1, 2,]", [1, 2]),
        ("v: ~", None),
        ("v:", None),
        ("v: null", None),
        ("v: '1'", "1"),
        ("a: &x [1, 2]\nv: *x", [1, 2]),
        ("base: &b {x: 1, y: 2}\nv: {<<: *b, y: 3}", {"x": 1, "y": 3}),
    ],
)
def test_yaml_is_read_as_json_values(text: str, value: Any) -> None:
    assert load_workflow(text)["v"] == value


@pytest.mark.parametrize(
    ("text", "kind", "field", "line", "column"),
    [
        ("name: x\nsteps: [\n  {id: a\n", "yaml_syntax", "", 4, 1),
        ("name: x\n  steps: 1\n", "yaml_syntax", "", 2, 8),
        ("name: x\nsteps:\n\t- a\n", "yaml_syntax", "", 3, 1),
        ("a: 1\n---\nb: 2\n", "yaml_syntax", "", 2, 1),
        ("steps:\n  - {id: a, 1: x}\n", "key_not_string", "/steps/0", 2, 13),
        ("steps:\n  - {id: a, id: b}\n", "duplicate_key", "/steps/0/id", 2, 13),
        ("v: [1, .nan]", "number_not_finite", "/v/1", 1, 8),
        ("v: -.inf", "number_not_finite", "/v", 1, 4),
        ("v: 1e999", "number_not_finite", "/v", 1, 4),
        ("v: !!binary aGk=", "yaml_tag", "/v", 1, 4),
        ("v: !!set {a: null}", "yaml_tag", "/v", 1, 4),
        ("v: !custom x", "yaml_tag", "/v", 1, 4),
        ("v: &a [*a]", "yaml_alias", "/v/0", 1, 4),
        ("- name: x", "workflow_type", "", 1, 1),
        ('{"name": "x",\n  "steps": [1}', "json_syntax", "", 2, 14),
        ('{"name": "x" "steps": []}', "json_syntax", "", 1, 14),
        ('{"a": {"b": NaN}}', "number_not_finite", "/a/b", 1, 13),
        ('{"a": 1, "a": 2}', "duplicate_key", "/a", 1, 10),
    ],
)
def test_text_that_is_not_a_json_document_is_refused_with_where(
    text: str, kind: str, field: str, line: int, column: int
) -> None:
    error = refused(text)
    assert (error["type"], error["field"], error["line"], error["column"]) == (
        kind,
        field,
        line,
        column,
    )
    assert error["step"] is None and error["loc"][:2] == ["body", "workflow"]


def test_a_yaml_syntax_error_says_what_is_wrong() -> None:
    error = refused("name: x\nsteps: [\n  {id: a\n")
    assert error["msg"].startswith("YAML: ")
    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow("name: x\nsteps: [\n  {id: a\n")
    assert "at line 4, column 1" in caught.value.detail


def test_json_looking_text_gets_jsons_message() -> None:
    assert refused('{"name": "x" "steps": []}')["msg"] == "JSON: Expecting ',' delimiter"


def test_a_yaml_flow_mapping_is_not_mistaken_for_bad_json() -> None:
    assert load_workflow("{name: x, steps: [{id: a, agent: echo}]}")["name"] == "x"


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("", "workflow_empty"),
        ("# only a comment\n", "workflow_empty"),
        ("just text", "workflow_type"),
        ("[1, 2]", "workflow_type"),
        ("42", "workflow_type"),
    ],
)
def test_a_document_that_is_not_a_mapping_is_refused(source: str, kind: str) -> None:
    assert refused(source)["type"] == kind


def test_a_mapping_holding_what_json_cannot_is_refused_at_each_place() -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        load_workflow({"a": [1, float("nan")], "b": {2: "x"}, "c": {1, 2}})
    assert [(e["field"], e["type"]) for e in caught.value.errors] == [
        ("/a/1", "number_not_finite"),
        ("/b", "key_not_string"),
        ("/c", "not_json"),
    ]
    with pytest.raises(WorkflowInvalid, match="not a list"):
        load_workflow([{"name": "x"}])  # type: ignore[arg-type]


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    assert refused("\n".join(lines))["type"] == "yaml_too_large"


def test_the_models_accept_the_spec_and_refuse_unknown_fields() -> None:
    step = StepSpec.model_validate(
        {"id": "s", "agent": "echo@1.0.0", "map": {"over": "${params.xs}", "as": "x"}}
    )
    assert step.map == MapSpec(over="${params.xs}", as_="x")
    assert step.model_dump(by_alias=True, exclude_unset=True)["map"] == {
        "over": "${params.xs}",
        "as": "x",
    }
    with pytest.raises(ValueError, match="Extra inputs"):
        StepSpec.model_validate({"id": "s", "agent": "echo", "retry": 1})
    with pytest.raises(ValueError, match="pattern"):
        StepSpec.model_validate({"id": "s", "agent": "echo@"})


def test_the_json_schema_describes_the_spec_with_an_example() -> None:
    schema = WorkflowSpec.model_json_schema(by_alias=True)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["name", "steps"]
    assert schema["additionalProperties"] is False
    step = schema["$defs"]["StepSpec"]
    expected = {"id", "agent", "backend", "inputs", "depends_on", "map", "when", "retries"}
    assert set(step["properties"]) >= expected | {"retry_backoff_s", "timeout_s"}
    assert all("description" in step["properties"][name] for name in ("agent", "map", "when"))
    mapped = schema["$defs"]["MapSpec"]
    assert set(mapped["properties"]) == {"over", "as", "max_parallel"}
    assert [option["type"] for option in mapped["properties"]["over"]["anyOf"]] == [
        "string",
        "array",
    ]
    assert "default" not in schema["$defs"]["ParamSpec"]["properties"]["default"]
    (example,) = schema["examples"]
    assert example["name"] == "bell-sweep"
    assert WorkflowSpec.model_validate(example).steps[1].map is not None


def test_the_schemas_example_validates() -> None:
    # its circuit's source is "...", which only the run checks: `pubs` holds references
    (example,) = WorkflowSpec.model_json_schema(by_alias=True)["examples"]
    valid = validate_workflow(example, AgentRegistry([*AGENTS, *QUANTUM]))
    assert valid.graph.order() == ["prepare", "sample", "report"]


def _fences(language: str) -> list[str]:
    text = (Path(__file__).parents[2] / "docs" / "workflows.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_docs_examples_are_what_the_code_does() -> None:
    from limit_graph.tasks.quantum.agents import AGENTS as QUANTUM

    registry = AgentRegistry([*AGENTS, *QUANTUM])
    first, *_, invalid = (block for block in _fences("yaml") if block.startswith("name:"))
    assert validate_workflow(first, registry).graph.order() == ["prepare", "sample", "report"]
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(invalid, registry)
    (body,) = (json.loads(block) for block in _fences("json"))
    exc = caught.value
    assert body == {
        "type": f"https://limit-graph.dev/problems/{exc.slug}",
        "title": exc.title,
        "status": exc.status_code,
        "detail": exc.detail,
        **exc.extras(),
    }
