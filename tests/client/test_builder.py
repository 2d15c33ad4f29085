"""Workflows built in Python (``limit_graph.client.Workflow``): the same spec as the
YAML, bad use refused on the spot, and the built workflow run on a real server over
HTTP through the SDK."""

from __future__ import annotations

import csv
import importlib.util
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from limit_graph.client import (
    Condition,
    InvalidInputError,
    LimitClient,
    Map,
    Ref,
    StepRef,
    Workflow,
)
from limit_graph.core.agents import AgentRegistry
from limit_graph.core.models import StepState, WorkflowRunState
from limit_graph.core.workflows import (
    Scope,
    WorkflowInvalid,
    evaluate_when,
    load_workflow,
    parse_when,
)
from limit_graph.tasks.general import AGENTS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# The bell sweep (issue 11, item 1), as written there.
BELL_SWEEP = """\
name: bell-sweep
description: Sample a parameterized Bell circuit over a grid of angles.
params:                      # typed, with defaults; overridden per run
  shots: {type: integer, default: 1000}
  thetas: {type: array, default: [0.0, 0.785, 1.571]}
max_parallel: 16             # steps (and map items) in flight at once
steps:
  - id: prepare
    agent: echo
    inputs: {angles: "${params.thetas}"}
  - id: sample
    agent: quantum.sample
    backend: quantum
    map: {over: "${steps.prepare.outputs.angles}", as: theta}
    inputs:
      target: aer
      seed: 7
      pubs: [{circuit: {format: qasm3, source: "..."}, parameter_values: {theta: "${theta}"}, \
shots: "${params.shots}"}]
    retries: 2               # retryable errors only, with backoff
    timeout_s: 60
  - id: report
    agent: echo
    depends_on: [sample]
    when: "${params.shots} >= 100"
    inputs: {runs: "${steps.sample.outputs}"}
"""

# A diamond: b maps over a's items, c runs only when the params say so, d joins both.
DIAMOND = """\
name: diamond
description: a fans out in b, c runs when asked to, d joins them.
params:
  n: {type: integer, default: 3}
  items: {type: array, default: [1, 2, 3]}
  label: {type: string, description: Names the run.}
max_parallel: 4
steps:
  - id: a
    agent: echo
    inputs:
      items: "${params.items}"
      title: "run ${params.label} of ${params.n}"
      "fake:manila": {counts: {"00": 7}}
  - id: b
    agent: echo
    map: {over: "${steps.a.outputs.items}", as: x, max_parallel: 2}
    inputs: {value: "${x}", first: "${steps.a.outputs.items[0]}"}
    retries: 1
    timeout_s: 30
  - id: c
    agent: echo
    depends_on: [a]
    when: "${params.n} >= 2 and ${params.label} in ['x', 'y']"
    inputs: {n: "${params.n}", zeros: '${steps.a.outputs["fake:manila"].counts.00}'}
  - id: d
    agent: echo
    inputs: {mapped: "${steps.b.outputs}", counted: "${steps.c.outputs.zeros}", literal: "$${x}"}
"""


def bell_sweep() -> Workflow:
    wf = Workflow(
        "bell-sweep",
        description="Sample a parameterized Bell circuit over a grid of angles.",
        max_parallel=16,
    )
    shots = wf.param("shots", "integer", default=1000)
    thetas = wf.param("thetas", list, default=[0.0, 0.785, 1.571])
    prepare = wf.step("prepare", "echo", inputs={"angles": thetas})
    theta = Map(over=prepare.outputs["angles"], as_="theta")
    sample = wf.step(
        "sample",
        "quantum.sample",
        backend="quantum",
        map=theta,
        inputs={
            "target": "aer",
            "seed": 7,
            "pubs": [
                {
                    "circuit": {"format": "qasm3", "source": "..."},
                    "parameter_values": {"theta": theta.item},
                    "shots": wf.params.shots,
                }
            ],
        },
        retries=2,
        timeout_s=60,
    )
    wf.step(
        "report",
        "echo",
        depends_on=[sample],
        when=shots >= 100,
        inputs={"runs": sample.outputs},
    )
    return wf


