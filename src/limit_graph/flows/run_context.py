"""The run context a runner reports with each result: the library versions of the
process that ran the work, the seed its validated inputs carry, and -- for quantum work
-- the target they name, with the noise or calibration snapshot it simulated.

It is the runner's to say, not the control plane's: the runner is where the libraries
ran, possibly on another machine with other versions than the API's.

>>> from limit_graph.tasks.quantum.agents import SampleInput
>>> qasm = 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; c = measure q;'
>>> inputs = SampleInput.model_validate(
...     {"target": "aer", "seed": 3, "pubs": [{"circuit": {"format": "qasm3", "source": qasm}}]}
... )
>>> context = runner_context(inputs, quantum=True)
>>> context.seed, context.target.name, context.target.snapshot_id
(3, 'aer', 'ideal')
"""

from __future__ import annotations

import functools

from pydantic import BaseModel

from limit_graph.blocks.quantum import SimulatorTarget, resolve_target
from limit_graph.core.errors import LimitError
from limit_graph.core.run_context import RunContext, TargetSnapshot, run_context, seed_of

__all__ = ["runner_context", "target_snapshot"]


def runner_context(inputs: BaseModel, *, quantum: bool) -> RunContext:
    """The context of a run of ``inputs`` here; ``quantum``: work of the quantum pool,
    whose ``target`` input names a quantum target."""
    name = getattr(inputs, "target", None) if quantum else None
    target = target_snapshot(name) if isinstance(name, str) else None
    return run_context(seed_of(inputs), target)


@functools.lru_cache(maxsize=64)
def target_snapshot(name: str) -> TargetSnapshot | None:
    """The target ``name`` resolves to here, as a snapshot: a simulator's noise or
    calibration id and options; a device's name alone (reading its calibration again
    would cost a call to IBM, and no seed makes its shots repeat anyway).  ``None`` for
    a name that resolves to no target."""
    try:
        target = resolve_target(name)
    except LimitError:
        return None
    if not isinstance(target, SimulatorTarget):
        return TargetSnapshot(name=target.name, simulator=False)
    info = target.describe()
    return TargetSnapshot(
        name=info.name, snapshot_id=info.snapshot_id, simulator=True, options=dict(info.options)
    )
