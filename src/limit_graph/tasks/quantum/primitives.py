"""The primitives adapter: run sampler and estimator PUBs on any quantum target, with
the provenance of each run.

Circuits are transpiled here for the target (:func:`transpile_for`, with a recorded
optimization level and seed), observables are laid out on the transpiled qubits, and
the target runs them: the Aer simulator itself (sampling) and Aer's ``EstimatorV2``
for simulators, qiskit-ibm-runtime's executor primitives for IBM devices (see
``blocks/quantum/``).  Every run returns :class:`RunMetadata`: circuit hashes,
target and calibration snapshot, library versions, seed, shots, optimization level,
transpiled depth and size, durations, job ids and a device's billed QPU seconds.

The small API for other agents (e.g. QAOA):

>>> from qiskit import QuantumCircuit
>>> from limit_graph.blocks.quantum import resolve_target
>>> bell = QuantumCircuit(2)
>>> _ = bell.h(0), bell.cx(0, 1), bell.measure_all()
>>> sorted(sample_counts(resolve_target("aer"), [bell], shots=100, seed=7)[0])
['00', '11']
>>> [round(v, 9) for v in estimate_expectations(resolve_target("aer"), bell, ["ZZ", "XI"])]
[1.0, 0.0]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from limit_graph.blocks.quantum import (
    EstimatePub,
    EstimateResult,
    QuantumTarget,
    SamplePub,
    SampleResult,
)
from limit_graph.core.errors import BackendError
from limit_graph.core.running import cancel_requested
from limit_graph.tasks.quantum.circuits import (
    CircuitError,
    check_observable,
    check_parameters,
    check_width,
    parameter_names,
    qasm3_sha256,
    strip_final_measurements,
)

if TYPE_CHECKING:  # Qiskit is imported by the functions that run it, not with the agents
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp

__all__ = [
    "DEFAULT_OPTIMIZATION_LEVEL",
    "EstimateRequest",
    "PubMetadata",
    "Run",
    "RunMetadata",
    "SampleRequest",
    "Transpiled",
    "estimate_expectations",
    "run_estimator",
    "run_sampler",
    "sample_counts",
    "transpile_for",
]

DEFAULT_OPTIMIZATION_LEVEL = 1
"""Light optimisation: layout and routing for the device, cheap gate cancellations."""

ResultT = TypeVar("ResultT", SampleResult, EstimateResult)


class PubMetadata(BaseModel):
    """Provenance of one PUB: what was asked for and what ran."""

    model_config = ConfigDict(extra="forbid")

    circuit_sha256: str
    """SHA-256 of the circuit's OpenQASM 3 text (for the estimator: without its final
    measurements)."""
    transpiled_sha256: str
    """SHA-256 of the transpiled circuit's OpenQASM 3 text."""
    num_qubits: int
    depth: int
    """Depth of the transpiled circuit."""
    size: int
    """Operations in the transpiled circuit."""
    optimization_level: int
    seed_transpiler: int | None
    shots: int | None = None
    precision: float | None = None
    job_id: str | None = None
    queue_s: float | None = None
    """On a device: seconds the job waited in the queue."""
    usage_s: float | None = None
    """On a device: QPU seconds billed for the job."""


class RunMetadata(BaseModel):
    """Provenance of a run; the ledger keeps it with the execution's result."""

    model_config = ConfigDict(extra="forbid")

    target: str
    target_kind: str
    simulator: bool
    snapshot_id: str
    """Calibration or noise snapshot: ``ideal``, a noise-settings hash, device properties."""
    target_options: dict[str, Any]
    versions: dict[str, str]
    seed: int | None
    optimization_level: int
    transpile_s: float
    duration_s: float
    """Time the target took to run the PUBs (transpiling excluded)."""
    job_ids: list[str] | None
    """Job ids of a device; ``None`` on simulators."""
    pubs: list[PubMetadata]
    usage_s: float | None = None
    """On a device: QPU seconds billed for the run, each job counted once however many
    PUBs it ran; ``None`` on simulators, or while IBM has reported no job's usage."""


@dataclass(frozen=True)
class Transpiled:
    """A circuit transpiled for one target, with its provenance; reuse it to run the
    same circuit with other parameter values without transpiling again."""

    circuit: QuantumCircuit
    target: str
    circuit_sha256: str
    transpiled_sha256: str
    parameter_names: frozenset[str]
    num_qubits: int
    """Qubits of the circuit before transpiling (observables act on these)."""
    depth: int
    size: int
    optimization_level: int
    seed: int | None

    def metadata(self, **extra: Any) -> PubMetadata:
        """This circuit's part of a run's provenance; ``extra``: shots, precision, job id."""
        return PubMetadata(
            circuit_sha256=self.circuit_sha256,
            transpiled_sha256=self.transpiled_sha256,
            num_qubits=self.num_qubits,
            depth=self.depth,
            size=self.size,
            optimization_level=self.optimization_level,
            seed_transpiler=self.seed,
            **extra,
        )


