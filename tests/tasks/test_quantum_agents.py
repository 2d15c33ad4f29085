"""``quantum.sample`` and ``quantum.estimate``: correct distributions and expectation
values with fixed seeds, repeatable results, provenance, a clear error for each bad
input, and the same through the real API with a quantum runner."""

from __future__ import annotations

import math
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp, Statevector

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.models import BackendKind
from limit_graph.tasks.quantum.agents import (
    AGENTS,
    EstimateInput,
    SampleInput,
    estimate,
    merge_counts,
    sample,
)
from limit_graph.tasks.quantum.circuits import circuit_source
from tests.fixtures.api import assert_problem
from tests.fixtures.circuits import ghz
from tests.fixtures.dispatch import running, stack


def sample_inputs(circuit: QuantumCircuit, fmt: str = "qasm3", **fields: Any) -> dict[str, Any]:
    pub: dict[str, Any] = {"circuit": circuit_source(circuit, fmt), "shots": 4000}  # type: ignore[arg-type]
    pub.update(fields.pop("pub", {}))
    return {"target": "aer", "pubs": [pub], "seed": 7, **fields}


def run_sample(inputs: dict[str, Any]) -> dict[str, Any]:
    return sample.fn(SampleInput.model_validate(inputs)).model_dump(mode="json")


def run_estimate(inputs: dict[str, Any]) -> dict[str, Any]:
    return estimate.fn(EstimateInput.model_validate(inputs)).model_dump(mode="json")


def tvd(counts: dict[str, int], ideal: dict[str, float]) -> float:
    shots = sum(counts.values())
    keys = counts.keys() | ideal.keys()
    return 0.5 * sum(abs(counts.get(k, 0) / shots - ideal.get(k, 0.0)) for k in keys)


@pytest.mark.parametrize("qubits", [2, 5])
def test_bell_and_ghz_on_exact_aer_give_only_the_ideal_bitstrings(qubits: int) -> None:
    result = run_sample(sample_inputs(ghz(qubits)))
    counts = result["pubs"][0]["counts"]
    ideal = {"0" * qubits: 0.5, "1" * qubits: 0.5}
    assert set(counts) == set(ideal)
    assert sum(counts.values()) == result["pubs"][0]["shots"] == 4000
    assert tvd(counts, ideal) < 0.05


@pytest.mark.parametrize("qubits", [2, 5])
def test_bell_and_ghz_on_fake_manila_are_noisy_but_close(qubits: int) -> None:
    result = run_sample(sample_inputs(ghz(qubits), target="fake:manila"))
    counts = result["pubs"][0]["counts"]
    ideal = {"0" * qubits: 0.5, "1" * qubits: 0.5}
    assert set(counts) - set(ideal), "noise should produce some non-ideal bitstrings"
    assert tvd(counts, ideal) < 0.25
    assert result["target"] == "fake:manila"
    assert result["metadata"]["snapshot_id"].startswith("fake_manila@")


def test_the_same_request_with_the_same_seed_gives_the_same_counts() -> None:
    inputs = sample_inputs(ghz(3), target="fake:manila")
    first, second = run_sample(inputs), run_sample(inputs)
    assert first["pubs"] == second["pubs"]
    assert first["metadata"]["pubs"] == second["metadata"]["pubs"]
    other = run_sample({**inputs, "seed": 8})
    assert other["pubs"] != first["pubs"]


@pytest.mark.parametrize("fmt", ["qasm2", "qpy_b64"])
def test_qasm2_and_qpy_give_the_counts_of_the_qasm3_form(fmt: str) -> None:
    circuit = ghz(3, measured=False)
    circuit.rx(0.3, 1)  # not only Clifford gates, so the seeds matter
    circuit.measure_all()
    for target in ("aer", "fake:manila"):
        reference = run_sample(sample_inputs(circuit, "qasm3", target=target))
        other = run_sample(sample_inputs(circuit, fmt, target=target))
        assert other["pubs"] == reference["pubs"]
        assert (
            other["metadata"]["pubs"][0]["circuit_sha256"]
            == (reference["metadata"]["pubs"][0]["circuit_sha256"])
        )


