"""The ``aer`` target's block: the qiskit-aer simulator, exact or with a simple noise
model, as settings a Prefect block holds; :meth:`AerTarget.get_target` builds the
:class:`~limit_graph.blocks.quantum.simulator.SimulatorTarget` they describe.

>>> AerTarget(readout_error=0.01).noise_settings()["basis_gates"]
['id', 'rz', 'sx', 'x', 'cx']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from prefect.blocks.core import Block
from pydantic import Field

from limit_graph.blocks.quantum.simulator import SimulatorTarget
from limit_graph.blocks.quantum.types import TargetInfo, library_versions
from limit_graph.core.canonical import sha256_hex
from limit_graph.core.errors import ConfigError

if TYPE_CHECKING:
    from qiskit_aer.noise import NoiseModel

__all__ = ["AerMethod", "AerTarget"]

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
