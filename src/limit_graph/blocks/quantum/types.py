"""What every quantum target shares: the :class:`QuantumTarget` protocol and the data it
takes and gives.  Every other module of the package imports this one; this one imports
none of them, so the targets (simulators, devices) never import each other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from limit_graph.core.compliance import TargetLimits

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp

__all__ = [
    "TARGET_FORMS",
    "EstimatePub",
    "EstimateResult",
    "QuantumTarget",
    "SamplePub",
    "SampleResult",
    "TargetInfo",
    "TargetLimits",
    "coupling_edges",
    "library_versions",
]

TARGET_FORMS = ("aer", "fake:<device>", "ibm:<backend>")
"""The target names :func:`~limit_graph.blocks.quantum.resolve_target` understands."""


@dataclass(frozen=True)
class TargetInfo:
    """What a target is, for provenance: recorded with every result it produces.

    ``snapshot_id`` names the calibration or noise the results came from: ``ideal``
    for exact simulation, a hash of the noise model's settings for noisy Aer, the
    device properties' ``last_update_date`` and hash for a fake device.
    """

    name: str
    kind: Literal["aer", "fake", "ibm"]
    num_qubits: int | None
    basis_gates: tuple[str, ...]
    snapshot_id: str
    simulator: bool
    versions: Mapping[str, str]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplePub:
    """A sampler PUB for a target: a circuit transpiled for it (with measurements), the
    values of its parameters by name, and the shots."""

    circuit: QuantumCircuit
    shots: int
    parameter_values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SampleResult:
    """Counts by bitstring (Qiskit's order: the rightmost bit is clbit 0); on a device,
    the job's id, queue time and billed QPU time."""

    counts: dict[str, int]
    shots: int
    job_id: str | None = None
    queue_s: float | None = None
    usage_s: float | None = None


@dataclass(frozen=True)
class EstimatePub:
    """An estimator PUB: a transpiled circuit without measurements, observables laid out
    on its qubits, parameter values by name, and a precision that wins over the call's."""

    circuit: QuantumCircuit
    observables: Sequence[SparsePauliOp]
    parameter_values: Mapping[str, float] = field(default_factory=dict)
    precision: float | None = None


@dataclass(frozen=True)
class EstimateResult:
    """One expectation value and standard error per observable of the PUB."""

    evs: list[float]
    stds: list[float]
    job_id: str | None = None
    queue_s: float | None = None
    usage_s: float | None = None


@runtime_checkable
class QuantumTarget(Protocol):
    """Where circuits run; every target (simulator or device) offers this.

    ``sample`` and ``estimate`` take circuits that :meth:`transpile` made for this
    target.  ``seed`` makes a simulator's results repeatable (``None``: the target's
    default seed, if it has one); a device ignores it.  ``precision`` of ``None`` means
    the target's default (exact, ``0.0``, on simulators).  Results come one per PUB, in
    order (a device's may be a subclass with its job's record).  :meth:`limits` is what the
    pre-task checks compare a request with: width, native operations, coupling, shot cap.
    """

    name: str
    num_qubits: int | None

    def describe(self) -> TargetInfo: ...

    def limits(self) -> TargetLimits: ...

    def transpile(
        self, circuit: QuantumCircuit, *, optimization_level: int, seed: int | None
    ) -> QuantumCircuit: ...

    def sample(
        self,
        pubs: Sequence[SamplePub],
        *,
        seed: int | None,
        cancel: threading.Event | None = None,
    ) -> Sequence[SampleResult]: ...

    def estimate(
        self,
        pubs: Sequence[EstimatePub],
        *,
        precision: float | None,
        seed: int | None,
        cancel: threading.Event | None = None,
    ) -> Sequence[EstimateResult]: ...


def library_versions() -> dict[str, str]:
    """Versions of the quantum libraries, recorded with every result."""
    found = {}
    for name in ("qiskit", "qiskit-aer", "qiskit-ibm-runtime"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def coupling_edges(edges: Iterable[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """A coupling map's directed edges as plain ``(a, b)`` pairs, sorted: the form of
    :attr:`TargetLimits.coupling`.

    >>> coupling_edges([[1, 0], (0, 1)])
    ((0, 1), (1, 0))
    """
    return tuple(sorted((int(a), int(b)) for a, b in edges))
