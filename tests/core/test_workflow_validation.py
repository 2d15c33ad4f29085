"""Validation of workflow specs against real agents: each problem refused with its step
and field, all of them in one answer, and what a valid workflow resolves to."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.models import BackendKind
from limit_graph.core.workflows import WorkflowInvalid, validate_workflow
from limit_graph.tasks.general import AGENTS as GENERAL
from limit_graph.tasks.quantum.agents import AGENTS as QUANTUM
from limit_graph.tasks.quantum.maxcut import AGENTS as MAXCUT

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; input float theta; qubit[2] q; bit[2] c; '
    "ry(theta) q[0]; cx q[0], q[1]; c = measure q;"
)


class CountInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(ge=0)
    label: str = ""


class Meta(BaseModel):
    name: str
    tags: list[str]


class CountOutput(BaseModel):
    total: int
    items: list[int]
    meta: Meta
    maybe: int | None = None
    pair: tuple[int, str] = (0, "")
    ratio: float = 0.0


class CountOutputV2(CountOutput):
    extra: str = ""


class WordsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    repeat: int = 1


class WordsOutput(BaseModel):
    words: list[str]


class ScaleInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: list[float]
    factor: float = 1.0


def _agent(name: str, version: str, inputs: type[BaseModel], outputs: type[BaseModel]) -> Any:
    return AgentSpec(
        name=name,
        version=version,
        description=f"test agent {name}",
        input_model=inputs,
        output_model=outputs,
        fn=lambda x: x,
        backends=(BackendKind.LOCAL, BackendKind.REMOTE),
    )


REGISTRY = AgentRegistry(
    [
        *GENERAL,
        *QUANTUM,
        *MAXCUT,
        _agent("count", "1.0.0", CountInput, CountOutput),
        _agent("count", "2.0.0", CountInput, CountOutputV2),
        _agent("words", "1.0.0", WordsInput, WordsOutput),
        _agent("scale", "1.0.0", ScaleInput, WordsOutput),
    ]
)


def spec(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "test", **top, "steps": list(steps)}


def problems(source: Any, **options: Any) -> list[dict[str, Any]]:
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(source, REGISTRY, **options)
    assert caught.value.status_code == 422
    return caught.value.errors


def one(source: Any, **options: Any) -> dict[str, Any]:
    found = problems(source, **options)
    assert len(found) == 1, found
    return found[0]


def sample_step(**extra: Any) -> dict[str, Any]:
    return {
        "id": "sample",
        "agent": "quantum.sample",
        "backend": "quantum",
        "inputs": {
            "target": "aer",
            "seed": 7,
            "pubs": [
                {
                    "circuit": {"format": "qasm3", "source": BELL},
                    "parameter_values": {"theta": 0.5},
                    "shots": 100,
                }
            ],
        },
        **extra,
    }


# valid workflows


def test_the_issues_bell_sweep_validates() -> None:
    step = sample_step(map={"over": "${steps.prepare.outputs.angles}", "as": "theta"})
    step["inputs"]["pubs"][0]["parameter_values"] = {"theta": "${theta}"}
    step["inputs"]["pubs"][0]["shots"] = "${params.shots}"
    step.update(retries=2, timeout_s=60)
    workflow = spec(
        {"id": "prepare", "agent": "echo", "inputs": {"angles": "${params.thetas}"}},
        step,
        {
            "id": "report",
            "agent": "echo",
            "depends_on": ["sample"],
            "when": "${params.shots} >= 100",
            "inputs": {"runs": "${steps.sample.outputs}"},
        },
        params={
            "shots": {"type": "integer", "default": 1000},
            "thetas": {"type": "array", "default": [0.0, 0.785, 1.571]},
        },
        max_parallel=16,
    )
    valid = validate_workflow(workflow, REGISTRY, allowed_backends=["local", "quantum"])
    assert valid.graph.upstream == {"prepare": [], "sample": ["prepare"], "report": ["sample"]}
    assert valid.backends == {
        "prepare": BackendKind.LOCAL,
        "sample": BackendKind.QUANTUM,
        "report": BackendKind.LOCAL,
    }
    assert valid.agents["sample"].name == "quantum.sample"
    assert valid.step("sample").map is not None and valid.step("sample").map.as_ == "theta"
    assert valid.bind({"shots": 10}) == {"shots": 10, "thetas": [0.0, 0.785, 1.571]}


def test_the_document_is_the_spec_as_written_and_its_hash_is_stable() -> None:
    workflow = spec({"id": "a", "agent": "echo", "map": {"over": [1, 2], "as": "x"}})
    first = validate_workflow(workflow, REGISTRY)
    again = validate_workflow(first.document, REGISTRY)
    assert first.document == {
        "name": "test",
        "steps": [{"id": "a", "agent": "echo", "map": {"over": [1, 2], "as": "x"}}],
    }
    assert again.sha256 == first.sha256 and len(first.sha256) == 64
    other = validate_workflow(spec({"id": "a", "agent": "echo"}), REGISTRY)
    assert other.sha256 != first.sha256


def test_an_unpinned_agent_resolves_to_its_newest_version_and_a_pin_to_its_own() -> None:
    valid = validate_workflow(
        spec(
            {"id": "new", "agent": "count", "inputs": {"n": 1}},
            {"id": "old", "agent": "count@1.0.0", "inputs": {"n": 1}},
        ),
        REGISTRY,
    )
    assert (valid.agents["new"].version, valid.agents["old"].version) == ("2.0.0", "1.0.0")
    # the pinned version's outputs have no `extra`; the newest's do
    refs = {"a": "${steps.new.outputs.extra}", "b": "${steps.old.outputs.extra}"}
    error = one(
        spec(
            {"id": "new", "agent": "count", "inputs": {"n": 1}},
            {"id": "old", "agent": "count@1.0.0", "inputs": {"n": 1}},
            {"id": "use", "agent": "echo", "inputs": refs},
        )
    )
    assert (error["step"], error["field"]) == ("use", "/steps/2/inputs/b")
    assert "no field 'extra'" in error["msg"]


def test_references_follow_the_output_schema_into_nested_models_tuples_and_maps() -> None:
    inputs = {
        "a": "${steps.c.outputs.meta.tags[0]}",  # $ref into $defs, then items
        "b": "${steps.c.outputs.pair[1]}",  # prefixItems
        "c": "${steps.c.outputs.maybe}",  # anyOf with null
        "d": "${steps.s.outputs.pubs[0].counts['00']}",  # additionalProperties
        "e": "${steps.m.outputs[3].items[0]}",  # a mapped step's list of outputs
        "f": "${steps.e.outputs.anything.at[2].all}",  # echo: anything goes
    }
    valid = validate_workflow(
        spec(
            {"id": "c", "agent": "count", "inputs": {"n": 1}},
            sample_step(id="s"),
            {
                "id": "m",
                "agent": "count",
                "map": {"over": [1, 2], "as": "x"},
                "inputs": {"n": "${x}"},
            },
            {"id": "e", "agent": "echo"},
            {"id": "use", "agent": "echo", "inputs": inputs},
        ),  # fmt: skip
        REGISTRY,
    )
    assert valid.graph.upstream["use"] == ["c", "s", "m", "e"]


def test_typed_wiring_that_fits_passes() -> None:
    validate_workflow(
        spec(
            {"id": "c", "agent": "count", "inputs": {"n": 1}},
            # an integer feeds a number; a list of integers feeds a list of numbers
            {"id": "sl", "agent": "sleep", "inputs": {"seconds": "${steps.c.outputs.total}"}},
            {"id": "sc", "agent": "scale", "inputs": {"values": "${steps.c.outputs.items}"}},
            # an optional integer feeds an integer; a string feeds a string
            {
                "id": "w",
                "agent": "words",
                "inputs": {
                    "text": "${steps.c.outputs.meta.name}",
                    "repeat": "${steps.c.outputs.maybe}",
                },
            },
            # interpolated text feeds a string
            {"id": "t", "agent": "words", "inputs": {"text": "n=${steps.c.outputs.total}"}},
        ),  # fmt: skip
        REGISTRY,
    )


def test_the_input_mapping_is_left_as_it_was() -> None:
    workflow = spec(
        {"id": "a", "agent": "echo", "inputs": {"x": ("tuple", 1)}},
        {"id": "b", "agent": "nope"},
    )
    before = copy.deepcopy(workflow)
    problems(workflow)
    assert workflow == before


# one problem each


def test_unknown_fields_are_refused_with_the_step_they_are_in() -> None:
    found = problems({**spec({"id": "a", "agent": "echo", "dependson": ["b"]}), "owner": "me"})
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        (None, "/owner", "extra_forbidden"),
        ("a", "/steps/0/dependson", "extra_forbidden"),
    ]
    assert found[1]["msg"] == "unknown field 'dependson'"
    assert found[1]["loc"] == ["body", "workflow", "steps", 0, "dependson"]


def test_missing_fields_are_refused() -> None:
    found = problems({"steps": [{"id": "a"}]})
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        (None, "/name", "missing"),
        ("a", "/steps/0/agent", "missing"),
    ]
    assert one({"name": "x", "steps": []})["field"] == "/steps"


def test_bad_field_values_are_refused_with_pydantics_reason() -> None:
    error = one(spec({"id": "a b", "agent": "echo", "retries": 3}))
    assert (error["field"], error["type"]) == ("/steps/0/id", "string_pattern_mismatch")
    error = one(spec({"id": "a", "agent": "echo", "timeout_s": 0}))
    assert (error["field"], error["type"]) == ("/steps/0/timeout_s", "greater_than")
    assert error["msg"] == "Input should be greater than 0"


def test_a_map_as_name_may_not_be_reserved_nor_over_a_number() -> None:
    found = problems(spec({"id": "a", "agent": "echo", "map": {"over": 3, "as": "steps"}}))
    assert {e["field"]: e["msg"] for e in found} == {
        "/steps/0/map/over": "must be a reference such as ${steps.ID.outputs} or a list",
        "/steps/0/map/as": "'steps' is reserved for references; choose another name",
    }


def test_duplicate_step_ids_are_refused_at_the_second() -> None:
    error = one(spec({"id": "a", "agent": "echo"}, {"id": "a", "agent": "echo"}))
    assert (error["step"], error["field"], error["type"]) == ("a", "/steps/1/id", "duplicate_step")
    assert "also /steps/0" in error["msg"]


def test_depends_on_an_unknown_step_or_itself_is_refused() -> None:
    found = problems(
        spec(
            {"id": "first", "agent": "echo"},
            {"id": "b", "agent": "echo", "depends_on": ["frist", "b", "first"]},
        )  # fmt: skip
    )
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("b", "/steps/1/depends_on/0", "unknown_step"),
        ("b", "/steps/1/depends_on/1", "self_dependency"),
    ]
    assert found[0]["msg"] == "unknown step 'frist' (did you mean 'first'?)"


def test_a_cycle_of_depends_on_is_refused_naming_its_steps() -> None:
    error = one(
        spec(
            {"id": "a", "agent": "echo", "depends_on": ["c"]},
            {"id": "b", "agent": "echo", "depends_on": ["a"]},
            {"id": "c", "agent": "echo", "depends_on": ["b"]},
            {"id": "d", "agent": "echo", "depends_on": ["a"]},
        )
    )
    assert (error["step"], error["field"], error["type"]) == ("a", "/steps/0/depends_on/0", "cycle")
    assert error["msg"] == "the steps form a cycle: a → b → c → a"


def test_references_that_make_a_cycle_are_a_cycle() -> None:
    error = one(
        spec(
            {"id": "x", "agent": "echo", "inputs": {"v": "${steps.y.outputs.v}"}},
            {"id": "y", "agent": "echo", "when": "${steps.x.outputs.ok}"},
        )
    )
    assert (error["step"], error["field"]) == ("x", "/steps/0/inputs/v")
    assert error["msg"] == "the steps form a cycle: x → y → x"


def test_two_separate_cycles_are_both_reported() -> None:
    found = problems(
        spec(
            {"id": "a", "agent": "echo", "depends_on": ["b"]},
            {"id": "b", "agent": "echo", "depends_on": ["a"]},
            {"id": "c", "agent": "echo", "depends_on": ["d"]},
            {"id": "d", "agent": "echo", "depends_on": ["c"]},
        )
    )
    assert [e["msg"] for e in found] == [
        "the steps form a cycle: a → b → a",
        "the steps form a cycle: c → d → c",
    ]


def test_an_unknown_agent_or_version_is_refused_with_the_registrys_reason() -> None:
    found = problems(spec({"id": "a", "agent": "teleport"}, {"id": "b", "agent": "echo@9.9.9"}))
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("a", "/steps/0/agent", "unknown_agent"),
        ("b", "/steps/1/agent", "unknown_agent"),
    ]
    assert [e["msg"] for e in found] == [
        "no agent named 'teleport'",
        "agent 'echo' has no version '9.9.9' (it has 1.0.0)",
    ]


def test_a_reference_to_an_unknown_step_is_refused() -> None:
    error = one(
        spec({"id": "a", "agent": "echo", "inputs": {"deep": [{"x": "${steps.b.outputs}"}]}})
    )
    assert (error["step"], error["field"], error["type"]) == (
        "a",
        "/steps/0/inputs/deep/0/x",
        "unknown_step",
    )


def test_a_reference_to_an_unknown_param_is_refused() -> None:
    error = one(
        spec(
            {"id": "a", "agent": "echo", "inputs": {"x": "${params.shotz}"}},
            params={"shots": {"type": "integer", "default": 1}},
        )  # fmt: skip
    )
    assert error["type"] == "unknown_param" and error["field"] == "/steps/0/inputs/x"
    assert error["msg"] == "${params.shotz}: unknown param 'shotz' (the params are: shots)"


def test_a_path_into_a_scalar_param_is_refused() -> None:
    error = one(
        spec(
            {"id": "a", "agent": "echo", "inputs": {"x": "${params.n.value}"}},
            params={"n": {"type": "integer", "default": 1}},
        )  # fmt: skip
    )
    assert error["type"] == "unknown_output_field"


def test_a_reference_to_a_missing_output_field_is_refused() -> None:
    error = one(
        spec(
            {"id": "c", "agent": "count", "inputs": {"n": 1}},
            {"id": "u", "agent": "echo", "inputs": {"x": "${steps.c.outputs.meta.title}"}},
        )
    )
    assert (error["step"], error["field"], error["type"]) == (
        "u",
        "/steps/1/inputs/x",
        "unknown_output_field",
    )
    assert error["msg"] == (
        "${steps.c.outputs.meta.title}: steps.c.outputs.meta has no field 'title' "
        "(its fields: name, tags)"
    )


def test_indexing_what_is_not_a_list_or_past_a_tuple_is_refused() -> None:
    found = problems(
        spec(
            {"id": "c", "agent": "count", "inputs": {"n": 1}},
            {
                "id": "u",
                "agent": "echo",
                "inputs": {
                    "a": "${steps.c.outputs[0]}",
                    "b": "${steps.c.outputs.pair[2]}",
                    "c": "${steps.c.outputs.items.first}",
                },
            },
        )  # fmt: skip
    )
    assert [e["field"] for e in found] == [
        "/steps/1/inputs/a",
        "/steps/1/inputs/b",
        "/steps/1/inputs/c",
    ]
    assert "is an object, which has no index [0]" in found[0]["msg"]
    assert "[2] is past it" in found[1]["msg"]
    assert "is an array, which has no field 'first'" in found[2]["msg"]


def test_a_mapped_steps_outputs_are_a_list() -> None:
    error = one(
        spec(
            {"id": "m", "agent": "count", "map": {"over": [1], "as": "x"}, "inputs": {"n": "${x}"}},
            {"id": "u", "agent": "echo", "inputs": {"t": "${steps.m.outputs.total}"}},
        )
    )
    assert "steps.m.outputs is an array, which has no field 'total'" in error["msg"]


def test_a_step_may_not_use_its_own_outputs() -> None:
    error = one(spec({"id": "a", "agent": "echo", "inputs": {"x": "${steps.a.outputs}"}}))
    assert (error["step"], error["type"]) == ("a", "self_reference")


def test_bad_reference_syntax_is_refused_with_its_pointer() -> None:
    found = problems(
        spec(
            {
                "id": "a",
                "agent": "echo",
                "inputs": {"x": "${steps.b}", "y": "text ${params.n", "z": "${1bad}"},
            }
        )  # fmt: skip
    )
    assert [(e["field"], e["type"]) for e in found] == [
        ("/steps/0/inputs/x", "reference_syntax"),
        ("/steps/0/inputs/y", "reference_syntax"),
        ("/steps/0/inputs/z", "reference_syntax"),
    ]
    assert "goes on with .outputs" in found[0]["msg"]
    assert "character 6" in found[1]["msg"] and "not closed" in found[1]["msg"]


def test_an_unknown_map_name_is_refused_and_the_map_name_only_in_inputs() -> None:
    found = problems(
        spec(
            {"id": "src", "agent": "echo"},
            {
                "id": "a",
                "agent": "echo",
                "map": {"over": "${x}", "as": "x"},
                "when": "${x} > 1",
                "inputs": {"v": "${x}", "w": "${y}"},
            },
            {"id": "b", "agent": "echo", "inputs": {"v": "${x}"}},
        )  # fmt: skip
    )
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("a", "/steps/1/map/over", "item_out_of_place"),
        ("a", "/steps/1/when", "item_out_of_place"),
        ("a", "/steps/1/inputs/w", "unknown_name"),
        ("b", "/steps/2/inputs/v", "unknown_name"),
    ]


def test_an_output_type_that_cannot_feed_its_input_is_refused() -> None:
    found = problems(
        spec(
            {"id": "c", "agent": "count", "inputs": {"n": 1}},
            {"id": "w", "agent": "words", "inputs": {"text": "${steps.c.outputs.total}"}},
            {"id": "n", "agent": "count", "inputs": {"n": "${steps.c.outputs.ratio}"}},
            {"id": "s", "agent": "scale", "inputs": {"values": "${steps.c.outputs.meta.tags}"}},
            {"id": "t", "agent": "count", "inputs": {"n": "${steps.c.outputs.meta.name}!"}},
        )
    )
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("w", "/steps/1/inputs/text", "type_mismatch"),
        ("n", "/steps/2/inputs/n", "type_mismatch"),
        ("s", "/steps/3/inputs/values", "type_mismatch"),
        ("t", "/steps/4/inputs/n", "type_mismatch"),
    ]
    assert found[0]["msg"] == (
        "${steps.c.outputs.total} is an integer, but input 'text' takes a string"
    )
    assert found[2]["msg"] == (
        "${steps.c.outputs.meta.tags} is a list of strings, but input 'values' takes a list "
        "of numbers"
    )
    assert "text with references is a string" in found[3]["msg"]


def test_a_wired_value_deep_in_an_input_is_checked_against_its_place() -> None:
    step = sample_step(id="q")
    step["inputs"]["pubs"][0]["shots"] = "${steps.c.outputs.meta.name}"
    error = one(spec({"id": "c", "agent": "count", "inputs": {"n": 1}}, step))
    assert (error["step"], error["field"]) == ("q", "/steps/1/inputs/pubs/0/shots")
    assert error["msg"] == (
        "${steps.c.outputs.meta.name} is a string, but input 'pubs[0].shots' takes an integer"
    )


def test_a_param_of_the_wrong_type_cannot_feed_an_input() -> None:
    error = one(
        spec(
            {"id": "s", "agent": "sleep", "inputs": {"seconds": "${params.label}"}},
            params={"label": {"type": "string", "default": "x"}},
        )  # fmt: skip
    )
    assert error["msg"] == "${params.label} is a string, but input 'seconds' takes a number"


def test_required_inputs_not_given_are_refused() -> None:
    found = problems(
        spec(
            {"id": "lit", "agent": "sleep"},
            {"id": "wired", "agent": "words", "inputs": {"repeat": "${steps.lit.outputs.slept_s}"}},
        )
    )
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("lit", "/steps/0/inputs/seconds", "missing"),
        ("wired", "/steps/1/inputs/repeat", "type_mismatch"),
        ("wired", "/steps/1/inputs/text", "missing_input"),
    ]


def test_literal_inputs_are_checked_by_the_agents_input_model() -> None:
    step = sample_step(id="q")
    step["inputs"]["pubs"][0]["parameter_values"] = {}
    found = problems(
        spec({"id": "s", "agent": "sleep", "inputs": {"seconds": -1, "extra": 1}}, step)
    )
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("s", "/steps/0/inputs/seconds", "greater_than_equal"),
        ("s", "/steps/0/inputs/extra", "extra_forbidden"),
        ("q", "/steps/1/inputs/pubs/0", "value_error"),
    ]
    assert "theta" in found[2]["msg"]


def test_literal_inputs_beside_references_are_checked_field_by_field() -> None:
    found = problems(
        spec(
            {"id": "c", "agent": "count", "inputs": {"n": 1}},
            {
                "id": "w",
                "agent": "words",
                "inputs": {
                    "text": "${steps.c.outputs.meta.name}",
                    "repeat": "twice",
                    "colour": "red",
                },
            },
        )  # fmt: skip
    )
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("w", "/steps/1/inputs/repeat", "int_parsing"),
        ("w", "/steps/1/inputs/colour", "unknown_input"),
    ]
    wired_extra = {"text": "x", "colour": "${steps.c.outputs.meta.name}"}
    error = one(
        spec(
            {"id": "c", "agent": "count", "inputs": {"n": 1}},
            {"id": "w", "agent": "words", "inputs": wired_extra},
        )
    )
    assert (error["field"], error["type"]) == ("/steps/1/inputs/colour", "unknown_input")


def test_a_backend_the_agent_cannot_use_is_refused() -> None:
    found = problems(
        spec(
            {"id": "q", "agent": "quantum.sample", "inputs": sample_step()["inputs"]},
            {
                "id": "m",
                "agent": "maxcut.exact",
                "backend": "quantum",
                "inputs": {"graph": {"nodes": 2, "edges": [[0, 1, 1.0]]}},
            },
        )  # fmt: skip
    )
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("q", "/steps/0/backend", "backend_unsupported"),
        ("m", "/steps/1/backend", "backend_unsupported"),
    ]
    assert found[0]["msg"] == (
        "agent 'quantum.sample' runs on quantum, not on local (the default backend; "
        "set `backend: quantum`)"
    )
    assert found[1]["msg"] == "agent 'maxcut.exact' runs on local, remote, not on quantum"


def test_the_default_backend_is_the_one_given() -> None:
    valid = validate_workflow(
        spec({"id": "a", "agent": "echo"}), REGISTRY, default_backend=BackendKind.REMOTE
    )
    assert valid.backends == {"a": BackendKind.REMOTE}
    assert valid.graph.to_json()["nodes"][0]["backend"] == "remote"


def test_a_backend_the_session_does_not_allow_is_refused() -> None:
    error = one(
        spec({"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "backend": "local"}),
        allowed_backends=[BackendKind.LOCAL],
        default_backend=BackendKind.REMOTE,
    )
    assert (error["step"], error["field"], error["type"]) == (
        "a",
        "/steps/0/backend",
        "backend_not_allowed",
    )
    assert error["msg"] == "the session does not allow the remote backend (it allows local)"


def test_map_over_what_is_not_an_array_is_refused() -> None:
    found = problems(
        spec(
            {"id": "c", "agent": "count", "inputs": {"n": 1}},
            {"id": "a", "agent": "echo", "map": {"over": "${steps.c.outputs.total}", "as": "x"}},
            {"id": "b", "agent": "echo", "map": {"over": "a, b, c", "as": "x"}},
            {"id": "p", "agent": "echo", "map": {"over": "${params.n}", "as": "x"}},
            params={"n": {"type": "integer", "default": 3}},
        )
    )
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("a", "/steps/1/map/over", "map_not_array"),
        ("b", "/steps/2/map/over", "map_not_array"),
        ("p", "/steps/3/map/over", "map_not_array"),
    ]
    assert found[0]["msg"] == "map.over must be an array; ${steps.c.outputs.total} is an integer"


def test_a_map_items_type_is_known_from_what_it_goes_over() -> None:
    error = one(
        spec(
            {"id": "c", "agent": "count", "inputs": {"n": 1}},
            {
                "id": "w",
                "agent": "words",
                "map": {"over": "${steps.c.outputs.items}", "as": "i"},
                "inputs": {"text": "${i}"},
            },
            {
                "id": "ok",
                "agent": "sleep",
                "map": {"over": [1, 2.5], "as": "s"},
                "inputs": {"seconds": "${s}"},
            },
        )  # fmt: skip
    )
    assert error["msg"] == "${i} is an integer, but input 'text' takes a string"


def test_a_when_that_does_not_parse_is_refused_saying_where() -> None:
    found = problems(
        spec(
            {"id": "a", "agent": "echo", "when": "${params.n} >= "},
            {"id": "b", "agent": "echo", "when": "${params.n} = 3"},
            {"id": "c", "agent": "echo", "when": "${params.m} > 3"},
            params={"n": {"type": "integer", "default": 3}},
        )
    )
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        ("a", "/steps/0/when", "when_syntax"),
        ("b", "/steps/1/when", "when_syntax"),
        ("c", "/steps/2/when", "unknown_param"),
    ]
    assert found[0]["msg"] == (
        "`when` does not parse: expected a value, found the end of the expression (at column 16)"
    )
    assert found[1]["msg"] == (
        "`when` does not parse: '=' is not an operator: write '==' to compare (at column 13)"
    )


def test_more_steps_than_the_limit_are_refused_at_once() -> None:
    steps = [{"id": f"s{i}", "agent": "nope"} for i in range(6)]
    found = problems({"name": "big", "extra": 1, "steps": steps}, max_steps=5)
    assert [(e["field"], e["type"]) for e in found] == [
        ("/steps", "too_many_steps"),
        ("/extra", "extra_forbidden"),
    ]
    assert found[0]["msg"] == "the workflow has 6 steps; at most 5 are allowed"


def test_a_param_default_of_the_wrong_type_is_refused() -> None:
    found = problems(
        spec(
            {"id": "a", "agent": "echo"},
            params={
                "n": {"type": "integer", "default": "many"},
                "x": {"type": "number", "default": True},
                "ok": {"type": "object", "default": {}},
                "none": {"type": "string", "default": None},
            },
        )
    )
    assert [(e["field"], e["msg"]) for e in found] == [
        ("/params/n/default", "the default must be an integer, not a string"),
        ("/params/x/default", "the default must be a number, not a boolean"),
        ("/params/none/default", "the default must be a string, not null"),
    ]
    assert all(e["step"] is None for e in found)


def test_a_param_with_a_bad_name_or_type_is_refused() -> None:
    found = problems(spec({"id": "a", "agent": "echo"}, params={"bad-name": {"type": "text"}}))
    assert {(e["field"], e["type"]) for e in found} == {
        ("/params/bad-name", "string_pattern_mismatch"),
        ("/params/bad-name/type", "literal_error"),
    }


def test_params_of_a_run_are_checked_in_the_same_report() -> None:
    workflow = spec(
        {"id": "a", "agent": "teleport"},
        params={"shots": {"type": "integer"}, "seed": {"type": "integer", "default": 1}},
    )
    found = problems(workflow, params={"seed": "7", "colour": "red"})
    assert [(e["step"], e["field"], e["type"]) for e in found] == [
        (None, "/params/colour", "param_unknown"),
        (None, "/params/shots", "param_missing"),
        (None, "/params/seed", "param_type"),
        ("a", "/steps/0/agent", "unknown_agent"),
    ]
    assert found[0]["loc"] == ["body", "params", "colour"]


def test_bind_checks_a_runs_params_and_fills_in_defaults() -> None:
    valid = validate_workflow(
        spec(
            {"id": "a", "agent": "echo"},
            params={
                "n": {"type": "integer"},
                "x": {"type": "number", "default": 0.5},
                "tags": {"type": "array", "default": ["a"]},
            },
        ),
        REGISTRY,
    )
    bound = valid.bind({"n": 3, "x": 2})
    assert bound == {"n": 3, "x": 2, "tags": ["a"]}
    bound["tags"].append("changed")
    assert valid.bind({"n": 1})["tags"] == ["a"]  # defaults are not shared between runs
    for given, kind in [
        ({}, "param_missing"),
        (None, "param_missing"),
        ({"n": True}, "param_type"),
        ({"n": None}, "param_type"),
        ({"n": 1.0}, "param_type"),
        ({"n": 1, "x": "2"}, "param_type"),
        ({"n": 1, "y": 1}, "param_unknown"),
        ({"n": 1, "x": float("inf")}, "param_type"),
    ]:
        with pytest.raises(WorkflowInvalid) as caught:
            valid.bind(given)
        assert [e["type"] for e in caught.value.errors] == [kind], given
        assert caught.value.errors[0]["step"] is None


def test_problems_in_text_carry_their_line_and_column() -> None:
    text = """name: located