@dataclass(frozen=True)
class SampleRequest:
    """A circuit with measurements (or one already transpiled), its values and shots."""

    circuit: QuantumCircuit | Transpiled
    shots: int
    parameter_values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EstimateRequest:
    """A circuit, observables on its qubits (Qiskit order: the rightmost label character
    is qubit 0), parameter values and a precision (``None``: the run's)."""

    circuit: QuantumCircuit | Transpiled
    observables: Sequence[SparsePauliOp]
    parameter_values: Mapping[str, float] = field(default_factory=dict)
    precision: float | None = None


@dataclass(frozen=True)
class Run(Generic[ResultT]):
    """Results in PUB order, and the run's provenance."""

    results: list[ResultT]
    metadata: RunMetadata


def transpile_for(
    target: QuantumTarget,
    circuit: QuantumCircuit,
    *,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
    seed: int | None = None,
) -> Transpiled:
    """``circuit`` transpiled for ``target``; too wide a circuit is a ``CircuitError``."""
    from qiskit.exceptions import QiskitError

    check_width(circuit, target.num_qubits, target.name)
    try:
        isa = target.transpile(circuit, optimization_level=optimization_level, seed=seed)
    except QiskitError as exc:  # the transpiler's (TranspilerError) and the target's own
        raise BackendError(f"transpiling for {target.name!r} failed: {exc}") from exc
    return Transpiled(
        circuit=isa,
        target=target.name,
        circuit_sha256=qasm3_sha256(circuit),
        transpiled_sha256=qasm3_sha256(isa),
        parameter_names=parameter_names(circuit),
        num_qubits=int(circuit.num_qubits),
        depth=int(isa.depth()),
        size=int(isa.size()),
        optimization_level=optimization_level,
        seed=seed,
    )


def _prepared(
    target: QuantumTarget,
    circuit: QuantumCircuit | Transpiled,
    values: Mapping[str, float],
    optimization_level: int,
    seed: int | None,
) -> tuple[Transpiled, dict[str, float]]:
    """The transpiled circuit and the values of the parameters it still has (transpiling
    may optimise a parameter away)."""
    if isinstance(circuit, Transpiled):
        if circuit.target != target.name:
            raise CircuitError(
                f"circuit was transpiled for {circuit.target!r}, not for {target.name!r}"
            )
        check_parameters(circuit.parameter_names, values)
        done = circuit
    else:
        check_parameters(parameter_names(circuit), values)
        done = transpile_for(target, circuit, optimization_level=optimization_level, seed=seed)
    kept = parameter_names(done.circuit)
    return done, {name: float(v) for name, v in values.items() if name in kept}


def _guarded(
    target: QuantumTarget, what: str, run: Callable[[], Sequence[ResultT]]
) -> list[ResultT]:
    """Run on the target; Qiskit's and the simulator's own failures (``QiskitError``,
    ``AerError`` among them) are a non-retryable :class:`BackendError` naming the target.
    A platform error (a device's :class:`BackendError`) and anything else, a bug's
    ``TypeError`` say, propagate unchanged."""
    from qiskit.exceptions import QiskitError

    try:
        return list(run())
    except QiskitError as exc:
        raise BackendError(f"{what} on {target.name!r} failed: {exc}") from exc


def _job_fields(result: SampleResult | EstimateResult) -> dict[str, Any]:
    """A PUB result's device job: its id, queue time and billed QPU time."""
    return {"job_id": result.job_id, "queue_s": result.queue_s, "usage_s": result.usage_s}


def _metadata(
    target: QuantumTarget,
    seed: int | None,
    optimization_level: int,
    transpile_s: float,
    duration_s: float,
    pubs: list[PubMetadata],
) -> RunMetadata:
    info = target.describe()
    job_ids = sorted({p.job_id for p in pubs if p.job_id is not None})
    billed = {p.job_id: p.usage_s for p in pubs if p.job_id is not None and p.usage_s is not None}
    return RunMetadata(
        target=info.name,
        target_kind=info.kind,
        simulator=info.simulator,
        snapshot_id=info.snapshot_id,
        target_options=dict(info.options),
        versions=dict(info.versions),
        seed=seed,
        optimization_level=optimization_level,
        transpile_s=round(transpile_s, 6),
        duration_s=round(duration_s, 6),
        job_ids=job_ids or None,
        pubs=pubs,
        usage_s=round(sum(billed.values()), 6) if billed else None,
    )