def diamond() -> Workflow:
    wf = Workflow(
        "diamond",
        description="a fans out in b, c runs when asked to, d joins them.",
        params={"n": {"type": "integer", "default": 3}},
        max_parallel=4,
    )
    items = wf.param("items", list, default=[1, 2, 3])
    label = wf.param("label", str, description="Names the run.")
    n = wf.params.n
    a = wf.step(
        "a",
        "echo",
        inputs={
            "items": items,
            "title": f"run {label} of {n}",
            "fake:manila": {"counts": {"00": 7}},
        },
    )
    x = Map(a.output("items"), "x", max_parallel=2)
    b = wf.step(
        "b",
        "echo",
        map=x,
        inputs={"value": x.item, "first": a.outputs["items"][0]},
        retries=1,
        timeout_s=30,
    )
    c = wf.step(
        "c",
        "echo",
        depends_on=a,
        when=(n >= 2) & label.is_in(["x", "y"]),
        inputs={"n": n, "zeros": a.outputs["fake:manila"]["counts"]["00"]},
    )
    wf.step(
        "d",
        "echo",
        inputs={"mapped": b.outputs, "counted": c.output("zeros"), "literal": "$${x}"},
    )
    return wf


def example(name: str) -> ModuleType:
    """A script of ``examples/python``, loaded from its file."""
    path = EXAMPLES / "python" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the same spec as the YAML -------------------------------------------------------


@pytest.mark.parametrize(("build", "text"), [(bell_sweep, BELL_SWEEP), (diamond, DIAMOND)])
def test_a_built_workflow_is_the_spec_its_yaml_loads_to(
    build: Callable[[], Workflow], text: str
) -> None:
    wf = build()
    assert wf.to_spec() == load_workflow(text)
    assert load_workflow(wf.to_yaml()) == load_workflow(text)
    assert load_workflow(wf.to_json()) == load_workflow(text)
    assert dict(wf) == wf == load_workflow(text)  # the mapping the SDK sends


@pytest.mark.parametrize("name", ["bell_sweep", "classical_pipeline"])
def test_the_python_examples_are_their_yaml_files(name: str) -> None:
    built = example(name).build()
    assert built.to_spec() == load_workflow((EXAMPLES / f"{name}.yaml").read_text())


def test_to_spec_gives_a_new_copy_each_time() -> None:
    wf = diamond()
    spec = wf.to_spec()
    spec["steps"][0]["inputs"]["items"] = "changed"
    spec["params"]["n"]["default"] = 99
    assert wf.to_spec() == load_workflow(DIAMOND)


def test_a_locally_validated_build_has_the_dags_edges() -> None:
    valid = diamond().validate(AgentRegistry(AGENTS), params={"label": "x"})
    assert valid.graph.upstream == {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert bell_sweep().validate().graph.upstream["report"] == ["sample"]
    assert valid.bind({"label": "y"}) == {"n": 3, "items": [1, 2, 3], "label": "y"}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values, description=st.text(max_size=50))
def test_the_yaml_text_reads_back_as_the_spec(value: Any, description: str) -> None:
    wf = Workflow("roundtrip", description=description)
    wf.step("a", "echo", inputs={"value": value, "tricky": ["1e3", "0o17", "null", "~", "<<"]})
    assert load_workflow(wf.to_yaml()) == wf.to_spec()


class Circuit(BaseModel):
    format: str = "qasm3"
    source: str


def test_typed_inputs_and_paths_render_as_json_and_references() -> None:
    wf = Workflow("typed")
    top = wf.param("top", dict, default={"a": [1, {"b": 2}]})
    first = wf.step(
        "first", "echo", inputs={"circuit": Circuit(source="x"), "pair": (1, 2.5), "deep": top}
    )
    assert isinstance(first, StepRef) and first.id == "first"
    second = wf.step("second", "echo", inputs={"b": first.output("deep", "a", 1, "b")})
    assert wf["steps"][0]["inputs"] == {
        "circuit": {"format": "qasm3", "source": "x"},
        "pair": [1, 2.5],
        "deep": "${params.top}",
    }
    assert wf["steps"][1]["inputs"] == {"b": "${steps.first.outputs.deep.a[1].b}"}
    assert str(second.outputs) == "${steps.second.outputs}"
    assert repr(top["a"]) == "Ref(${params.top.a})"
    assert "top" in wf.params and list(wf.params) == ["top"] and len(wf.params) == 1


# --- when conditions ----------------------------------------------------------------

N = Ref(parse_when("${params.n}").references[0])
NAME = Ref(parse_when("${params.name}").references[0])
TAGS = Ref(parse_when("${params.tags}").references[0])


