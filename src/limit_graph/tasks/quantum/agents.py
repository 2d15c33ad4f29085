"""The quantum agents: ``quantum.sample`` (counts) and ``quantum.estimate`` (expectation
values), on any target :func:`~limit_graph.blocks.quantum.resolve_target` knows.

Their input models do every check a request can fail (circuit parses, fits the
target, has all and only its parameters bound, observables are valid Pauli sums of
the right width), so the platform refuses a bad request with a 422 naming the problem
before anything is queued.  Results carry the run's provenance in ``metadata``.

>>> inputs = SampleInput.model_validate({"target": "aer", "seed": 7, "pubs": [{
...     "circuit": {"format": "qasm3", "source": 'OPENQASM 3.0; include "stdgates.inc";'
...                 ' qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1]; c = measure q;'},
...     "shots": 1000}]})
>>> sorted(sample.fn(inputs).pubs[0].counts)
['00', '11']
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Self

from prefect import task
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from limit_graph.blocks.quantum import TARGET_FORMS, resolve_target
from limit_graph.core.agents import AgentSpec
from limit_graph.core.compliance import Usage, WorkProfile
from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import BackendKind
from limit_graph.tasks.quantum.circuits import (
    CircuitError,
    CircuitFormat,
    check_parameters,
    check_width,
    load_circuit,
    parameter_names,
    strip_final_measurements,
)
from limit_graph.tasks.quantum.primitives import (
    DEFAULT_OPTIMIZATION_LEVEL,
    EstimateRequest,
    RunMetadata,
    SampleRequest,
    run_estimator,
    run_sampler,
)
from limit_graph.tasks.quantum.work import (
    circuit_profile,
    estimator_shots,
    run_usage,
    validated,
    work_profile,
)

if TYPE_CHECKING:  # Qiskit is imported where a circuit is parsed or run, not with the agents
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp

__all__ = [
    "AGENTS",
    "MAX_SHOTS",
    "CircuitInput",
    "EstimateInput",
    "EstimateOutput",
    "PauliTerm",
    "SampleInput",
    "SampleOutput",
    "estimate",
    "estimate_profile",
    "estimate_usage",
    "merge_counts",
    "sample",
    "sample_profile",
    "sample_usage",
]

MAX_SHOTS = 100_000
"""Shots one PUB may ask for."""
MAX_PUBS = 64
MAX_SOURCE_CHARS = 1_000_000
_PAULI = re.compile(r"[IXYZ]+")


class CircuitInput(BaseModel):
    """A circuit as text: OpenQASM 3, OpenQASM 2, or a QPY file in base64."""

    model_config = ConfigDict(extra="forbid")

    format: CircuitFormat = Field(description="qasm3, qasm2 or qpy_b64.")
    source: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS, description="The circuit.")
    _circuit: QuantumCircuit = PrivateAttr()

    @model_validator(mode="after")
    def _parse(self) -> Self:
        self._circuit = load_circuit(self.format, self.source)
        return self

    @property
    def circuit(self) -> QuantumCircuit:
        """The parsed circuit."""
        return self._circuit


class _TargetedInput(BaseModel):
    """Fields the two agents share: target, seed, optimisation level, cache consent."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(
        default="aer",
        min_length=1,
        max_length=200,
        description=f"Where to run: {', '.join(TARGET_FORMS)}.",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**32 - 1,
        description="Seeds transpiling and simulation: the same seed gives the same result.",
    )
    optimization_level: int = Field(
        default=DEFAULT_OPTIMIZATION_LEVEL, ge=0, le=3, description="Transpiler level."
    )
    allow_cached: bool = Field(
        default=False, description="Whether an earlier identical result may answer."
    )

    @field_validator("target")
    @classmethod
    def _known_target(cls, name: str) -> str:
        """The target's canonical name; an unknown one is an error listing the forms.
        A known one the server is not configured to reach (an ``ibm:`` target with no
        credentials block) stays a :class:`~limit_graph.core.errors.ConfigError`: the
        operator's to fix, not the caller's."""
        try:
            return resolve_target(name).name
        except InvalidInput as exc:
            raise ValueError(exc.detail) from None


def _check_widths(target_name: str, circuits: list[QuantumCircuit]) -> None:
    """Every PUB's circuit fits the target."""
    target = resolve_target(target_name)
    for index, circuit in enumerate(circuits):
        try:
            check_width(circuit, target.num_qubits, target.name)
        except CircuitError as exc:
            raise CircuitError(f"pubs[{index}]: {exc}") from None


class SamplePubInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    circuit: CircuitInput
    parameter_values: dict[str, float] = Field(
        default_factory=dict, description="Value of each circuit parameter, by name."
    )
    shots: int = Field(default=1024, ge=1, le=MAX_SHOTS)

    @model_validator(mode="after")
    def _runnable(self) -> Self:
        circuit = self.circuit.circuit
        check_parameters(parameter_names(circuit), self.parameter_values)
        if circuit.num_clbits == 0:
            raise CircuitError(
                "circuit measures nothing, so there is nothing to sample: "
                "add measurements (e.g. `c = measure q;`)"
            )
        return self


class SampleInput(_TargetedInput):
    """Circuits to sample, each with its parameter values and shots."""

    pubs: list[SamplePubInput] = Field(min_length=1, max_length=MAX_PUBS)

    @model_validator(mode="after")
    def _fits_target(self) -> Self:
        _check_widths(self.target, [pub.circuit.circuit for pub in self.pubs])
        return self


class PauliTerm(BaseModel):
    """A weighted Pauli string, e.g. ``{"pauli": "ZZ", "coeff": 0.5}``."""

    model_config = ConfigDict(extra="forbid")

    pauli: str = Field(min_length=1, description="I/X/Y/Z per qubit; rightmost is qubit 0.")
    coeff: float = 1.0


Observable = str | PauliTerm | list[PauliTerm]


def _operator(observable: Observable, num_qubits: int) -> SparsePauliOp:
    """The Pauli sum an observable names, checked against the circuit's width."""
    if isinstance(observable, str):
        terms = [PauliTerm(pauli=observable)]
    elif isinstance(observable, PauliTerm):
        terms = [observable]
    else:
        terms = observable
    if not terms:
        raise CircuitError("an observable needs at least one Pauli term")
    for term in terms:
        if not _PAULI.fullmatch(term.pauli):
            raise CircuitError(f"Pauli label {term.pauli!r} may only contain I, X, Y and Z")
        if len(term.pauli) != num_qubits:
            raise CircuitError(
                f"Pauli label {term.pauli!r} has {len(term.pauli)} characters but the "
                f"circuit has {num_qubits} qubits (Qiskit's order: the rightmost character "
                "is qubit 0)"
            )
    from qiskit.quantum_info import SparsePauliOp

    return SparsePauliOp([t.pauli for t in terms], [t.coeff for t in terms])


class EstimatePubInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    circuit: CircuitInput
    observables: list[Observable] = Field(
        min_length=1,
        max_length=1000,
        description='Pauli labels ("ZZ"), weighted terms ({"pauli": "ZZ", "coeff": 0.5}) '
        "or sums (lists of weighted terms); Qiskit's order, rightmost is qubit 0.",
    )
    parameter_values: dict[str, float] = Field(
        default_factory=dict, description="Value of each circuit parameter, by name."
    )
    precision: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Target precision; none means exact."
    )
    _circuit: QuantumCircuit = PrivateAttr()
    _operators: list[SparsePauliOp] = PrivateAttr()

    @model_validator(mode="after")
    def _runnable(self) -> Self:
        circuit = strip_final_measurements(self.circuit.circuit)
        check_parameters(parameter_names(circuit), self.parameter_values)
        operators = []
        for index, observable in enumerate(self.observables):
            try:
                operators.append(_operator(observable, circuit.num_qubits))
            except CircuitError as exc:
                raise CircuitError(f"observables[{index}]: {exc}") from None
        self._circuit, self._operators = circuit, operators
        return self

    @property
    def runnable_circuit(self) -> QuantumCircuit:
        """The circuit as it is estimated: without its final measurements."""
        return self._circuit

    def request(self) -> EstimateRequest:
        return EstimateRequest(
            self._circuit, self._operators, self.parameter_values, self.precision
        )


class EstimateInput(_TargetedInput):
    """Circuits and the observables to estimate in each one's final state."""

    pubs: list[EstimatePubInput] = Field(min_length=1, max_length=MAX_PUBS)

    @model_validator(mode="after")
    def _fits_target(self) -> Self:
        _check_widths(self.target, [pub.circuit.circuit for pub in self.pubs])
        return self


class SamplePubOutput(BaseModel):
    counts: dict[str, int] = Field(description="Counts by bitstring; rightmost bit is clbit 0.")
    shots: int


class SampleOutput(BaseModel):
    pubs: list[SamplePubOutput]
    target: str
    metadata: RunMetadata


class EstimatePubOutput(BaseModel):
    evs: list[float] = Field(description="Expectation value of each observable.")
    stds: list[float] = Field(description="Standard error of each (0 when exact).")


class EstimateOutput(BaseModel):
    pubs: list[EstimatePubOutput]
    target: str
    metadata: RunMetadata


