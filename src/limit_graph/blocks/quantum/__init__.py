"""Quantum targets: one :class:`QuantumTarget` protocol, the blocks behind it, and
:func:`resolve_target`, which turns a target name into a ready target.

========================  ==============================================================
name                      what runs it
========================  ==============================================================
``aer``                   :class:`AerTarget`: qiskit-aer, exact unless the block sets a
                          noise model; ``method``, ``device``, ``seed_simulator``
``fake:<device>``         :class:`FakeDeviceTarget`: a device of
                          ``qiskit_ibm_runtime.fake_provider`` (coupling map, basis gates,
                          noise), simulated offline by Aer
``ibm:<backend>``         ``IBMRuntimeTarget`` in :mod:`limit_graph.blocks.quantum.ibm`,
                          imported only when such a name is resolved
========================  ==============================================================

One module per part, none importing a module that imports it:

- ``types``: the protocol and its data (:class:`TargetInfo`, the PUBs and results,
  ``TargetLimits``), imported by every other module, importing none of them;
- ``simulator``: :class:`SimulatorTarget`, the Aer engine of ``aer`` and ``fake:``;
- ``aer`` and ``fake``: the simulator blocks;
- ``ibm``: the IBM Quantum target block, on ``ibm_credentials`` (the credentials
  block), ``ibm_target`` (the target) and ``ibm_errors`` (what the client's failures
  become), which import ``types`` alone;
- ``resolver``: :func:`resolve_target`.

Blocks hold settings and give a target with ``get_target()`` (prefect-qiskit's
convention: settings in the block, the client from a method).  Targets take circuits
already transpiled for them (:meth:`QuantumTarget.transpile`); the adapter in
``tasks/quantum/primitives.py`` does that and records the provenance.  qiskit-aer and
the fake provider are imported on first use: they add ~2 s to a process that never
simulates (the API, the CLI).

>>> target = resolve_target("fake:manila")
>>> target.num_qubits, target.limits().coupling[:2]
(5, ((0, 1), (1, 0)))
"""

from limit_graph.blocks.quantum.aer import AerMethod, AerTarget
from limit_graph.blocks.quantum.fake import FakeDeviceTarget, fake_devices
from limit_graph.blocks.quantum.resolver import resolve_target
from limit_graph.blocks.quantum.simulator import SimulatorTarget
from limit_graph.blocks.quantum.types import (
    TARGET_FORMS,
    EstimatePub,
    EstimateResult,
    QuantumTarget,
    SamplePub,
    SampleResult,
    TargetInfo,
    TargetLimits,
    coupling_edges,
    library_versions,
)

__all__ = [
    "TARGET_FORMS",
    "AerMethod",
    "AerTarget",
    "EstimatePub",
    "EstimateResult",
    "FakeDeviceTarget",
    "QuantumTarget",
    "SamplePub",
    "SampleResult",
    "SimulatorTarget",
    "TargetInfo",
    "TargetLimits",
    "coupling_edges",
    "fake_devices",
    "library_versions",
    "resolve_target",
]