@pytest.mark.parametrize(
    ("condition", "text", "expected"),
    [
        (N >= 2, "${params.n} >= 2", lambda n, _name, _tags: n >= 2),
        (
            N.eq(3) | (N < 0),
            "${params.n} == 3 or ${params.n} < 0",
            lambda n, _name, _tags: n == 3 or n < 0,
        ),
        (
            ((N > 1) | NAME.eq("it's")) & TAGS.contains("ok"),
            "(${params.n} > 1 or ${params.name} == 'it\\'s') and 'ok' in ${params.tags}",
            lambda n, name, tags: (n > 1 or name == "it's") and "ok" in tags,
        ),
        (
            ~((N <= 3) & NAME.not_in(["a", None])),
            "not (${params.n} <= 3 and ${params.name} not in ['a', null])",
            lambda n, name, _tags: not (n <= 3 and name not in ["a", None]),
        ),
        (
            ~TAGS | NAME.ne("a"),
            "not ${params.tags} or ${params.name} != 'a'",
            lambda _n, name, tags: not tags or name != "a",
        ),
    ],
)
def test_conditions_are_when_text_that_means_what_python_means(
    condition: Condition, text: str, expected: Callable[[int, str, list[str]], bool]
) -> None:
    assert str(condition) == text
    for n, name, tags in [(3, "it's", ["ok"]), (0, "a", []), (5, "b", ["no"]), (-1, "a", ["ok"])]:
        scope = Scope(params={"n": n, "name": name, "tags": tags}, outputs={})
        assert evaluate_when(text, scope) is expected(n, name, tags), (n, name, tags)


def test_refs_and_conditions_refuse_what_python_would_get_wrong() -> None:
    wf = Workflow("misuse")
    n = wf.param("n", int, default=1)
    with pytest.raises(TypeError, match="not a list"):
        list(n)
    with pytest.raises(TypeError, match="contains"):
        assert 1 in n
    with pytest.raises(TypeError, match="no truth value"):
        assert n
    with pytest.raises(TypeError, match="combine conditions with & | ~"):
        assert (n > 1) and (n < 5)
    with pytest.raises(ValueError, match="count from 0"):
        n[-1]
    with pytest.raises(TypeError, match="not a JSON number|literal"):
        n.eq({1})
    with pytest.raises(AttributeError, match="no param 'shots' is declared .* n"):
        wf.params.shots  # noqa: B018 - the lookup is what is tested


# --- bad use is refused on the spot ------------------------------------------------


def _other_ref() -> Ref:
    other = Workflow("other")
    return other.step("x", "echo").outputs


BAD_STEPS: list[tuple[str, Callable[[Workflow, StepRef], object], str, str]] = [
    ("duplicate id", lambda wf, _a: wf.step("a", "echo"), "/steps/1/id", "duplicate_step"),
    (
        "another workflow's ref",
        lambda wf, _a: wf.step("s", "echo", inputs={"v": _other_ref()}),
        "/steps/1/inputs/v",
        "foreign_reference",
    ),
    (
        "an item without a map",
        lambda wf, _a: wf.step("s", "echo", inputs={"v": [Map([1], "t").item]}),
        "/steps/1/inputs/v/0",
        "item_unknown",
    ),
    (
        "another map's item",
        lambda wf, _a: wf.step("s", "echo", map=Map([1], "u"), inputs={"v": Map([], "t").item}),
        "/steps/1/inputs/v",
        "item_unknown",
    ),
    (
        "an item in when",
        lambda wf, _a: wf.step("s", "echo", map=Map([1], "t"), when=Map([], "t").item),
        "/steps/1/when",
        "item_misplaced",
    ),
    (
        "an item in map.over",
        lambda wf, _a: wf.step("s", "echo", map=Map(Map([], "t").item, "t")),
        "/steps/1/map/over",
        "item_misplaced",
    ),
    (
        "a value JSON cannot hold",
        lambda wf, _a: wf.step("s", "echo", inputs={"when": {1, 2}}),
        "/steps/1/inputs/when",
        "not_json",
    ),
    (
        "NaN",
        lambda wf, _a: wf.step("s", "echo", inputs={"x": [math.nan]}),
        "/steps/1/inputs/x/0",
        "number_not_finite",
    ),
    (
        "a step as a value",
        lambda wf, a: wf.step("s", "echo", inputs={"x": a}),
        "/steps/1/inputs/x",
        "not_json",
    ),
    (
        "a key that is not text",
        lambda wf, _a: wf.step("s", "echo", inputs={"x": {1: 2}}),
        "/steps/1/inputs/x",
        "key_not_string",
    ),
    (
        "too many retries",
        lambda wf, _a: wf.step("s", "echo", retries=11),
        "/steps/1/retries",
        "less_than_equal",
    ),
    (
        "an unknown backend",
        lambda wf, _a: wf.step("s", "echo", backend="mars"),  # type: ignore[arg-type]
        "/steps/1/backend",
        "enum",
    ),
    (
        "a bad step id",
        lambda wf, _a: wf.step("no spaces", "echo"),
        "/steps/1/id",
        "string_pattern_mismatch",
    ),
    (
        "a when that does not parse",
        lambda wf, _a: wf.step("s", "echo", when="${params.n} = 1"),
        "/steps/1/when",
        "when_syntax",
    ),
    (
        "== on a ref",
        lambda wf, _a: wf.step("s", "echo", when=wf.params.n == 1),  # type: ignore[arg-type,comparison-overlap]
        "/steps/1/when",
        "when_type",
    ),
    (
        "a map that is not a Map",
        lambda wf, _a: wf.step("s", "echo", map={"over": [1], "as": "t"}),  # type: ignore[arg-type]
        "/steps/1/map",
        "map_type",
    ),
    (
        "a reserved map name",
        lambda wf, _a: wf.step("s", "echo", map=Map([1], "steps")),
        "/steps/1/map/as",
        "value_error",
    ),
    (
        "another workflow's step in depends_on",
        lambda wf, _a: wf.step("s", "echo", depends_on=[Workflow("o").step("a", "echo")]),
        "/steps/1/depends_on/0",
        "foreign_reference",
    ),
]