def test_parameter_values_bind_by_name() -> None:
    source = (
        'OPENQASM 3.0; include "stdgates.inc"; input float theta; qubit[1] q; bit[1] c;'
        " rx(theta) q[0]; c[0] = measure q[0];"
    )
    inputs = {
        "target": "aer",
        "seed": 1,
        "pubs": [
            {"circuit": {"format": "qasm3", "source": source}, "parameter_values": {"theta": 0.0}},
            {
                "circuit": {"format": "qasm3", "source": source},
                "parameter_values": {"theta": math.pi},
            },
        ],
    }
    result = run_sample(inputs)
    assert result["pubs"][0]["counts"] == {"0": 1024}
    assert result["pubs"][1]["counts"] == {"1": 1024}


def test_the_result_carries_its_provenance() -> None:
    result = run_sample(sample_inputs(ghz(2), allow_cached=True))
    metadata = result["metadata"]
    assert metadata["target"] == "aer" and metadata["snapshot_id"] == "ideal"
    assert metadata["seed"] == 7 and metadata["optimization_level"] == 1
    assert set(metadata["versions"]) == {"qiskit", "qiskit-aer", "qiskit-ibm-runtime"}
    assert metadata["job_ids"] is None
    assert metadata["duration_s"] >= 0 and metadata["transpile_s"] >= 0
    pub = metadata["pubs"][0]
    assert re.fullmatch("[0-9a-f]{64}", pub["circuit_sha256"])
    assert re.fullmatch("[0-9a-f]{64}", pub["transpiled_sha256"])
    assert pub["shots"] == 4000 and pub["depth"] >= 2 and pub["size"] >= 4
    assert pub["seed_transpiler"] == 7


def test_estimates_match_the_statevector_exactly() -> None:
    theta, phi = Parameter("theta"), Parameter("phi")
    circuit = QuantumCircuit(3)
    circuit.ry(theta, 0)
    circuit.cx(0, 1)
    circuit.rx(phi, 2)
    circuit.cz(1, 2)
    circuit.t(1)
    values = {"theta": 0.7, "phi": -1.3}
    observables: list[Any] = [
        "ZZI",
        "IXZ",
        "YIY",
        {"pauli": "ZIZ", "coeff": 0.5},
        [{"pauli": "XXI", "coeff": 0.25}, {"pauli": "IZY", "coeff": -1.5}, {"pauli": "III"}],
    ]
    expected_ops = [
        SparsePauliOp("ZZI"),
        SparsePauliOp("IXZ"),
        SparsePauliOp("YIY"),
        SparsePauliOp(["ZIZ"], [0.5]),
        SparsePauliOp(["XXI", "IZY", "III"], [0.25, -1.5, 1.0]),
    ]
    state = Statevector(circuit.assign_parameters({theta: 0.7, phi: -1.3}))
    expected = [float(state.expectation_value(op).real) for op in expected_ops]
    for target_level in (0, 1, 3):
        result = run_estimate(
            {
                "target": "aer",
                "optimization_level": target_level,
                "pubs": [
                    {
                        "circuit": circuit_source(circuit),
                        "observables": observables,
                        "parameter_values": values,
                    }
                ],
            }
        )
        assert result["pubs"][0]["evs"] == pytest.approx(expected, abs=1e-9)
        assert result["pubs"][0]["stds"] == [0.0] * len(expected)


def test_pauli_labels_are_in_qiskit_order_rightmost_is_qubit_0() -> None:
    circuit = QuantumCircuit(2)
    circuit.x(0)
    result = run_estimate(
        {"pubs": [{"circuit": circuit_source(circuit), "observables": ["IZ", "ZI"]}]}
    )
    assert result["pubs"][0]["evs"] == pytest.approx([-1.0, 1.0], abs=1e-9)


def test_estimates_on_a_fake_device_follow_the_layout_and_feel_the_noise() -> None:
    circuit = ghz(3)  # final measurements are dropped for the estimator
    result = run_estimate(
        {
            "target": "fake:manila",
            "seed": 5,
            "pubs": [{"circuit": circuit_source(circuit), "observables": ["ZZI", "IZZ", "XXX"]}],
        }
    )
    evs = result["pubs"][0]["evs"]
    assert all(0.6 < ev < 1.0 for ev in evs), evs


BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1];'
    " c = measure q;"
)
THETA = (
    'OPENQASM 3.0; include "stdgates.inc"; input float theta; qubit[1] q; bit[1] c;'
    " rx(theta) q[0]; c[0] = measure q[0];"
)


def pub(source: str = BELL, fmt: str = "qasm3", **fields: Any) -> dict[str, Any]:
    return {"circuit": {"format": fmt, "source": source}, **fields}


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ({"pubs": [pub("OPENQASM 3.0; qubit q; hh q;")]}, "OpenQASM 3 source does not parse"),
        ({"pubs": [pub("qreg q[1]; h q[0];", "qasm2")]}, "OpenQASM 2 source does not parse"),
        ({"pubs": [pub("@@not base64@@", "qpy_b64")]}, "not valid base64"),
        ({"pubs": [pub("bm90IGEgcXB5IGZpbGU=", "qpy_b64")]}, "not a QPY file"),
        ({"pubs": [pub(BELL, "qasm4")]}, "'qasm3', 'qasm2' or 'qpy_b64'"),
        (
            {"target": "fake:manila", "pubs": [pub(circuit_source(ghz(6))["source"])]},
            "circuit uses 6 qubits but target 'fake:manila' has 5",
        ),
        ({"pubs": [pub(THETA)]}, "unbound parameter\\(s\\) theta"),
        ({"pubs": [pub(BELL, parameter_values={"theta": 1.0})]}, "not in the circuit: theta"),
        ({"target": "quantum-computer", "pubs": [pub()]}, "unknown quantum target"),
        ({"target": "fake:atlantis", "pubs": [pub()]}, "no fake device 'atlantis'"),
        ({"pubs": [pub(shots=0)]}, "greater than or equal to 1"),
        ({"pubs": [pub(shots=-5)]}, "greater than or equal to 1"),
        ({"pubs": [pub(shots=100_001)]}, "less than or equal to 100000"),
        ({"pubs": []}, "at least 1 item"),
        ({"pubs": [pub(circuit_source(QuantumCircuit(2))["source"])]}, "measures nothing"),
        ({"pubs": [pub()], "seed": -1}, "greater than or equal to 0"),
        ({"pubs": [pub()], "shots": 10}, "Extra inputs are not permitted"),
    ],
)
def test_each_bad_sample_input_is_a_clear_error(inputs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        SampleInput.model_validate(inputs)


@pytest.mark.parametrize(
    ("observables", "problem"),
    [
        (["ZA"], "Pauli label 'ZA' may only contain I, X, Y and Z"),
        (["zz"], "Pauli label 'zz' may only contain"),
        (["ZZZ"], "Pauli label 'ZZZ' has 3 characters but the circuit has 2 qubits"),
        ([{"pauli": "Z", "coeff": 2.0}], "observables\\[0\\]: Pauli label 'Z' has 1 characters"),
        (["ZZ", [{"pauli": "XX"}, {"pauli": "XQ"}]], "observables\\[1\\]: Pauli label 'XQ'"),
        ([[]], "at least one Pauli term"),
        ([], "at least 1 item"),
    ],
)
def test_each_bad_observable_is_a_clear_error(observables: list[Any], problem: str) -> None:
    inputs = {
        "pubs": [{"circuit": {"format": "qasm3", "source": BELL}, "observables": observables}]
    }
    with pytest.raises(ValidationError, match=problem):
        EstimateInput.model_validate(inputs)


def test_estimate_refuses_unbound_parameters_and_mid_circuit_measurements() -> None:
    with pytest.raises(ValidationError, match="unbound parameter\\(s\\) theta"):
        EstimateInput.model_validate({"pubs": [pub(THETA, observables=["Z"])]})
    mid = QuantumCircuit(1, 1)
    mid.measure(0, 0)
    mid.h(0)
    with pytest.raises(ValidationError, match="mid-circuit measurements"):
        EstimateInput.model_validate(
            {"pubs": [pub(circuit_source(mid)["source"], observables=["Z"])]}
        )


def test_merge_counts_sums_counts_and_shots_per_pub() -> None:
    results = {
        "aer": {
            "pubs": [{"counts": {"00": 3, "11": 5}, "shots": 8}, {"counts": {"1": 2}, "shots": 2}]
        },
        "aer-b": {
            "pubs": [{"counts": {"11": 1, "01": 1}, "shots": 2}, {"counts": {"1": 4}, "shots": 4}]
        },
    }
    assert merge_counts(results) == {
        "pubs": [
            {"counts": {"00": 3, "11": 6, "01": 1}, "shots": 10},
            {"counts": {"1": 6}, "shots": 6},
        ],
        "instances": ["aer", "aer-b"],
        "n": 2,
    }


def test_the_agents_are_registered_deterministic_blocking_quantum_tasks() -> None:
    registry = AgentRegistry.from_entry_points()
    for spec in AGENTS:
        assert registry.get(spec.name) == spec
        assert spec.backends == (BackendKind.QUANTUM,)
        assert spec.deterministic and spec.blocking
        assert "allow_cached" in spec.input_model.model_fields
    assert registry.get("quantum.sample").aggregate is merge_counts


async def test_a_bell_sample_runs_on_the_quantum_backend_through_the_api(tmp_path: Path) -> None:
    async with stack(tmp_path) as s, running(s.runner("quantum")):
        session_id = await s.session()
        inputs = {"target": "aer", "pubs": [pub(shots=1000)], "seed": 7, "allow_cached": True}
        response = await s.execute(
            session_id, agent="quantum.sample", inputs=inputs, backend="quantum", wait_s=60
        )
        assert response.status_code == 200, response.text
        execution = response.json()
        assert execution["state"] == "succeeded", execution
        assert execution["backend"] == "quantum" and execution["instance"] == "aer"
        result = execution["result"]
        assert set(result["pubs"][0]["counts"]) == {"00", "11"}
        assert result["pubs"][0]["shots"] == 1000
        metadata = result["metadata"]
        for name in (
            "snapshot_id",
            "versions",
            "seed",
            "optimization_level",
            "duration_s",
            "job_ids",
        ):
            assert name in metadata
        for name in ("circuit_sha256", "transpiled_sha256", "depth", "size", "shots"):
            assert name in metadata["pubs"][0]
        stored = await s.platform.storage.get_execution(uuid.UUID(execution["id"]))
        assert stored is not None and stored.result == result

        again = await s.execute(
            session_id, agent="quantum.sample", inputs=inputs, backend="quantum", wait_s=60
        )
        assert again.json()["cache_hit"] is True
        assert again.json()["result"] == result


@pytest.mark.parametrize(
    ("inputs", "problem", "loc"),
    [
        (
            {"pubs": [pub("OPENQASM 3.0; qubit q; hh q;")]},
            "OpenQASM 3 source does not parse",
            ["body", "inputs", "pubs", 0, "circuit"],
        ),
        (
            {"target": "fake:manila", "pubs": [pub(circuit_source(ghz(6))["source"])]},
            "pubs[0]: circuit uses 6 qubits but target 'fake:manila' has 5",
            ["body", "inputs"],
        ),
        (
            {"pubs": [pub(THETA)]},
            "unbound parameter(s) theta",
            ["body", "inputs", "pubs", 0],
        ),
    ],
)
async def test_a_bad_circuit_is_a_422_and_nothing_is_queued_or_written(
    tmp_path: Path, inputs: dict[str, Any], problem: str, loc: list[Any]
) -> None:
    async with stack(tmp_path) as s:
        session_id = await s.session()
        before = await s.platform.storage.ledger_size()
        response = await s.execute(
            session_id, agent="quantum.sample", inputs=inputs, backend="quantum", wait_s=0
        )
        body = assert_problem(response, 422)
        errors = body["errors"]
        assert isinstance(errors, list) and len(errors) == 1
        assert problem in errors[0]["msg"] and errors[0]["loc"] == loc
        assert await s.platform.storage.ledger_size() == before
        assert s.platform.executions.dispatcher.depth("aer") == 0
