"""Quantum targets: one :class:`QuantumTarget` protocol, the simulator blocks behind it,
and :func:`resolve_target`, which turns a target name into a ready target.

========================  ==============================================================
name                      what runs it
========================  ==============================================================
``aer``                   :class:`AerTarget`: qiskit-aer, exact unless the block sets a
                          noise model; ``method``, ``device``, ``seed_simulator``
``fake:<device>``         :class:`FakeDeviceTarget`: a device of
                          ``qiskit_ibm_runtime.fake_provider`` (coupling map, basis gates,
                          noise), simulated offline by Aer
``ibm:<backend>``         ``IBMRuntimeTarget`` in :mod:`limit_graph.blocks.ibm`, imported
                          only when such a name is resolved
========================  ==============================================================

Blocks hold settings and give a target with ``get_target()`` (prefect-qiskit's
convention: settings in the block, the client from a method).  Targets take circuits
already transpiled for them (:meth:`QuantumTarget.transpile`); the adapter in
``tasks/quantum/primitives.py`` does that and records the provenance.  qiskit-aer and
the fake provider are imported on first use: they add ~2 s to a process that never
simulates (the API, the CLI).

>>> target = resolve_target("fake:manila")
>>> target.num_qubits
5
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, runtime_checkable

from prefect.blocks.core import Block
from pydantic import Field

from limit_graph.blocks.backends import ibm_credentials_block
from limit_graph.core.canonical import sha256_hex
from limit_graph.core.errors import BackendError, ConfigError, InvalidInput
from limit_graph.core.running import current_instance

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.providers import BackendV2
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel

__all__ = [
    "TARGET_FORMS",
    "AerTarget",
    "EstimatePub",
    "EstimateResult",
    "FakeDeviceTarget",
    "QuantumTarget",
    "SamplePub",
    "SampleResult",
    "SimulatorTarget",
    "TargetInfo",
    "fake_devices",
    "library_versions",
    "resolve_target",
]

TARGET_FORMS = ("aer", "fake:<device>", "ibm:<backend>")
"""The target names :func:`resolve_target` understands."""

AerMethod = Literal[
    "automatic",
    "statevector",
    "density_matrix",
    "stabilizer",
    "matrix_product_state",
    "extended_stabilizer",
]

_NOISE_BASIS = ("id", "rz", "sx", "x", "cx")
"""Basis of :class:`AerTarget`'s noise model: IBM-like, so every gate after transpiling
is one the noise applies to (``rz`` is virtual and noiseless, as on the devices)."""


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
    the target's default (exact, ``0.0``, on simulators).
    """

    name: str
    num_qubits: int | None

    def describe(self) -> TargetInfo: ...

    def transpile(
        self, circuit: QuantumCircuit, *, optimization_level: int, seed: int | None
    ) -> QuantumCircuit: ...

    def sample(
        self,
        pubs: Sequence[SamplePub],
        *,
        seed: int | None,
        cancel: threading.Event | None = None,
    ) -> list[SampleResult]: ...

    def estimate(
        self,
        pubs: Sequence[EstimatePub],
        *,
        precision: float | None,
        seed: int | None,
        cancel: threading.Event | None = None,
    ) -> list[EstimateResult]: ...


def _stop_if_cancelled(cancel: threading.Event | None, target: str) -> None:
    if cancel is not None and cancel.is_set():
        raise BackendError(f"cancelled before it ran on {target!r}")


def _by_shots(pubs: Sequence[SamplePub]) -> dict[int, list[int]]:
    """PUB positions grouped by shot count, in order: one simulator job per group."""
    groups: dict[int, list[int]] = {}
    for index, pub in enumerate(pubs):
        groups.setdefault(pub.shots, []).append(index)
    return groups


def _parameter_binds(pub: SamplePub) -> dict[Any, list[float]]:
    """Aer's ``parameter_binds`` entry for a PUB: each parameter of the circuit, by
    object, with its one value."""
    if not pub.parameter_values:
        return {}
    return {p: [float(pub.parameter_values[p.name])] for p in pub.circuit.parameters}


