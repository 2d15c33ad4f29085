"""What a quantum agent's work asks of a target before it runs, and what it used after:
the pieces of ``AgentSpec.profile`` (a :class:`~limit_graph.core.compliance.WorkProfile`)
and ``AgentSpec.usage`` (a :class:`~limit_graph.core.compliance.Usage`) the agents share.

A circuit is profiled as written, before transpiling: that is what a request controls
and what the circuit checks judge.  QPU time before a run is an estimate; quotas
reconcile it with the billed seconds the result records.

>>> from qiskit import QuantumCircuit
>>> bell = QuantumCircuit(2)
>>> _ = bell.h(0), bell.cx(0, 1), bell.measure_all()
>>> profile = circuit_profile(bell, shots=100)
>>> profile.depth, profile.two_qubit_gates, sorted(profile.operations)
(3, 1, ['barrier', 'cx', 'h', 'measure'])
>>> estimator_shots(0.01, simulator=True), estimator_shots(None, simulator=False)
(10000, 4096)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from pydantic import BaseModel

from limit_graph.core.compliance import CircuitProfile, TargetLimits, Usage, WorkProfile

if TYPE_CHECKING:  # Qiskit is imported where a circuit is looked at, not with the agents
    from qiskit import QuantumCircuit

__all__ = [
    "IBM_DEFAULT_PRECISION",
    "IBM_JOB_OVERHEAD_S",
    "IBM_SECONDS_PER_SHOT",
    "RunTimes",
    "circuit_profile",
    "estimator_shots",
    "qpu_seconds_estimate",
    "run_usage",
    "two_qubit_gates",
    "validated",
    "work_profile",
]

IBM_DEFAULT_PRECISION = 0.015625
"""The precision qiskit-ibm-runtime's estimator uses when a request gives none
(``EstimatorOptions.default_precision``): 4,096 shots per PUB."""

IBM_JOB_OVERHEAD_S = 2.0
"""QPU seconds one IBM job is assumed to take besides its shots (loading the program,
calibration shots, readout of the results)."""

IBM_SECONDS_PER_SHOT = 5e-4
"""QPU seconds assumed per shot on an IBM device: its repetition delay (the
``default_rep_delay`` of the devices' configuration, 250 µs) plus reset, gates and
readout, with a margin.  With :data:`IBM_JOB_OVERHEAD_S` this gives 4.05 s for a
4,096-shot Bell circuit, where IBM's "Workload usage" guide shows
``job.usage_estimation`` at about 4.1 s for that job."""


def two_qubit_gates(circuit: QuantumCircuit) -> int:
    """Two-qubit gates in ``circuit``, those inside control flow too; barriers,
    measurements, resets and delays are not gates."""
    from qiskit.circuit import ControlFlowOp, Gate

    count = 0
    for instruction in circuit.data:
        operation = instruction.operation
        if isinstance(operation, ControlFlowOp):
            count += sum(two_qubit_gates(block) for block in operation.blocks)
        elif isinstance(operation, Gate) and operation.num_qubits == 2:
            count += 1
    return count


def circuit_profile(circuit: QuantumCircuit, shots: int) -> CircuitProfile:
    """One circuit as written: width, depth (barriers excluded, as Qiskit counts it),
    two-qubit gates, the names of its operations, and the shots it runs."""
    return CircuitProfile(
        num_qubits=int(circuit.num_qubits),
        depth=int(circuit.depth()),
        two_qubit_gates=two_qubit_gates(circuit),
        operations=frozenset(circuit.count_ops()),
        shots=shots,
    )


def estimator_shots(precision: float | None, *, simulator: bool) -> int:
    """Shots an estimator PUB stands for: ``ceil(1 / precision**2)`` for a precision
    above 0 (IBM's rule, also counted on simulators, where Aer computes the value
    exactly and adds noise of that standard error); without one, 0 on a simulator
    (exact) and IBM's default precision on a device."""
    if precision is not None and precision > 0:
        return math.ceil(1 / precision**2)
    if simulator:
        return 0
    return math.ceil(1 / IBM_DEFAULT_PRECISION**2)


def qpu_seconds_estimate(limits: TargetLimits, shots: int, jobs: int = 1) -> float:
    """QPU seconds ``jobs`` jobs of ``shots`` shots in all should take on the target:
    0.0 on a simulator; on a device ``jobs`` x :data:`IBM_JOB_OVERHEAD_S` plus ``shots``
    x :data:`IBM_SECONDS_PER_SHOT`."""
    if limits.simulator:
        return 0.0
    return round(jobs * IBM_JOB_OVERHEAD_S + shots * IBM_SECONDS_PER_SHOT, 6)


def work_profile(
    limits: TargetLimits, circuits: Sequence[CircuitProfile], jobs: int = 1
) -> WorkProfile:
    """The profile of ``jobs`` jobs running ``circuits`` on the target of ``limits``."""
    shots = sum(c.shots for c in circuits)
    return WorkProfile(
        target=limits.name,
        circuits=tuple(circuits),
        limits=limits,
        qpu_seconds_estimate=qpu_seconds_estimate(limits, shots, jobs),
    )


class RunTimes(Protocol):
    """What a result's metadata tells of its time: :class:`RunMetadata
    <limit_graph.tasks.quantum.primitives.RunMetadata>` of one run, or a solve's of many."""

    @property
    def usage_s(self) -> float | None:
        """QPU seconds IBM billed, ``None`` on a simulator or while IBM reported none."""
        ...

    @property
    def duration_s(self) -> float:
        """Wall seconds the target (or the solve) took."""
        ...


def run_usage(metadata: RunTimes, shots: int) -> Usage:
    """What a run used: ``shots``, and the QPU seconds IBM billed when the metadata has
    them, else the time the target took to run (a simulator's run; on a device whose
    usage IBM has not reported, the job's wall time, which includes its queue)."""
    seconds = metadata.usage_s if metadata.usage_s is not None else metadata.duration_s
    return Usage(shots=shots, qpu_seconds=float(seconds))


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], inputs: BaseModel) -> M:
    """``inputs``, which the platform validated with the agent's input model, as that
    ``model``; anything else is a :class:`TypeError` naming both."""
    if not isinstance(inputs, model):
        raise TypeError(f"expected validated {model.__name__}, got {type(inputs).__name__}")
    return inputs
