"""What the quantum agents tell the pre-task checks and the quotas: the work profile of
validated inputs (circuits as written, shots, the target's limits, QPU seconds) and the
usage read back from a real run's result."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError
from qiskit import QuantumCircuit
from qiskit.circuit.library import UnitaryGate
from qiskit_ibm_runtime.options_models.estimator import EstimatorOptions

from limit_graph.blocks.quantum import TargetLimits, resolve_target
from limit_graph.core.compliance import CircuitProfile, Usage
from limit_graph.tasks.quantum.agents import (
    AGENTS,
    EstimateInput,
    SampleInput,
    estimate,
    estimate_profile,
    estimate_usage,
    sample,
    sample_profile,
    sample_usage,
)
from limit_graph.tasks.quantum.circuits import circuit_source
from limit_graph.tasks.quantum.maxcut import AGENTS as MAXCUT_AGENTS
from limit_graph.tasks.quantum.maxcut import (
    Graph,
    QaoaInput,
    qaoa_profile,
    qaoa_usage,
    solve_qaoa,
)
from limit_graph.tasks.quantum.work import (
    IBM_JOB_OVERHEAD_S,
    IBM_SECONDS_PER_SHOT,
    estimator_shots,
    qpu_seconds_estimate,
    two_qubit_gates,
)
from tests.fixtures.circuits import ghz


def pub(circuit: QuantumCircuit, **fields: Any) -> dict[str, Any]:
    return {"circuit": circuit_source(circuit, "qasm3"), **fields}


def test_two_qubit_gates_count_gates_only_and_look_inside_control_flow() -> None:
    circuit = QuantumCircuit(3, 1)
    circuit.cx(0, 1)
    circuit.rzz(0.3, 1, 2)
    circuit.swap(0, 2)
    circuit.append(UnitaryGate([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), [0, 1])
    circuit.ccx(0, 1, 2)  # three qubits: not counted
    circuit.barrier(0, 1)  # two qubits, but a directive
    circuit.measure(0, 0)
    with circuit.if_test((circuit.clbits[0], 1)):
        circuit.cz(1, 2)
    assert two_qubit_gates(circuit) == 5


def test_a_sample_profile_lists_each_pub_as_written_on_the_canonical_target() -> None:
    wide = ghz(3)
    narrow = QuantumCircuit(2)
    narrow.rx(0.4, 0)
    narrow.barrier()
    narrow.cz(0, 1)
    narrow.measure_all()
    inputs = SampleInput.model_validate(
        {
            "target": "fake:FakeManilaV2",
            "pubs": [pub(wide, shots=1000), pub(narrow, shots=300)],
        }
    )

    profile = sample_profile(inputs)

    assert profile.target == "fake:manila"
    assert profile.limits == resolve_target("fake:manila").limits()
    assert profile.circuits == (
        CircuitProfile(3, 4, 2, frozenset({"h", "cx", "barrier", "measure"}), 1000),
        CircuitProfile(2, 3, 1, frozenset({"rx", "barrier", "cz", "measure"}), 300),
    )
    assert (profile.shots, profile.max_qubits, profile.qpu_seconds_estimate) == (1300, 3, 0.0)


def test_an_estimate_profile_counts_the_shots_a_precision_stands_for() -> None:
    inputs = EstimateInput.model_validate(
        {
            "target": "aer",
            "pubs": [
                pub(ghz(2), observables=["ZZ"], precision=0.01),
                pub(ghz(2), observables=["XX"], precision=0.03),
                pub(ghz(2), observables=["ZI"]),  # exact on a simulator: no shots
            ],
        }
    )

    profile = estimate_profile(inputs)

    assert [c.shots for c in profile.circuits] == [10_000, math.ceil(1 / 0.03**2), 0]
    assert math.ceil(1 / 0.03**2) == 1112
    assert all(c.operations == frozenset({"h", "cx"}) for c in profile.circuits)  # as run
    assert profile.target == "aer" and profile.limits is not None
    assert profile.limits.coupling is None and profile.qpu_seconds_estimate == 0.0


def test_a_device_without_a_precision_uses_ibms_default_and_its_time_is_estimated() -> None:
    default = EstimatorOptions().default_precision  # qiskit-ibm-runtime's own default
    assert estimator_shots(None, simulator=False) == math.ceil(1 / default**2) == 4096
    assert estimator_shots(0.0, simulator=True) == 0
    device = TargetLimits("ibm:ibm_test", 127, frozenset({"ecr"}), simulator=False)
    assert qpu_seconds_estimate(device, 4096) == pytest.approx(4.048)
    assert qpu_seconds_estimate(device, 1000, jobs=3) == pytest.approx(
        3 * IBM_JOB_OVERHEAD_S + 1000 * IBM_SECONDS_PER_SHOT
    )
    assert qpu_seconds_estimate(resolve_target("aer").limits(), 10**6) == 0.0


def test_sample_usage_reads_the_shots_and_run_time_of_a_real_run() -> None:
    inputs = SampleInput.model_validate(
        {"target": "aer", "seed": 2, "pubs": [pub(ghz(2), shots=700), pub(ghz(3), shots=50)]}
    )
    document = sample.fn(inputs).model_dump(mode="json")

    usage = sample_usage(document)

    assert document["metadata"]["usage_s"] is None  # a simulator bills nothing
    assert usage == Usage(shots=750, qpu_seconds=document["metadata"]["duration_s"])
    assert usage.shots == sample_profile(inputs).shots
    assert usage.qpu_seconds > 0


def test_estimate_usage_counts_shots_as_the_profile_does() -> None:
    inputs = EstimateInput.model_validate(
        {
            "target": "fake:manila",
            "seed": 4,
            "pubs": [
                pub(ghz(2), observables=["ZZ"], precision=0.05),
                pub(ghz(3, measured=False), observables=["ZZZ", "XXX"]),
            ],
        }
    )
    document = estimate.fn(inputs).model_dump(mode="json")

    usage = estimate_usage(document)

    assert usage.shots == estimate_profile(inputs).shots == 400
    assert usage.qpu_seconds == document["metadata"]["duration_s"] > 0


def test_a_wrong_input_model_or_result_document_is_a_clear_error() -> None:
    inputs = SampleInput.model_validate({"pubs": [pub(ghz(2))]})
    with pytest.raises(TypeError, match="expected validated EstimateInput, got SampleInput"):
        estimate_profile(inputs)
    with pytest.raises(TypeError, match="expected validated QaoaInput"):
        qaoa_profile(inputs)
    document = sample.fn(inputs).model_dump(mode="json")
    with pytest.raises(ValidationError, match="metadata"):
        sample_usage({"pubs": document["pubs"], "target": "aer"})
    with pytest.raises(ValidationError, match="evs"):
        estimate_usage(document)


def test_every_quantum_agent_declares_its_profile_and_usage() -> None:
    specs = {spec.name: spec for spec in (*AGENTS, *MAXCUT_AGENTS)}
    assert specs["quantum.sample"].profile is sample_profile
    assert specs["quantum.sample"].usage is sample_usage
    assert specs["quantum.estimate"].profile is estimate_profile
    assert specs["quantum.estimate"].usage is estimate_usage
    assert specs["qaoa.maxcut"].profile is qaoa_profile
    assert specs["qaoa.maxcut"].usage is qaoa_usage
    assert specs["maxcut.exact"].profile is None  # classical: runs no circuit


SQUARE = Graph(nodes=4, edges=[(0, 1, 1.0), (1, 2, 2.0), (2, 3, 1.0), (0, 3, 1.5)])


def test_a_qaoa_profile_bounds_its_shots_and_usage_reads_what_ran() -> None:
    exact = QaoaInput(graph=SQUARE, p=2, shots=300, seed=1, maxiter=12)
    sampled = exact.model_copy(update={"energy": "sampled"})

    exact_profile, sampled_profile = qaoa_profile(exact), qaoa_profile(sampled)

    [circuit] = exact_profile.circuits
    assert (circuit.num_qubits, circuit.two_qubit_gates, circuit.shots) == (4, 8, 300)
    assert {"h", "rzz", "rx", "measure"} <= circuit.operations
    assert sampled_profile.circuits == (circuit,) * (12 + 1)  # one PUB per evaluation
    assert sampled_profile.shots == 300 * (12 + 1)
    on_device = qaoa_profile(exact.model_copy(update={"target": "fake:manila"}))
    assert on_device.target == "fake:manila" and on_device.shots == 300 * 13  # noisy: sampled
    ibm = TargetLimits("ibm:ibm_test", 127, frozenset({"ecr"}), simulator=False)
    assert qpu_seconds_estimate(ibm, sampled_profile.shots, jobs=13) == pytest.approx(
        13 * IBM_JOB_OVERHEAD_S + 300 * 13 * IBM_SECONDS_PER_SHOT
    )

    exact_run = solve_qaoa(exact).model_dump(mode="json")
    sampled_run = solve_qaoa(sampled).model_dump(mode="json")
    assert qaoa_usage(exact_run) == Usage(300, exact_run["metadata"]["duration_s"])
    evaluations = sampled_run["metadata"]["evaluations"]
    assert 1 <= evaluations <= 12 and sampled_run["metadata"]["usage_s"] is None
    assert qaoa_usage(sampled_run).shots == 300 * (evaluations + 1) <= sampled_profile.shots
