"""What a target's failure becomes in the primitives adapter: Qiskit's and the
simulator's own errors a final ``BackendError`` naming the target, a bug (a
``TypeError``) the bug it is.  Before, every exception became a ``BackendError``, so a
bug read as a backend that failed."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from qiskit import QuantumCircuit
from qiskit.exceptions import QiskitError

from limit_graph.blocks.quantum import (
    EstimatePub,
    EstimateResult,
    SamplePub,
    SampleResult,
    TargetInfo,
    TargetLimits,
    resolve_target,
)
from limit_graph.core.errors import BackendError
from limit_graph.tasks.quantum.primitives import SampleRequest, run_sampler


class BreakingAer:
    """The real ``aer`` target, whose sampling raises ``error`` once it has run."""

    def __init__(self, error: Exception) -> None:
        self._aer = resolve_target("aer")
        self._error = error
        self.name = self._aer.name
        self.num_qubits = self._aer.num_qubits

    def describe(self) -> TargetInfo:
        return self._aer.describe()

    def limits(self) -> TargetLimits:
        return self._aer.limits()

    def transpile(
        self, circuit: QuantumCircuit, *, optimization_level: int, seed: int | None
    ) -> QuantumCircuit:
        return self._aer.transpile(circuit, optimization_level=optimization_level, seed=seed)

    def sample(
        self,
        pubs: Sequence[SamplePub],
        *,
        seed: int | None,
        cancel: threading.Event | None = None,
    ) -> list[SampleResult]:
        self._aer.sample(pubs, seed=seed, cancel=cancel)
        raise self._error

    def estimate(
        self,
        pubs: Sequence[EstimatePub],
        *,
        precision: float | None,
        seed: int | None,
        cancel: threading.Event | None = None,
    ) -> list[EstimateResult]:
        return list(self._aer.estimate(pubs, precision=precision, seed=seed, cancel=cancel))


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


def test_a_qiskit_error_of_the_target_is_a_final_backend_error_naming_it() -> None:
    target = BreakingAer(QiskitError("the simulator ran out of memory"))

    with pytest.raises(BackendError) as caught:
        run_sampler(target, [SampleRequest(bell(), 10)], seed=1)

    assert caught.value.retryable is False
    assert caught.value.detail == ("sampling on 'aer' failed: 'the simulator ran out of memory'")


def test_a_bug_in_a_target_propagates_as_itself() -> None:
    target = BreakingAer(TypeError("unsupported operand type(s) for +: 'int' and 'str'"))

    with pytest.raises(TypeError, match="unsupported operand"):
        run_sampler(target, [SampleRequest(bell(), 10)], seed=1)


def test_a_backend_error_of_the_target_keeps_its_retryable_flag() -> None:
    target = BreakingAer(BackendError("IBM Quantum failed [HTTP 503]", retryable=True))

    with pytest.raises(BackendError) as caught:
        run_sampler(target, [SampleRequest(bell(), 10)], seed=1)

    assert caught.value.retryable is True
    assert caught.value.detail == "IBM Quantum failed [HTTP 503]"