def library_versions() -> dict[str, str]:
    """Versions of the quantum libraries, recorded with every result."""
    found = {}
    for name in ("qiskit", "qiskit-aer", "qiskit-ibm-runtime"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


NARROW_QUBITS = 14
"""Below Aer's own statevector parallel threshold a circuit runs on one thread."""

PASS_MANAGERS_KEPT = 256
"""Pass managers kept per target, by (optimization level, seed)."""


class _LockedPassManager:
    """A preset pass manager shared by threads: one run at a time (a run takes ~1 ms)."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager
        self._lock = threading.Lock()

    def run(self, circuit: QuantumCircuit) -> QuantumCircuit:
        with self._lock:
            return cast("QuantumCircuit", self._manager.run(circuit))


class SimulatorTarget:
    """A :class:`QuantumTarget` simulated by qiskit-aer: sampler PUBs on the simulator,
    estimator PUBs through Aer's ``EstimatorV2``.

    ``simulator`` builds the :class:`~qiskit_aer.AerSimulator` (on first use: from a
    large fake device it takes seconds); ``transpile_backend`` is what circuits are
    transpiled for (the fake device itself, or the simulator for ``aer``).
    """

    def __init__(
        self,
        info: TargetInfo,
        simulator: Callable[[], AerSimulator],
        transpile_backend: Callable[[], BackendV2] | None = None,
        default_seed: int | None = None,
    ) -> None:
        self.name = info.name
        self.num_qubits = info.num_qubits
        self._info = info
        self._build_simulator = simulator
        self._transpile_backend = transpile_backend
        self._default_seed = default_seed
        self._managers: dict[tuple[int, int | None], _LockedPassManager] = {}
        self._managers_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SimulatorTarget({self.name!r}, snapshot={self._info.snapshot_id!r})"

    def describe(self) -> TargetInfo:
        return self._info

    @functools.cached_property
    def simulator(self) -> AerSimulator:
        return self._build_simulator()

    @functools.cached_property
    def _narrow_simulator(self) -> AerSimulator:
        """The same simulator on one thread, for narrow circuits: there Aer would spread
        shots over threads, which costs more than it gains (5 qubits, 1,000 shots: 7.4
        ms of CPU on two threads against 3.1 ms on one, and less wall time too)."""
        simulator = self._build_simulator()
        simulator.set_options(max_parallel_threads=1)
        return simulator

    def _simulator_for(self, pubs: Sequence[SamplePub] | Sequence[EstimatePub]) -> AerSimulator:
        widest = max((pub.circuit.num_qubits for pub in pubs), default=0)
        return self._narrow_simulator if widest < NARROW_QUBITS else self.simulator

    @functools.cached_property
    def _transpile_target(self) -> Any:
        """The transpiler's view of the device, built once: building a pass manager from
        the backend rebuilds it every time (~60 ms for Aer; ~2 ms from this)."""
        backend = self._transpile_backend() if self._transpile_backend else self.simulator
        return backend.target

    @functools.cached_property
    def _all_to_all(self) -> bool:
        return self._transpile_target.build_coupling_map() is None

    def _pass_manager(self, optimization_level: int, seed: int | None) -> _LockedPassManager:
        # With no coupling map (plain Aer) levels 0 and 1 have nothing random to seed
        # (no layout search, no routing): one pass manager serves every seed, and
        # tests/blocks/test_quantum_targets.py checks the output does not change.
        if self._all_to_all and optimization_level <= 1:
            seed = None
        key = (optimization_level, seed)
        with self._managers_lock:
            manager = self._managers.get(key)
            if manager is None:
                from qiskit.transpiler import generate_preset_pass_manager

                manager = _LockedPassManager(
                    generate_preset_pass_manager(
                        optimization_level=optimization_level,
                        target=self._transpile_target,
                        seed_transpiler=seed,
                    )
                )
                self._managers[key] = manager
                if len(self._managers) > PASS_MANAGERS_KEPT:
                    self._managers.pop(next(iter(self._managers)))
            return manager

    def transpile(
        self, circuit: QuantumCircuit, *, optimization_level: int, seed: int | None
    ) -> QuantumCircuit:
        return self._pass_manager(optimization_level, seed).run(circuit)

    def sample(
        self,
        pubs: Sequence[SamplePub],
        *,
        seed: int | None,
        cancel: threading.Event | None = None,
    ) -> list[SampleResult]:
        """``cancel`` is checked before the run starts; a simulation runs to its end.

        The PUBs run on the simulator itself, one job per distinct shot count, which is
        what Aer's ``SamplerV2`` does underneath: the counts are the same for the same
        seed (``tests/blocks/test_quantum_targets.py`` checks), without the sampler's
        job thread and the per-shot conversion of its bit arrays (together ~3 ms of a
        5-qubit, 1,000-shot run that simulates in ~1.7 ms).
        """
        _stop_if_cancelled(cancel, self.name)
        simulator = self._simulator_for(pubs)
        counts: dict[int, dict[str, int]] = {}
        for shots, indices in _by_shots(pubs).items():
            group = [pubs[i] for i in indices]
            binds = [_parameter_binds(pub) for pub in group]
            result = simulator.run(
                [pub.circuit for pub in group],
                shots=shots,
                seed_simulator=self._seed(seed),
                parameter_binds=binds if any(binds) else None,
            ).result()
            for position, index in enumerate(indices):
                raw = result.get_counts(position)
                # One key per register, separated by spaces, the first register last:
                # joined, the rightmost bit is clbit 0 as in the sampler's join_data().
                counts[index] = {bits.replace(" ", ""): int(n) for bits, n in raw.items()}
        return [SampleResult(counts=counts[i], shots=pub.shots) for i, pub in enumerate(pubs)]

    def estimate(
        self,
        pubs: Sequence[EstimatePub],
        *,
        precision: float | None,
        seed: int | None,
        cancel: threading.Event | None = None,
    ) -> list[EstimateResult]:
        from qiskit_aer.primitives import EstimatorV2

        _stop_if_cancelled(cancel, self.name)
        options = {
            "default_precision": precision or 0.0,
            "run_options": {"seed_simulator": self._seed(seed)},
        }
        estimator = EstimatorV2.from_backend(self._simulator_for(pubs), options=options)
        job = estimator.run(
            [(p.circuit, list(p.observables), dict(p.parameter_values), p.precision) for p in pubs]
        )
        return [
            EstimateResult(
                evs=[float(v) for v in result.data.evs], stds=[float(v) for v in result.data.stds]
            )
            for result in job.result()
        ]

    def _seed(self, seed: int | None) -> int | None:
        return self._default_seed if seed is None else seed


class AerTarget(Block):
    """The qiskit-aer simulator, exact or with a simple noise model.

    Attributes:
        method: Aer's simulation method (``automatic`` lets Aer choose per circuit).
        device: ``CPU``, or ``GPU`` where this qiskit-aer build has one.
        seed_simulator: Seed used when a request gives none.
        depolarizing_1q: Depolarizing error of each ``sx``/``x`` gate.
        depolarizing_2q: Depolarizing error of each ``cx`` gate.
        readout_error: Probability that a measured bit is flipped.

    Example:
        ```python
        from limit_graph.blocks import AerTarget

        target = AerTarget(depolarizing_2q=0.01).get_target()
        target.describe().snapshot_id  # "aer-noise:sha256:..."
        ```
    """

    _block_type_name = "LIMIT Aer Target"
    _block_type_slug = "limit-aer-target"
    _description = "The qiskit-aer simulator as a LIMIT-Graph quantum target: exact or noisy."

    method: AerMethod = Field(default="automatic", description="Aer simulation method.")
    device: Literal["CPU", "GPU"] = Field(default="CPU", description="Where Aer simulates.")
    seed_simulator: int | None = Field(
        default=None, ge=0, description="Seed used when a request gives none."
    )
    depolarizing_1q: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Depolarizing error of sx and x gates."
    )
    depolarizing_2q: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Depolarizing error of cx gates."
    )
    readout_error: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Probability of flipping a measured bit."
    )

    def noise_settings(self) -> dict[str, Any] | None:
        """The noise model's settings, or ``None`` for exact simulation."""
        rates = (self.depolarizing_1q, self.depolarizing_2q, self.readout_error)
        if not any(rates):
            return None
        return {
            "basis_gates": list(_NOISE_BASIS),
            "depolarizing_1q": self.depolarizing_1q,
            "depolarizing_2q": self.depolarizing_2q,
            "readout_error": self.readout_error,
        }

    def noise_model(self) -> NoiseModel | None:
        """The Aer noise model these settings describe, or ``None`` for exact simulation."""
        if self.noise_settings() is None:
            return None
        from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

        model = NoiseModel(basis_gates=list(_NOISE_BASIS))
        if self.depolarizing_1q:
            model.add_all_qubit_quantum_error(
                depolarizing_error(self.depolarizing_1q, 1), ["sx", "x"]
            )
        if self.depolarizing_2q:
            model.add_all_qubit_quantum_error(depolarizing_error(self.depolarizing_2q, 2), ["cx"])
        if self.readout_error:
            p = self.readout_error
            model.add_all_qubit_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]))
        return model

    def get_target(self) -> SimulatorTarget:
        """The target these settings describe; a GPU this Aer build lacks is a ConfigError."""
        from qiskit_aer import AerSimulator

        probe = AerSimulator(method=self.method, noise_model=self.noise_model())
        if self.device not in probe.available_devices():
            raise ConfigError(
                f"Aer device {self.device!r} is not available here "
                f"(this qiskit-aer offers {', '.join(probe.available_devices())})"
            )
        probe.set_options(device=self.device)
        settings = self.noise_settings()
        info = TargetInfo(
            name="aer",
            kind="aer",
            num_qubits=int(probe.num_qubits),
            basis_gates=tuple(sorted(probe.operation_names)),
            snapshot_id="ideal" if settings is None else f"aer-noise:sha256:{sha256_hex(settings)}",
            simulator=True,
            versions=library_versions(),
            options={"method": self.method, "device": self.device, "noise": settings},
        )
        return SimulatorTarget(info, lambda: probe, default_seed=self.seed_simulator)


