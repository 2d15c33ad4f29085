"""The ``fake:<device>`` targets: a device of ``qiskit_ibm_runtime.fake_provider``
(coupling map, basis gates, noise) simulated offline by Aer.  :class:`FakeDeviceTarget`
is the block; :func:`fake_devices` lists the devices by short name.

>>> FakeDeviceTarget(device="FakeManilaV2").get_target().name
'fake:manila'
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prefect.blocks.core import Block
from pydantic import Field

from limit_graph.blocks.quantum.simulator import SimulatorTarget
from limit_graph.blocks.quantum.types import TargetInfo, library_versions
from limit_graph.core.errors import InvalidInput

if TYPE_CHECKING:
    from qiskit.providers import BackendV2

__all__ = ["FakeDeviceTarget", "device_key", "fake_devices"]


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

        short = device_key(self.device)
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


def device_key(device: str) -> str:
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
            found[device_key(attribute)] = candidate
    return found


def _calibration_id(backend: BackendV2) -> str:
    """``<device>@<properties' last_update_date>/sha256:<hash of the properties file>``."""
    properties = backend.properties()
    stamp = properties.last_update_date.isoformat() if properties is not None else "unknown"
    snapshot = Path(backend.dirname) / backend.props_filename
    digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    return f"{backend.name}@{stamp}/sha256:{digest}"
