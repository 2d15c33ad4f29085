"""Circuit I/O: the three input formats, the checks that make a bad circuit a clear
error, and the OpenQASM 3 hash that identifies a circuit in provenance."""

from __future__ import annotations

import base64

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.quantum_info import Operator, SparsePauliOp

from limit_graph.tasks.quantum.circuits import (
    CircuitError,
    check_observable,
    check_parameters,
    check_width,
    circuit_source,
    load_circuit,
    parameter_names,
    qasm3_sha256,
    qasm3_text,
    strip_final_measurements,
)

BELL_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""

BELL_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
"""


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit


@pytest.mark.parametrize("fmt", ["qasm3", "qasm2", "qpy_b64"])
def test_every_format_loads_the_same_circuit(fmt: str) -> None:
    document = circuit_source(bell(), fmt)  # type: ignore[arg-type]
    loaded = load_circuit(document["format"], document["source"])  # type: ignore[arg-type]
    unitary = loaded.remove_final_measurements(inplace=False)
    assert loaded.num_qubits == 2 and loaded.num_clbits == 2
    assert Operator(unitary).equiv(Operator(bell().remove_final_measurements(inplace=False)))
    assert qasm3_sha256(loaded) == qasm3_sha256(load_circuit("qasm3", BELL_QASM3))


def test_hand_written_qasm2_and_qasm3_give_the_same_hash() -> None:
    assert qasm3_sha256(load_circuit("qasm2", BELL_QASM2)) == qasm3_sha256(
        load_circuit("qasm3", BELL_QASM3)
    )


def test_the_hash_is_sha256_of_the_qasm3_text_and_tells_circuits_apart() -> None:
    import hashlib

    circuit = load_circuit("qasm3", BELL_QASM3)
    expected = hashlib.sha256(qasm3_text(circuit).encode()).hexdigest()
    assert qasm3_sha256(circuit) == expected
    other = bell()
    other.x(1)
    assert qasm3_sha256(other) != expected
    nearly = bell()
    nearly.rz(0.1, 0)
    slightly = bell()
    slightly.rz(0.1000000001, 0)
    assert qasm3_sha256(nearly) != qasm3_sha256(slightly)


def test_the_native_exporter_writes_bound_circuits_and_the_python_one_the_rest(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import warnings

    from qiskit import qasm3
    from qiskit.exceptions import ExperimentalWarning

    bound = bell()
    bound.rz(0.25, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        assert qasm3_text(bound) == qasm3.dumps_experimental(bound)
    theta = Parameter("theta")
    free = QuantumCircuit(1)
    free.ry(theta, 0)
    free.measure_all()
    assert qasm3_text(free) == qasm3.dumps(free)
    branching = QuantumCircuit(2, 1)
    branching.h(0)
    branching.measure(0, 0)
    with branching.if_test((branching.clbits[0], 1)):
        branching.x(1)
    assert qasm3_text(branching) == qasm3.dumps(branching)
    assert "if (" in qasm3_text(branching)
    assert capfd.readouterr().err == ""  # no panic message from the native exporter


@pytest.mark.parametrize(
    ("fmt", "source", "problem"),
    [
        ("qasm3", "OPENQASM 3.0; qubit[2] q; hadamard q[0];", "OpenQASM 3 source does not parse"),
        ("qasm3", "this is not a circuit", "OpenQASM 3 source does not parse"),
        ("qasm2", "OPENQASM 2.0; qreg q[1]; h q[0];", "OpenQASM 2 source does not parse"),
        ("qasm2", BELL_QASM3, "OpenQASM 2 source does not parse"),
        ("qpy_b64", "not base64!!", "qpy_b64 source is not valid base64"),
        ("qpy_b64", base64.b64encode(b"QISKIT but not qpy").decode(), "is not a QPY file"),
    ],
)
def test_a_circuit_that_does_not_parse_is_refused_naming_the_format(
    fmt: str, source: str, problem: str
) -> None:
    with pytest.raises(CircuitError, match=problem):
        load_circuit(fmt, source)  # type: ignore[arg-type]


def test_a_qpy_file_must_hold_exactly_one_circuit() -> None:
    import io

    from qiskit import qpy

    buffer = io.BytesIO()
    qpy.dump([bell(), bell()], buffer)
    with pytest.raises(CircuitError, match="exactly one circuit, not 2"):
        load_circuit("qpy_b64", base64.b64encode(buffer.getvalue()).decode())


def test_a_circuit_wider_than_the_target_is_refused() -> None:
    with pytest.raises(CircuitError, match="circuit uses 6 qubits but target 'fake:manila' has 5"):
        check_width(QuantumCircuit(6), 5, "fake:manila")
    check_width(QuantumCircuit(5), 5, "fake:manila")
    check_width(QuantumCircuit(60), None, "anything")


def test_parameters_must_all_be_bound_and_nothing_else_given() -> None:
    theta, phi = Parameter("theta"), Parameter("phi")
    circuit = QuantumCircuit(1)
    circuit.rx(theta, 0)
    circuit.rz(phi, 0)
    names = parameter_names(circuit)
    assert names == {"theta", "phi"}
    check_parameters(names, {"theta": 0.1, "phi": 0.2})
    with pytest.raises(CircuitError, match="unbound parameter\\(s\\) theta"):
        check_parameters(names, {"phi": 0.2})
    with pytest.raises(CircuitError, match="not in the circuit: gamma"):
        check_parameters(names, {"theta": 0.1, "phi": 0.2, "gamma": 1.0})


def test_parameter_vector_elements_are_named_like_qiskit_names_them() -> None:
    vector = ParameterVector("t", 2)
    circuit = QuantumCircuit(1)
    circuit.rx(vector[0], 0)
    circuit.ry(vector[1], 0)
    assert parameter_names(circuit) == {"t[0]", "t[1]"}


def test_a_parameterised_qasm3_circuit_keeps_its_input_parameter() -> None:
    source = (
        'OPENQASM 3.0; include "stdgates.inc"; input float theta; qubit[1] q; bit[1] c;'
        " ry(theta) q[0]; c[0] = measure q[0];"
    )
    assert parameter_names(load_circuit("qasm3", source)) == {"theta"}


def test_final_measurements_are_stripped_and_mid_circuit_ones_refused() -> None:
    stripped = strip_final_measurements(bell())
    assert stripped.count_ops().get("measure") is None
    mid = QuantumCircuit(1, 1)
    mid.measure(0, 0)
    mid.h(0)
    with pytest.raises(CircuitError, match="mid-circuit measurements"):
        strip_final_measurements(mid)


def test_observables_must_match_the_width_and_be_hermitian() -> None:
    check_observable(SparsePauliOp("ZZ"), 2)
    with pytest.raises(CircuitError, match="acts on 3 qubits but the circuit has 2"):
        check_observable(SparsePauliOp("ZZZ"), 2)
    with pytest.raises(CircuitError, match="must be real"):
        check_observable(SparsePauliOp(["ZZ"], [1j]), 2)
