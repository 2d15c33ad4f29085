"""Target names to ready targets: :func:`resolve_target`.

The simulator blocks are imported here; the IBM module only inside the function that
builds an ``ibm:`` target, since such a target needs IBM Quantum credentials and the
network, which simulation never does.

>>> resolve_target("fake:manila").num_qubits
5
"""

from __future__ import annotations

import functools

from limit_graph.blocks.backends import ibm_credentials_block
from limit_graph.blocks.quantum.aer import AerTarget
from limit_graph.blocks.quantum.fake import FakeDeviceTarget, device_key
from limit_graph.blocks.quantum.types import TARGET_FORMS, QuantumTarget
from limit_graph.core.errors import InvalidInput
from limit_graph.core.running import current_instance

__all__ = ["resolve_target"]


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
        rest = device_key(rest)
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


def _ibm_target(backend: str, credentials_block: str | None) -> QuantumTarget:
    """``ibm:<backend>``, signed in with the block ``credentials_block`` if it exists,
    else the default one.  The IBM module is imported only now (a plain import, which
    also fails when the module is blocked or broken: that is an :class:`InvalidInput`)."""
    try:
        from limit_graph.blocks.quantum.ibm import (
            DEFAULT_CREDENTIALS_BLOCK,
            IBMRuntimeTarget,
            load_credentials,
        )
    except ImportError as exc:
        raise InvalidInput(f"IBM targets are not available here: {exc}") from None
    names = [DEFAULT_CREDENTIALS_BLOCK]
    if credentials_block is not None and credentials_block not in names:
        names.insert(0, credentials_block)
    credentials = load_credentials(names)
    settings = IBMRuntimeTarget(backend_name=backend, credentials=credentials)
    target: QuantumTarget = settings.get_target()
    return target
