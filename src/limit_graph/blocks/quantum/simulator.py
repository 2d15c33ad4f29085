"""The Aer engine behind the ``aer`` and ``fake:`` targets: :class:`SimulatorTarget`
runs sampler PUBs on an :class:`~qiskit_aer.AerSimulator` and estimator PUBs through
Aer's ``EstimatorV2``.  The blocks (``aer.py``, ``fake.py``) only say which simulator
to build and what to transpile for; qiskit-aer is imported on first use.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from limit_graph.blocks.quantum.types import (
    EstimatePub,
    EstimateResult,
    SamplePub,
    SampleResult,
    TargetInfo,
    TargetLimits,
    coupling_edges,
)
from limit_graph.core.errors import BackendError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.providers import BackendV2
    from qiskit_aer import AerSimulator

__all__ = ["NARROW_QUBITS", "PASS_MANAGERS_KEPT", "SimulatorTarget"]


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

    def limits(self) -> TargetLimits:
        """Its width and operations, and the coupling of what it transpiles for: none for
        ``aer`` (all-to-all), the device's edges for a fake device.  A simulator runs any
        number of shots, so ``max_shots`` is ``None`` (the agents cap shots themselves)."""
        return self._limits

    @functools.cached_property
    def _limits(self) -> TargetLimits:
        coupling = None if self._all_to_all else self._transpile_target.build_coupling_map()
        return TargetLimits(
            name=self.name,
            num_qubits=self.num_qubits,
            basis_gates=frozenset(self._info.basis_gates),
            coupling=None if coupling is None else coupling_edges(coupling.get_edges()),
            max_shots=None,
            simulator=True,
        )

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