class FakeDeviceTarget(Block):
    """A noisy, offline simulation of an IBM device from ``qiskit_ibm_runtime.fake_provider``.

    Attributes:
        device: The device's name, case-insensitive: ``manila``, ``brisbane``, ``FakeManilaV2``.
        seed_simulator: Seed used when a request gives none.

    Example:
        ```python
        from limit_graph.blocks import FakeDeviceTarget

        target = FakeDeviceTarget(device="manila").get_target()
        target.num_qubits  # 5
        ```
    """

    _block_type_name = "LIMIT Fake Device Target"
    _block_type_slug = "limit-fake-device-target"
    _description = (
        "A noisy simulation of an IBM device (coupling map, basis gates, noise) from "
        "qiskit-ibm-runtime's fake provider, as a LIMIT-Graph quantum target; offline."
    )

    device: str = Field(default=..., min_length=1, description="Fake device, e.g. manila.")
    seed_simulator: int | None = Field(
        default=None, ge=0, description="Seed used when a request gives none."
    )

    def get_target(self) -> SimulatorTarget:
        """The target for this device; an unknown device is :class:`InvalidInput` naming
        the known ones."""
        from qiskit_aer import AerSimulator

        short = _device_key(self.device)
        devices = fake_devices()
        if short not in devices:
            raise InvalidInput(
                f"no fake device {self.device!r}; known devices: {', '.join(sorted(devices))}"
            )
        backend = devices[short]()
        info = TargetInfo(
            name=f"fake:{short}",
            kind="fake",
            num_qubits=int(backend.num_qubits),
            basis_gates=tuple(sorted(backend.operation_names)),
            snapshot_id=_calibration_id(backend),
            simulator=True,
            versions=library_versions(),
            options={"device": backend.name},
        )
        return SimulatorTarget(
            info,
            lambda: AerSimulator.from_backend(backend),
            transpile_backend=lambda: backend,
            default_seed=self.seed_simulator,
        )