def run_sampler(
    target: QuantumTarget,
    requests: Sequence[SampleRequest],
    *,
    seed: int | None = None,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
) -> Run[SampleResult]:
    """Sample every request on ``target`` in one job; ``seed`` seeds transpiling and
    the simulator, so the same call gives the same counts."""
    started = time.perf_counter()
    prepared = [
        _prepared(target, r.circuit, r.parameter_values, optimization_level, seed) for r in requests
    ]
    pubs = [
        SamplePub(circuit=done.circuit, shots=r.shots, parameter_values=values)
        for r, (done, values) in zip(requests, prepared, strict=True)
    ]
    transpiled = time.perf_counter()
    cancel = cancel_requested()
    results = _guarded(target, "sampling", lambda: target.sample(pubs, seed=seed, cancel=cancel))
    finished = time.perf_counter()
    pub_metadata = [
        done.metadata(shots=result.shots, **_job_fields(result))
        for (done, _), result in zip(prepared, results, strict=True)
    ]
    metadata = _metadata(
        target, seed, optimization_level, transpiled - started, finished - transpiled, pub_metadata
    )
    return Run(results, metadata)


def run_estimator(
    target: QuantumTarget,
    requests: Sequence[EstimateRequest],
    *,
    seed: int | None = None,
    precision: float | None = None,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
) -> Run[EstimateResult]:
    """Estimate every request's observables on ``target`` in one job.  Final
    measurements are dropped (a :class:`Transpiled` circuit must have none: transpile
    it without them); observables follow the circuit's qubits to the physical ones
    transpiling chose.  ``precision`` ``None`` is the target's default (exact on
    simulators)."""
    started = time.perf_counter()
    prepared = [
        _prepared(
            target,
            r.circuit if isinstance(r.circuit, Transpiled) else strip_final_measurements(r.circuit),
            r.parameter_values,
            optimization_level,
            seed,
        )
        for r in requests
    ]
    pubs = []
    for request, (done, values) in zip(requests, prepared, strict=True):
        for observable in request.observables:
            check_observable(observable, done.num_qubits)
        laid_out = [o.apply_layout(done.circuit.layout) for o in request.observables]
        pubs.append(EstimatePub(done.circuit, laid_out, values, request.precision))
    transpiled = time.perf_counter()
    cancel = cancel_requested()
    results = _guarded(
        target,
        "estimating",
        lambda: target.estimate(pubs, precision=precision, seed=seed, cancel=cancel),
    )
    finished = time.perf_counter()
    pub_metadata = [
        done.metadata(precision=pub.precision, **_job_fields(result))
        for (done, _), pub, result in zip(prepared, pubs, results, strict=True)
    ]
    metadata = _metadata(
        target, seed, optimization_level, transpiled - started, finished - transpiled, pub_metadata
    )
    return Run(results, metadata)


def sample_counts(
    target: QuantumTarget,
    circuits: Sequence[QuantumCircuit | Transpiled],
    shots: int = 1024,
    seed: int | None = None,
    *,
    parameter_values: Mapping[str, float] | None = None,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
) -> list[dict[str, int]]:
    """Counts of each circuit (with measurements), in order; the same values bind every
    circuit's parameters.  See :func:`run_sampler` for the provenance."""
    requests = [SampleRequest(c, shots, parameter_values or {}) for c in circuits]
    run = run_sampler(target, requests, seed=seed, optimization_level=optimization_level)
    return [result.counts for result in run.results]


def estimate_expectations(
    target: QuantumTarget,
    circuit: QuantumCircuit | Transpiled,
    observables: Sequence[SparsePauliOp | str],
    parameter_values: Mapping[str, float] | None = None,
    seed: int | None = None,
    *,
    precision: float | None = None,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
) -> list[float]:
    """Expectation value of each observable (a ``SparsePauliOp`` or a Pauli label, Qiskit
    order) in the circuit's state.  Transpile once with :func:`transpile_for` and pass
    the :class:`Transpiled` to run many parameter values cheaply (QAOA)."""
    from qiskit.quantum_info import SparsePauliOp

    operators = [o if isinstance(o, SparsePauliOp) else SparsePauliOp(o) for o in observables]
    request = EstimateRequest(circuit, operators, parameter_values or {}, precision)
    run = run_estimator(target, [request], seed=seed, optimization_level=optimization_level)
    return run.results[0].evs
