"""Max-cut: brute force against hand-checked graphs and an independent enumeration,
QAOA on real Aer (and a fake noisy device) against the exact optimum, the graph
checks, and both agents through the platform's API and ledger."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from limit_graph.tasks.quantum.circuits import CircuitError
from limit_graph.tasks.quantum.maxcut import (
    AGENTS,
    MAX_EXACT_NODES,
    Graph,
    MaxCutInput,
    QaoaInput,
    QaoaOutput,
    partition_of,
    solve_exact,
    solve_qaoa,
)
from tests.fixtures.dispatch import Stack, running, stack

Edge = tuple[int, int, float]

FIVE = [
    (0, 1, 3.0),
    (0, 2, 1.0),
    (1, 2, 2.5),
    (1, 3, 0.5),
    (2, 3, 4.0),
    (2, 4, 1.5),
    (3, 4, 2.0),
    (0, 4, 0.75),
]
"""Best cut {1, 3, 4}: 3 + 2.5 + 4 + 1.5 + 0.75 = 11.75 (next best 11.5)."""

SIX = [
    (0, 1, 1.0),
    (0, 2, 2.0),
    (1, 2, 0.5),
    (1, 3, 1.5),
    (2, 4, 1.0),
    (3, 4, 2.5),
    (3, 5, 1.0),
    (4, 5, 0.75),
    (0, 5, 1.25),
]


def enumerate_cuts(nodes: int, edges: list[Edge]) -> dict[str, float]:
    """Every partition with node 0 on side 0 and its value, the slow obvious way."""
    cuts = {}
    for sides in itertools.product("01", repeat=nodes - 1):
        partition = "0" + "".join(sides)
        cuts[partition] = sum(w for u, v, w in edges if partition[u] != partition[v])
    return cuts


def smallest_optimal(cuts: dict[str, float]) -> tuple[str, float]:
    best = max(cuts.values())
    return min(p for p, v in cuts.items() if math.isclose(v, best, abs_tol=1e-9)), best


def recomputed(partition: str, edges: list[Edge]) -> float:
    return sum(w for u, v, w in edges if partition[u] != partition[v])


# --- maxcut.exact --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "edges", "partition", "value"),
    [
        pytest.param(3, [(0, 1, 1.0), (1, 2, 1.0), (0, 2, 1.0)], "001", 2.0, id="triangle"),
        pytest.param(
            4, [(0, 1, 1.0), (1, 2, 1.0), (2, 3, 1.0), (3, 0, 1.0)], "0101", 4.0, id="square"
        ),
        pytest.param(5, FIVE, "01011", 11.75, id="weighted-five"),
        pytest.param(3, [], "000", 0.0, id="no-edges"),
        pytest.param(1, [], "0", 0.0, id="one-node"),
        pytest.param(2, [(1, 0, 0.0)], "00", 0.0, id="zero-weight"),
    ],
)
def test_exact_finds_the_hand_checked_cut(
    nodes: int, edges: list[Edge], partition: str, value: float
) -> None:
    found = solve_exact(Graph(nodes=nodes, edges=edges))
    assert (found.partition, found.value) == (partition, value)
    assert (found.partition, found.value) == smallest_optimal(enumerate_cuts(nodes, edges))


def test_exact_agrees_with_enumeration_and_breaks_ties_toward_the_smallest_partition() -> None:
    rng = random.Random(11)
    tied = 0
    for _ in range(40):
        nodes = rng.randint(2, 7)
        pairs = [(u, v) for u in range(nodes) for v in range(u + 1, nodes) if rng.random() < 0.6]
        # Weights like 0.1 + 0.2 vs 0.3: ties that float rounding alone would break.
        edges = [(u, v, rng.choice([0.1, 0.2, 0.3, 1.0])) for u, v in pairs]
        cuts = enumerate_cuts(nodes, edges)
        best = max(cuts.values())
        tied += sum(math.isclose(v, best, abs_tol=1e-9) for v in cuts.values()) > 1
        found = solve_exact(Graph(nodes=nodes, edges=edges))
        assert found.partition == smallest_optimal(cuts)[0], edges
        assert found.value == pytest.approx(best, abs=1e-12)
    assert tied >= 10  # the loop did exercise ties


def test_exact_is_deterministic_and_returns_the_same_cut_for_relabelled_edges() -> None:
    forward = Graph(nodes=5, edges=FIVE)
    backward = Graph(nodes=5, edges=[(v, u, w) for u, v, w in reversed(FIVE)])
    assert solve_exact(forward) == solve_exact(forward) == solve_exact(backward)


def test_exact_reaches_its_node_limit_and_refuses_beyond_it() -> None:
    ring = [(i, (i + 1) % MAX_EXACT_NODES, 1.0) for i in range(MAX_EXACT_NODES)]
    found = solve_exact(MaxCutInput(graph={"nodes": MAX_EXACT_NODES, "edges": ring}).graph)
    assert found.partition == "01" * (MAX_EXACT_NODES // 2)  # an even ring: every edge cut
    assert found.value == MAX_EXACT_NODES
    too_big = {"nodes": MAX_EXACT_NODES + 1, "edges": []}
    with pytest.raises(ValidationError, match=f"at most {MAX_EXACT_NODES} nodes") as caught:
        MaxCutInput(graph=too_big)
    assert caught.value.errors()[0]["loc"] == ("graph",)
    with pytest.raises(ValueError, match=f"at most {MAX_EXACT_NODES} nodes"):
        solve_exact(Graph(**too_big))
    assert QaoaInput(graph=too_big).graph.nodes == MAX_EXACT_NODES + 1  # QAOA takes it


# --- graph checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "loc", "message"),
    [
        ({"nodes": 3, "edges": [[0, 3, 1.0]]}, ("graph",), "names node 3, but the graph's nodes"),
        ({"nodes": 3, "edges": [[1, 1, 1.0]]}, ("graph",), "self-loop"),
        ({"nodes": 3, "edges": [[0, 1, -1.0]]}, ("graph", "edges", 0, 2), "greater than or"),
        ({"nodes": 3, "edges": [[0, 1, math.nan]]}, ("graph", "edges", 0, 2), "finite number"),
        ({"nodes": 3, "edges": [[0, 1, math.inf]]}, ("graph", "edges", 0, 2), "finite number"),
        ({"nodes": 3, "edges": [[0, -1, 1.0]]}, ("graph", "edges", 0, 1), "greater than or"),
        ({"nodes": 3, "edges": [[0, 1.5, 1.0]]}, ("graph", "edges", 0, 1), "valid integer"),
        ({"nodes": 3, "edges": [[0, 1]]}, ("graph", "edges", 0, 2), "Field required"),
        ({"nodes": 0, "edges": []}, ("graph", "nodes"), "greater than or equal to 1"),
        (
            {"nodes": 3, "edges": [[0, 1, 1.0], [1, 2, 1.0], [1, 0, 2.0]]},
            ("graph",),
            "edge 2 [1, 0] repeats edge 0",
        ),
    ],
    ids=[
        "node-out-of-range",
        "self-loop",
        "negative-weight",
        "nan-weight",
        "infinite-weight",
        "negative-node",
        "fractional-node",
        "no-weight",
        "no-nodes",
        "duplicate",
    ],
)
def test_a_bad_graph_is_a_clear_error_naming_the_field(
    graph: dict[str, Any], loc: tuple[Any, ...], message: str
) -> None:
    for model in (MaxCutInput, QaoaInput):
        with pytest.raises(ValidationError) as caught:
            model.model_validate({"graph": graph})
        [error] = caught.value.errors()
        assert error["loc"] == loc
        assert message in error["msg"]


def test_qaoa_inputs_are_bounded() -> None:
    graph = {"nodes": 2, "edges": [[0, 1, 1.0]]}
    for bad in ({"p": 0}, {"p": 11}, {"shots": 0}, {"maxiter": 0}, {"optimizer": "BFGS"}):
        with pytest.raises(ValidationError) as caught:
            QaoaInput.model_validate({"graph": graph, **bad})
        assert caught.value.errors()[0]["loc"] == tuple(bad)
    assert QaoaInput.model_validate({"graph": graph, "allow_cached": True}).allow_cached


def test_qiskit_bitstrings_become_partitions_with_node_zero_first() -> None:
    assert partition_of("110") == "011"  # qubits 1 and 2 measured 1: nodes 1 and 2
    assert partition_of("001") == "011"  # node 0 alone on side 1: the complement
    assert partition_of("0") == "0"


# --- qaoa.maxcut -------------------------------------------------------------------------


def qaoa(edges: list[Edge], nodes: int, **inputs: Any) -> QaoaOutput:
    return solve_qaoa(QaoaInput(graph=Graph(nodes=nodes, edges=edges), **inputs))


def test_qaoa_at_depth_two_on_aer_approximates_the_optimum() -> None:
    out = qaoa(SIX, 6, p=2, target="aer", shots=2000, seed=7)
    partition, optimum = smallest_optimal(enumerate_cuts(6, SIX))
    assert out.optimum == optimum == 9.5
    assert out.approximation_ratio is not None and out.approximation_ratio >= 0.8
    assert out.value == recomputed(out.partition, SIX)
    assert out.approximation_ratio == out.value / optimum
    assert out.expected_value / optimum >= 0.8  # the state itself, not only its best sample
    assert out.expected_value > sum(w for *_, w in SIX) / 2  # beats a random assignment
    assert out.partition[0] == "0" and len(out.partition) == 6
    assert out.partition == partition  # 2000 shots of a good state do hit the optimum
    trace = out.trace
    assert len(trace) == out.metadata.evaluations <= 100
    assert [t.iteration for t in trace] == list(range(len(trace)))
    assert all(len(t.params) == 4 for t in trace)
    assert min(t.energy for t in trace) == -out.expected_value < trace[0].energy
    assert out.metadata.energy == "exact" and out.metadata.target == "aer"
    assert out.metadata.p == 2 and out.metadata.seed == 7 and out.metadata.shots == 2000
    assert out.metadata.sampling.pubs[0].circuit_sha256 == out.metadata.circuit_sha256
    assert {"qiskit", "qiskit-aer", "scipy", "numpy"} <= set(out.metadata.versions)


def test_qaoa_with_the_same_seed_gives_the_same_answer() -> None:
    def stable(out: QaoaOutput) -> dict[str, Any]:
        return out.model_dump(
            exclude={"metadata": {"duration_s": True, "sampling": {"transpile_s", "duration_s"}}}
        )

    first = qaoa(FIVE, 5, p=1, seed=3, shots=500, maxiter=30)
    again = qaoa(FIVE, 5, p=1, seed=3, shots=500, maxiter=30)
    other = qaoa(FIVE, 5, p=1, seed=4, shots=500, maxiter=30)
    assert stable(first) == stable(again)
    assert first.trace[0].params != other.trace[0].params


def test_qaoa_samples_the_energy_where_asked_and_on_a_noisy_device() -> None:
    sampled = qaoa(
        FIVE, 5, p=1, seed=5, shots=400, maxiter=25, energy="sampled", optimizer="Nelder-Mead"
    )
    assert sampled.metadata.energy == "sampled"
    assert sampled.metadata.optimizer == "Nelder-Mead" and len(sampled.trace) == 25
    assert sampled.value == recomputed(sampled.partition, FIVE)
    assert sampled.expected_value > sum(w for *_, w in FIVE) / 2
    device = qaoa(FIVE, 5, p=1, seed=5, shots=400, maxiter=15, target="fake:manila")
    assert device.metadata.energy == "sampled"  # noisy: no exact estimator
    assert device.metadata.sampling.snapshot_id.startswith("fake_manila@")
    assert device.value == recomputed(device.partition, FIVE)
    assert device.approximation_ratio == device.value / 11.75


@pytest.mark.parametrize("edges", [[], [(0, 2, 0.0)]], ids=["no-edges", "zero-weight"])
def test_qaoa_on_a_graph_with_nothing_to_cut_returns_the_empty_cut(edges: list[Edge]) -> None:
    out = qaoa(edges, 3, shots=50, maxiter=10)
    assert (out.partition, out.value, out.optimum, out.approximation_ratio) == ("000", 0, 0, 1)
    assert out.expected_value == 0 and out.metadata.energy == "sampled"


def test_qaoa_refuses_a_graph_wider_than_the_device() -> None:
    with pytest.raises(CircuitError, match="6 qubits but target 'fake:manila' has 5"):
        qaoa(SIX, 6, target="fake:manila")


def test_the_agents_are_declared_as_the_platform_expects() -> None:
    specs = {spec.name: spec for spec in AGENTS}
    exact, quantum = specs["maxcut.exact"], specs["qaoa.maxcut"]
    assert [b.value for b in exact.backends] == ["local", "remote"] and exact.deterministic
    assert [b.value for b in quantum.backends] == ["quantum"]
    assert quantum.deterministic and quantum.blocking
    schema = quantum.describe()["output_schema"]
    assert "node i's side" in schema["properties"]["partition"]["description"]


# --- through the platform --------------------------------------------------------------


async def ledger_result(s: Stack, execution_id: str) -> Any:
    entries = await s.platform.storage.list_entries(limit=100_000)
    [entry] = [
        e for e in entries if e.resource_id == execution_id and e.action == "execution.succeeded"
    ]
    return entry.payload["result"]


async def test_qaoa_runs_on_a_quantum_runner_and_its_result_is_in_the_ledger(
    tmp_path: Path,
) -> None:
    inputs = {"graph": {"nodes": 5, "edges": FIVE}, "p": 1, "shots": 300, "seed": 2}
    async with stack(tmp_path) as s, running(s.runner("quantum")):
        session_id = await s.session()
        response = await s.execute(
            session_id, agent="qaoa.maxcut", inputs=inputs, backend="quantum", wait_s=60
        )
        assert response.status_code == 200, response.text
        execution = response.json()
        assert execution["state"] == "succeeded", execution
        assert execution["instance"] == "aer"
        result = execution["result"]
        assert result["optimum"] == 11.75
        assert result["value"] == recomputed(result["partition"], FIVE)
        assert result["metadata"]["target"] == "aer"
        assert await ledger_result(s, execution["id"]) == result
        stored = await s.platform.storage.get_execution(uuid.UUID(execution["id"]))
        assert stored is not None and stored.result == result


async def test_exact_runs_locally_through_the_api_and_bad_graphs_are_422(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        session_id = await s.session()
        graph = {"nodes": 5, "edges": FIVE}
        response = await s.execute(session_id, agent="maxcut.exact", inputs={"graph": graph})
        assert response.status_code == 200, response.text
        execution = response.json()
        assert execution["state"] == "succeeded" and execution["backend"] == "local"
        assert execution["result"] == {"partition": "01011", "value": 11.75}
        assert await ledger_result(s, execution["id"]) == execution["result"]

        before = await s.platform.storage.ledger_size()
        bad = {"nodes": 3, "edges": [[0, 3, 1.0]]}
        refused = await s.execute(session_id, agent="maxcut.exact", inputs={"graph": bad})
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["loc"] == ["body", "inputs", "graph"]
        assert "names node 3" in error["msg"]
        assert await s.platform.storage.ledger_size() == before
        wrong_backend = await s.execute(
            session_id, agent="qaoa.maxcut", inputs={"graph": graph}, backend="local"
        )
        assert wrong_backend.status_code == 422