def _device_key(device: str) -> str:
    """``FakeManilaV2``, ``fake_manila`` and ``Manila`` all name ``manila``."""
    key = device.strip().lower().replace("_", "")
    key = key.removeprefix("fake")
    return key.removesuffix("v2") if key.endswith("v2") and len(key) > 2 else key


@functools.cache
def fake_devices() -> dict[str, Callable[[], BackendV2]]:
    """The fake provider's devices by short name (``manila`` → ``FakeManilaV2``)."""
    from qiskit_ibm_runtime import fake_provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    found: dict[str, Callable[[], BackendV2]] = {}
    for attribute in dir(fake_provider):
        candidate = getattr(fake_provider, attribute)
        if isinstance(candidate, type) and issubclass(candidate, FakeBackendV2):
            found[_device_key(attribute)] = candidate
    return found


def _calibration_id(backend: BackendV2) -> str:
    """``<device>@<properties' last_update_date>/sha256:<hash of the properties file>``."""
    properties = backend.properties()
    stamp = properties.last_update_date.isoformat() if properties is not None else "unknown"
    snapshot = Path(backend.dirname) / backend.props_filename
    digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    return f"{backend.name}@{stamp}/sha256:{digest}"


def _ibm_target(backend: str, credentials_block: str | None) -> QuantumTarget:
    """``ibm:<backend>`` from :mod:`limit_graph.blocks.ibm`, imported only now: it needs
    IBM Quantum credentials and the network, which simulation never does.  The
    credentials are the block ``credentials_block`` if it exists, else the default one."""
    try:
        module = importlib.import_module("limit_graph.blocks.ibm")
    except ImportError as exc:
        raise InvalidInput(f"IBM targets are not available here: {exc}") from None
    names = [module.DEFAULT_CREDENTIALS_BLOCK]
    if credentials_block is not None and credentials_block not in names:
        names.insert(0, credentials_block)
    credentials = module.load_credentials(names)
    settings = module.IBMRuntimeTarget(backend_name=backend, credentials=credentials)
    target: QuantumTarget = settings.get_target()
    return target


