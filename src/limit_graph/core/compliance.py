"""What the pre-task checks read of a piece of work, without importing what runs it.

Governance sits below the agents and the quantum targets in the floor plan, so a check
never parses a circuit or resolves a target itself.  An agent that runs circuits gives
a :class:`WorkProfile` of its validated inputs (``AgentSpec.profile``): each circuit's
width, depth, two-qubit gates and operations, the shots asked for, and the target's own
:class:`TargetLimits`.  After the run, ``AgentSpec.usage`` reads what the work used
(:class:`Usage`) from its result, which is what quotas are reconciled with.

>>> profile = WorkProfile(
...     target="fake:manila",
...     circuits=(CircuitProfile(num_qubits=2, depth=3, two_qubit_gates=1,
...                              operations=frozenset({"h", "cx", "measure"}), shots=100),),
... )
>>> profile.shots, profile.max_qubits
(100, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CLASSIFICATIONS",
    "CircuitProfile",
    "DataClass",
    "TargetLimits",
    "Usage",
    "WorkProfile",
]

DataClass = Literal["pii", "restricted"]

CLASSIFICATIONS: tuple[DataClass, ...] = ("pii", "restricted")
"""The data classes an input may be tagged with; untagged inputs are unrestricted."""


@dataclass(frozen=True)
class TargetLimits:
    """What a quantum target can run: its width, native gates, coupling and shot cap.

    ``coupling`` is ``None`` for an all-to-all target (a simulator); ``max_shots`` is
    ``None`` where the target sets no cap of its own.
    """

    name: str
    num_qubits: int | None
    basis_gates: frozenset[str]
    coupling: tuple[tuple[int, int], ...] | None = None
    max_shots: int | None = None
    simulator: bool = True


@dataclass(frozen=True)
class CircuitProfile:
    """One circuit as written (before transpiling): what the circuit-limits check reads."""

    num_qubits: int
    depth: int
    two_qubit_gates: int
    operations: frozenset[str]
    shots: int = 0


@dataclass(frozen=True)
class WorkProfile:
    """What one execution asks a quantum target for."""

    target: str | None
    circuits: tuple[CircuitProfile, ...] = ()
    limits: TargetLimits | None = None
    qpu_seconds_estimate: float = 0.0
    """What a quota reserves for QPU time before the run; reconciled with the real use."""

    @property
    def shots(self) -> int:
        return sum(c.shots for c in self.circuits)

    @property
    def max_qubits(self) -> int:
        return max((c.num_qubits for c in self.circuits), default=0)


@dataclass(frozen=True)
class Usage:
    """What a finished execution used, read from its result."""

    shots: int = 0
    qpu_seconds: float = 0.0
