"""What a run depended on besides its agent and inputs, so that it can be run again.

An execution's result follows from its agent (name and version) and its canonical
inputs -- and, beyond them, from the library versions of the process that ran it, the
seed (given, or the agent's default), and for quantum work the target and its noise or
calibration snapshot.  :class:`RunContext` records those with the execution, and so in
its final ledger entry: what a replay (:mod:`limit_graph.orchestration.replay`) repeats
and, when the result differs, names.

Library versions are read once per process (:func:`library_versions`): an execution
pays for a field, not for a metadata lookup.

>>> context = run_context(seed=7)
>>> context.seed, sorted(context.versions)[:2]
(7, ['limit-graph', 'numpy'])
>>> comparable_result({"counts": {"00": 3}, "metadata": {"seed": 7, "duration_s": 0.1}})
{'counts': {'00': 3}, 'metadata': {'seed': 7}}
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "LIBRARIES",
    "MEASURED_FIELDS",
    "RunContext",
    "TargetSnapshot",
    "comparable_result",
    "library_versions",
    "run_context",
    "seed_of",
]

LIBRARIES = ("limit-graph", "qiskit", "qiskit-aer", "qiskit-ibm-runtime", "numpy", "scipy")
"""The distributions whose versions can change a result (with Python's own)."""

MEASURED_FIELDS = frozenset(
    {"transpile_s", "duration_s", "queue_s", "usage_s", "job_id", "job_ids"}
)
"""Result fields, at any depth, that measure a run rather than compute its answer (how
long it took, a device's job ids and billed time): no rerun repeats them, so a replay
compares results without them."""

_Text = Annotated[str, StringConstraints(max_length=200)]


class _Context(BaseModel):
    """Strict: a runner reports it in JSON, where a seed is a number and a flag a boolean."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TargetSnapshot(_Context):
    """The quantum target a run used, as it was: its name, the noise or calibration
    snapshot it simulated (``ideal``, a noise-settings hash, a fake device's properties
    date and hash; ``None`` for a device, whose calibration moves under it), and its
    options (Aer's method and noise settings, the fake device's backend name)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    snapshot_id: _Text | None = None
    simulator: bool
    options: dict[str, Any] = Field(default_factory=dict, max_length=32)


class RunContext(_Context):
    """Library versions, seed and target of one run (see the module's docstring)."""

    versions: dict[_Text, _Text] = Field(
        max_length=64, description="Distribution name (and `python`) → version."
    )
    seed: int | None = Field(
        default=None, description="The seed the run used: given, or the agent's default."
    )
    target: TargetSnapshot | None = Field(
        default=None, description="The quantum target and its snapshot, for quantum work."
    )

    def without_inputs(self) -> RunContext:
        """Only what says nothing of the inputs (the versions): what a sensitive
        execution records, since its seed and target are among its sealed inputs."""
        if self.seed is None and self.target is None:
            return self
        return RunContext(versions=self.versions)


@functools.cache
def library_versions() -> Mapping[str, str]:
    """Python's version and each of :data:`LIBRARIES`' (``not installed`` if absent),
    read once per process."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


@functools.cache
def _plain_context() -> RunContext:
    return RunContext(versions=dict(library_versions()))


def run_context(seed: int | None = None, target: TargetSnapshot | None = None) -> RunContext:
    """The context of a run in this process with ``seed`` on ``target`` (the same
    object for every run with neither: a local ``echo`` builds nothing)."""
    plain = _plain_context()
    if seed is None and target is None:
        return plain
    return plain.model_copy(update={"seed": seed, "target": target})


def seed_of(inputs: BaseModel) -> int | None:
    """The seed validated inputs carry (given, or the default of the model's ``seed``
    field), if the agent takes one."""
    seed = getattr(inputs, "seed", None)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def comparable_result(result: Any) -> Any:
    """``result`` without its :data:`MEASURED_FIELDS`: the part a replay must repeat."""
    if isinstance(result, dict):
        return {k: comparable_result(v) for k, v in result.items() if k not in MEASURED_FIELDS}
    if isinstance(result, list):
        return [comparable_result(v) for v in result]
    return result