@pytest.mark.parametrize(
    ("case", "call", "field", "kind"), BAD_STEPS, ids=[case[0] for case in BAD_STEPS]
)
def test_a_bad_step_is_refused_with_its_step_and_field_and_nothing_is_added(
    case: str, call: Callable[[Workflow, StepRef], object], field: str, kind: str
) -> None:
    wf = Workflow("bad")
    wf.param("n", int, default=1)
    a = wf.step("a", "echo")
    before = wf.to_spec()
    with pytest.raises(WorkflowInvalid) as refused:
        call(wf, a)
    found = [(e["field"], e["type"]) for e in refused.value.errors]
    assert (field, kind) in found, (case, found)
    assert all(e["step"] is not None for e in refused.value.errors), refused.value.errors
    assert "workflow 'bad' has" in refused.value.detail
    assert wf.to_spec() == before
    # the refused step left nothing behind: its id is free
    assert wf.step("s", "echo").id == "s"


def test_every_problem_of_a_step_is_reported_at_once() -> None:
    wf = Workflow("many")
    with pytest.raises(WorkflowInvalid) as refused:
        wf.step("s", "echo", retries=99, backend="mars", inputs={"x": {1, 2}})  # type: ignore[arg-type]
    assert {e["field"] for e in refused.value.errors} == {
        "/steps/0/inputs/x",
        "/steps/0/backend",
        "/steps/0/retries",
    }
    assert wf.to_spec()["steps"] == []


@pytest.mark.parametrize(
    ("call", "field", "kind"),
    [
        (lambda wf: wf.param("n", int), "/params/n", "duplicate_param"),
        (lambda wf: wf.param("m", int, default="x"), "/params/m/default", "param_default_type"),
        (lambda wf: wf.param("m", int, default=True), "/params/m/default", "param_default_type"),
        (lambda wf: wf.param("m", "text"), "/params/m/type", "literal_error"),
        (lambda wf: wf.param("m", set), "/params/m/type", "literal_error"),
        (lambda wf: wf.param("bad-name", int), "/params/bad-name", "string_pattern_mismatch"),
        (
            lambda wf: wf.param("m", list, default=[math.inf]),
            "/params/m/default/0",
            "number_not_finite",
        ),
        (lambda _wf: Workflow("bad name"), "/name", "string_pattern_mismatch"),
        (lambda _wf: Workflow("w", max_parallel=0), "/max_parallel", "greater_than_equal"),
        (
            lambda _wf: Workflow("w", params={"p": {"type": "integer", "dflt": 1}}),
            "/params/p/dflt",
            "extra_forbidden",
        ),
    ],
)
def test_a_bad_param_or_header_is_refused_with_its_field(
    call: Callable[[Workflow], object], field: str, kind: str
) -> None:
    wf = Workflow("w")
    wf.param("n", int)
    with pytest.raises(WorkflowInvalid) as refused:
        call(wf)
    assert (field, kind) in [(e["field"], e["type"]) for e in refused.value.errors]
    assert wf.to_spec()["params"] == {"n": {"type": "integer"}}