@task(name="quantum.sample", persist_result=False)
def sample(inputs: SampleInput) -> SampleOutput:
    """Sample each PUB's circuit on the target."""
    target = resolve_target(inputs.target)
    requests = [
        SampleRequest(pub.circuit.circuit, pub.shots, pub.parameter_values) for pub in inputs.pubs
    ]
    run = run_sampler(
        target, requests, seed=inputs.seed, optimization_level=inputs.optimization_level
    )
    return SampleOutput(
        pubs=[SamplePubOutput(counts=r.counts, shots=r.shots) for r in run.results],
        target=target.name,
        metadata=run.metadata,
    )


@task(name="quantum.estimate", persist_result=False)
def estimate(inputs: EstimateInput) -> EstimateOutput:
    """Estimate each PUB's observables on the target."""
    target = resolve_target(inputs.target)
    run = run_estimator(
        target,
        [pub.request() for pub in inputs.pubs],
        seed=inputs.seed,
        optimization_level=inputs.optimization_level,
    )
    return EstimateOutput(
        pubs=[EstimatePubOutput(evs=r.evs, stds=r.stds) for r in run.results],
        target=target.name,
        metadata=run.metadata,
    )


def merge_counts(results: dict[str, Any]) -> dict[str, Any]:
    """Fan-out aggregate of ``quantum.sample``: counts and shots summed per PUB over the
    instances that succeeded."""
    merged: list[dict[str, Any]] = []
    for result in results.values():
        for index, pub in enumerate(result["pubs"]):
            if index == len(merged):
                merged.append({"counts": {}, "shots": 0})
            counts = merged[index]["counts"]
            for bits, n in pub["counts"].items():
                counts[bits] = counts.get(bits, 0) + n
            merged[index]["shots"] += pub["shots"]
    return {"pubs": merged, "instances": sorted(results), "n": len(results)}


def sample_profile(inputs: BaseModel) -> WorkProfile:
    """What a validated ``quantum.sample`` request asks of its target: each PUB's
    circuit with its shots, the target's limits, and one job's QPU seconds."""
    request = validated(SampleInput, inputs)
    limits = resolve_target(request.target).limits()
    circuits = [circuit_profile(pub.circuit.circuit, pub.shots) for pub in request.pubs]
    return work_profile(limits, circuits)


def estimate_profile(inputs: BaseModel) -> WorkProfile:
    """What a validated ``quantum.estimate`` request asks of its target: each PUB's
    circuit (without its final measurements, as it runs) and the shots its precision
    stands for (:func:`~limit_graph.tasks.quantum.work.estimator_shots`:
    ``ceil(1 / precision**2)``; 0 without a precision on a simulator, which estimates
    exactly; IBM's default precision on a device)."""
    request = validated(EstimateInput, inputs)
    limits = resolve_target(request.target).limits()
    circuits = [
        circuit_profile(
            pub.runnable_circuit,
            estimator_shots(pub.precision, simulator=limits.simulator),
        )
        for pub in request.pubs
    ]
    return work_profile(limits, circuits)


def sample_usage(result: Any) -> Usage:
    """What a ``quantum.sample`` result (its JSON document) used: the shots of its PUBs,
    and its billed QPU seconds, else its run time."""
    output = SampleOutput.model_validate(result)
    return run_usage(output.metadata, sum(pub.shots for pub in output.pubs))


def estimate_usage(result: Any) -> Usage:
    """What a ``quantum.estimate`` result used: the shots its PUBs' precisions stood for
    (as :func:`estimate_profile` counts them), and its billed QPU seconds, else its
    run time."""
    output = EstimateOutput.model_validate(result)
    metadata = output.metadata
    shots = sum(estimator_shots(p.precision, simulator=metadata.simulator) for p in metadata.pubs)
    return run_usage(metadata, shots)


AGENTS = (
    AgentSpec(
        name="quantum.sample",
        version="1.0.0",
        description="Samples circuits (OpenQASM 3/2 or QPY) on a quantum target: counts "
        "per circuit, with the run's provenance.",
        input_model=SampleInput,
        output_model=SampleOutput,
        fn=sample.fn,
        backends=(BackendKind.QUANTUM,),
        deterministic=True,
        blocking=True,
        aggregate=merge_counts,
        task=sample,
        profile=sample_profile,
        usage=sample_usage,
    ),
    AgentSpec(
        name="quantum.estimate",
        version="1.0.0",
        description="Estimates Pauli observables of circuits on a quantum target: "
        "expectation values and standard errors, with the run's provenance.",
        input_model=EstimateInput,
        output_model=EstimateOutput,
        fn=estimate.fn,
        backends=(BackendKind.QUANTUM,),
        deterministic=True,
        blocking=True,
        task=estimate,
        profile=estimate_profile,
        usage=estimate_usage,
    ),
)