steps:
  - id: a
    agent: echo
    inputs:
      x: "${steps.nope.outputs}"
  - id: b
    agent: sleep
"""
    found = problems(text)
    assert [(e["field"], e["line"], e["column"]) for e in found] == [
        ("/steps/0/inputs/x", 6, 7),
        ("/steps/1/inputs/seconds", 7, 5),  # missing: where the step's fields start
    ]


def test_a_spec_with_many_problems_reports_them_all_in_one_answer() -> None:
    text = """name: broken
params:
  shots: {type: integer, default: many}
steps:
  - {id: a, agent: echo, inputs: {x: "${params.shotz}"}}
  - {id: a, agent: echo}
  - {id: b, agent: sleep, inputs: {seconds: "${steps.a.outputs}"}}
  - {id: c, agent: teleport}
  - {id: d, agent: echo, depends_on: [zz], retries: 99}
  - {id: e, agent: quantum.sample, inputs: {}}
  - {id: f, agent: echo, map: {over: "${steps.b.outputs.slept_s}", as: i}, when: "("}
  - {id: g, agent: echo, inputs: {v: "${steps.h.outputs}"}}
  - {id: h, agent: echo, inputs: {v: "${steps.g.outputs}"}}
  - {id: i, agent: echo, oops: 1}
"""
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(text, REGISTRY, allowed_backends=["local"], params={"shot": 1})
    found = [(e["step"], e["field"], e["type"]) for e in caught.value.errors]
    assert found == [
        (None, "/params/shots/default", "param_default_type"),
        (None, "/params/shot", "param_unknown"),
        ("a", "/steps/0/inputs/x", "unknown_param"),
        ("a", "/steps/1/id", "duplicate_step"),
        ("b", "/steps/2/inputs/seconds", "type_mismatch"),
        ("c", "/steps/3/agent", "unknown_agent"),
        ("d", "/steps/4/retries", "less_than_equal"),
        ("e", "/steps/5/backend", "backend_unsupported"),
        ("e", "/steps/5/inputs/pubs", "missing"),
        ("f", "/steps/6/map/over", "map_not_array"),
        ("f", "/steps/6/when", "when_syntax"),
        ("g", "/steps/7/inputs/v", "cycle"),
        ("i", "/steps/9/oops", "extra_forbidden"),
    ]
    # d did not parse (retries), so its unknown depends_on is not looked at
    assert caught.value.detail.startswith(
        "workflow 'broken' has 13 problems: /params/shots/default at line 3, column 26: "
    )
    assert all("line" in e for e in caught.value.errors if e["type"] != "param_unknown")