def resolve_target(name: str, *, credentials_block: str | None = None) -> QuantumTarget:
    """The target called ``name`` (one of :data:`TARGET_FORMS`), built once per process
    and credentials (``fake:Manila`` and ``fake:manila`` are one target).

    An ``ibm:`` target signs in with ``credentials_block``, by default the block of the
    backend instance the running execution was routed to
    (:func:`~limit_graph.blocks.backends.ibm_credentials_block`) when that block exists,
    else the default ``limit-ibm-quantum``.  An unknown name is :class:`InvalidInput`
    listing the valid forms.

    >>> resolve_target("aer").describe().snapshot_id
    'ideal'
    """
    kind, _, rest = name.strip().partition(":")
    kind, rest = kind.lower(), rest.strip()
    if kind == "fake":
        rest = _device_key(rest)
    if kind == "ibm" and rest:
        instance = current_instance()
        if credentials_block is None and instance is not None:
            credentials_block = ibm_credentials_block(instance)
        return _build_target(kind, rest, credentials_block)
    if (kind == "aer" and not rest) or (kind == "fake" and rest):
        return _build_target(kind, rest, None)
    raise InvalidInput(f"unknown quantum target {name!r}; valid forms: {', '.join(TARGET_FORMS)}")


@functools.lru_cache(maxsize=64)
def _build_target(kind: str, rest: str, credentials_block: str | None) -> QuantumTarget:
    if kind == "aer":
        return AerTarget().get_target()
    if kind == "fake":
        return FakeDeviceTarget(device=rest).get_target()
    return _ibm_target(rest, credentials_block)