def test_what_needs_the_agents_or_the_whole_graph_is_the_validators() -> None:
    wf = Workflow("later")
    wf.step("a", "no.such.agent")
    wf.step("b", "sleep", depends_on=["c"], inputs={"seconds": "${params.missing}"})
    with pytest.raises(WorkflowInvalid) as refused:
        wf.validate(AgentRegistry(AGENTS))
    assert {(e["step"], e["field"], e["type"]) for e in refused.value.errors} >= {
        ("a", "/steps/0/agent", "unknown_agent"),
    }
    assert {e["step"] for e in refused.value.errors} == {"a", "b"}


# --- on a real server over HTTP --------------------------------------------------------


def _outputs(client: LimitClient, session_id: object, run: Any, step: str) -> list[Any]:
    ids = run.step(step).execution_ids
    return [client.get_execution(str(session_id), i).result for i in ids]


def test_a_built_workflow_validates_and_runs_on_the_server(client: LimitClient) -> None:
    wf = diamond()
    check = client.validate_workflow(wf, {"label": "x"})
    assert check.valid and check.name == "diamond", check.errors
    assert {(e.from_, e.to) for e in check.edges} == {
        ("a", "b"),
        ("a", "c"),
        ("b", "d"),
        ("c", "d"),
    }

    session = client.create_session("built")
    ran = client.run_workflow(
        session.id, wf, {"label": "x", "items": [4, 5]}, wait=True, timeout=60
    )
    assert ran.state is WorkflowRunState.SUCCEEDED, ran
    assert [s.state for s in ran.steps] == [StepState.SUCCEEDED] * 4
    assert _outputs(client, session.id, ran, "b") == [
        {"value": 4, "first": 4},
        {"value": 5, "first": 4},
    ]
    [a_out] = _outputs(client, session.id, ran, "a")
    assert a_out["title"] == "run x of 3"
    [d_out] = _outputs(client, session.id, ran, "d")
    assert d_out == {
        "mapped": [{"value": 4, "first": 4}, {"value": 5, "first": 4}],
        "counted": 7,
        "literal": "${x}",
    }

    # `when` false: c is skipped, and so is d, which depends on it
    skipped = client.run_workflow(session.id, wf, {"label": "z"}, wait=True, timeout=60)
    assert {s.id: s.state for s in skipped.steps} == {
        "a": StepState.SUCCEEDED,
        "b": StepState.SUCCEEDED,
        "c": StepState.SKIPPED,
        "d": StepState.SKIPPED,
    }


def test_a_built_workflow_the_server_refuses_records_nothing(client: LimitClient) -> None:
    wf = Workflow("refused")
    first = wf.step("first", "echo", inputs={"n": 1})
    wf.step("second", "sleep", inputs={"seconds": first.output("n")}, backend="quantum")
    wf.step("third", "nope")
    session = client.create_session("refused", {"backends": ["local"]})
    with pytest.raises(InvalidInputError) as refused:
        client.run_workflow(session.id, wf)
    assert {(e["step"], e["field"]) for e in refused.value.errors} >= {
        ("second", "/steps/1/backend"),
        ("third", "/steps/2/agent"),
    }
    with pytest.raises(InvalidInputError) as missing:
        client.run_workflow(session.id, diamond())  # label has no default
    assert [e["field"] for e in missing.value.errors] == ["/params/label"]
    assert client.list_workflow_runs(session.id).items == []
    assert client.list_results(session.id).items == []


def test_the_classical_pipeline_built_in_python_summarizes_the_csv(client: LimitClient) -> None:
    module = example("classical_pipeline")
    data = EXAMPLES / "data"
    table = module.summary_table(client, {"data_root": str(data), "max_readout_error": 0.03})
    with (data / "calibrations.csv").open(newline="") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if r["operational"] == "true" and float(r["readout_error"]) < 0.03
        ]
    by_device: dict[str, list[float]] = {}
    for row in rows:
        by_device.setdefault(row["device"], []).append(float(row["t1_us"]))
    assert [row["device"] for row in table] == sorted(by_device)
    for row in table:
        t1 = by_device[row["device"]]
        assert row["rows"] == len(t1)
        assert row["t1_us_mean"] == pytest.approx(statistics.fmean(t1), abs=1e-4)
