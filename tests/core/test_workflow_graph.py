"""The DAG a valid workflow resolves to: edges, order, downstream and its drawings."""

from __future__ import annotations

import pytest

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.workflows import GraphNode, WorkflowGraph, validate_workflow
from limit_graph.core.workflows.graph import find_cycles
from limit_graph.tasks.general import AGENTS

REGISTRY = AgentRegistry(AGENTS)

DIAMOND = {
    "name": "diamond",
    "steps": [
        {"id": "bottom", "agent": "echo", "inputs": {
            "l": "${steps.left.outputs}", "r": "${steps.right.outputs.slept_s}"}},
        {"id": "right", "agent": "sleep", "inputs": {"seconds": "${steps.top.outputs.n}"}},
        {"id": "left", "agent": "echo", "depends_on": ["top"], "inputs": {"n": 1}},
        {"id": "top", "agent": "echo", "inputs": {"n": 1}},
    ],
}  # fmt: skip


def test_the_diamond_runs_top_first_and_bottom_last() -> None:
    graph = validate_workflow(DIAMOND, REGISTRY).graph
    assert graph.steps == ["bottom", "right", "left", "top"]
    assert graph.upstream == {
        "bottom": ["right", "left"],  # in spec order, whatever order they are named in
        "right": ["top"],
        "left": ["top"],
        "top": [],
    }
    assert graph.order() == ["top", "right", "left", "bottom"]
    assert graph.downstream("top") == {"left", "right", "bottom"}
    assert graph.downstream("left") == {"bottom"}
    assert graph.downstream("bottom") == set()
    assert graph.dependents("top") == ["right", "left"]


def test_upstream_merges_depends_on_and_references_without_duplicates() -> None:
    graph = validate_workflow(
        {
            "name": "merged",
            "steps": [
                {"id": "a", "agent": "echo"},
                {"id": "b", "agent": "echo"},
                {
                    "id": "c",
                    "agent": "echo",
                    "depends_on": ["b", "a", "b"],
                    "map": {"over": "${steps.b.outputs.xs}", "as": "x"},
                    "when": "${steps.a.outputs.ok}",
                    "inputs": {"v": ["${steps.a.outputs}", "${x}"]},
                },
            ],
        },
        REGISTRY,
    ).graph
    assert graph.upstream["c"] == ["a", "b"]
    assert graph.edges() == [("a", "c"), ("b", "c")]


def test_order_is_stable_and_keeps_spec_order_among_ready_steps() -> None:
    graph = WorkflowGraph(["e", "d", "c", "b", "a"], {"e": ["a"], "c": ["a"], "b": ["d"]})
    assert graph.order() == ["d", "b", "a", "e", "c"]
    assert graph.order() == graph.order()


def test_order_of_a_graph_with_a_cycle_raises() -> None:
    with pytest.raises(ValueError, match="cycle"):
        WorkflowGraph(["a", "b"], {"a": ["b"], "b": ["a"]}).order()


def test_a_long_chain_orders_and_finds_downstream_without_recursion_limits() -> None:
    steps = [f"s{i}" for i in range(5000)]
    upstream = {step: [steps[i - 1]] if i else [] for i, step in enumerate(steps)}
    graph = WorkflowGraph(steps, upstream)
    assert graph.order() == steps
    assert len(graph.downstream("s0")) == 4999
    assert find_cycles(steps, upstream) == []
    upstream["s0"] = ["s4999"]
    (cycle,) = find_cycles(steps, upstream)
    assert cycle == steps


def test_find_cycles_names_each_cycle_from_its_first_step() -> None:
    steps = ["a", "b", "c", "d", "e", "f"]
    upstream = {"a": ["c"], "b": ["a"], "c": ["b", "d"], "d": [], "e": ["f"], "f": ["e", "a"]}
    assert find_cycles(steps, upstream) == [["a", "b", "c"], ["e", "f"]]


def test_to_json_lists_nodes_and_edges() -> None:
    workflow = {
        "name": "drawn",
        "steps": [
            {"id": "a", "agent": "echo@1.0.0", "backend": "remote"},
            {"id": "b", "agent": "echo", "map": {"over": "${steps.a.outputs.xs}", "as": "x"},
             "when": "${steps.a.outputs.go}"},
        ],
    }  # fmt: skip
    assert validate_workflow(workflow, REGISTRY).graph.to_json() == {
        "nodes": [
            {"id": "a", "agent": "echo@1.0.0", "version": "1.0.0", "backend": "remote",
             "map": False, "when": None},
            {"id": "b", "agent": "echo", "version": "1.0.0", "backend": "local", "map": True,
             "when": "${steps.a.outputs.go}"},
        ],
        "edges": [{"from": "a", "to": "b"}],
    }  # fmt: skip


def test_mermaid_draws_each_step_with_its_agent_and_a_mapped_step_apart() -> None:
    graph = validate_workflow(
        {
            "name": "drawn",
            "steps": [
                {"id": "load", "agent": "echo"},
                {
                    "id": "each",
                    "agent": "sleep",
                    "map": {"over": "${steps.load.outputs.xs}", "as": "s"},
                    "inputs": {"seconds": "${s}"},
                    "when": '${steps.load.outputs.n} > 0 and \'a"b\' != "<x>"',
                },
            ],
        },  # fmt: skip
        REGISTRY,
    ).graph
    assert graph.mermaid().splitlines() == [
        "flowchart TD",
        '    s0["load<br/>echo"]',
        '    s1[["each<br/>sleep<br/>map: each s<br/>when: ${steps.load.outputs.n} #gt; 0 '
        "and 'a#quot;b' != #quot;#lt;x#gt;#quot;\"]]",
        "    s0 --> s1",
    ]


def test_mermaid_labels_cannot_break_out_of_their_quotes() -> None:
    nodes = {"a": GraphNode(agent='x"]; click a href "evil" %%', when="#1\nb")}
    text = WorkflowGraph(["a"], {}, nodes).mermaid()
    (line,) = text.splitlines()[1:]
    assert line == '    s0["a<br/>x#quot;]; click a href #quot;evil#quot; %%<br/>when: #35;1 b"]'
