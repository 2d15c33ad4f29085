"""The ``ibm:<backend>`` quantum target: IBM Quantum hardware through qiskit-ibm-runtime.

:class:`IBMQuantumCredentials` holds the API key and instance (CRN) as secrets;
:class:`IBMRuntimeTarget` names a device, an execution mode (one job at a time, or jobs
grouped in a ``Session`` or a ``Batch``) and the job options, and its ``get_target()``
gives an :class:`IBMTarget`, the :class:`~limit_graph.blocks.quantum.types.QuantumTarget` that
runs sampler and estimator PUBs on the device.  Results carry the job id and the job's
queue and QPU (usage) seconds; a caller's ``threading.Event`` cancels the job at IBM.

Why qiskit-ibm-runtime and not prefect-qiskit's ``QuantumRuntime`` block (0.2.1):
prefect-qiskit talks to the REST API with its own aiohttp client and submits to the
server-side ``sampler``/``estimator`` programs, the path of the ``SamplerV2``/
``EstimatorV2`` classes that qiskit-ibm-runtime 0.50 deprecated; it has no Session or
Batch mode and no job cancellation; and it runs every primitive call as a Prefect task
with its own retries, where this platform calls work inline and retries it itself
(DESIGN.md).  It would also add aiohttp and diskcache.  Its block layout (settings in
the block, the client from a method) is kept.  The primitives used here are the
client-side ``executor_sampler.Sampler`` and ``executor_estimator.Estimator``, which
post-process ``executor`` jobs on this side.

The parts: :mod:`~limit_graph.blocks.quantum.ibm_credentials` (the credentials block),
:mod:`~limit_graph.blocks.quantum.ibm_target` (the target and its results),
:mod:`~limit_graph.blocks.quantum.ibm_errors` (what the client's failures become); this
module holds the target block and names them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from prefect.blocks.core import Block
from pydantic import Field

from limit_graph.blocks.quantum.ibm_credentials import (
    DEFAULT_CREDENTIALS_BLOCK,
    IBMQuantumCredentials,
    load_credentials,
)
from limit_graph.blocks.quantum.ibm_errors import JobCancelled, ibm_call
from limit_graph.blocks.quantum.ibm_target import (
    IBMEstimateResult,
    IBMJobRecord,
    IBMSampleResult,
    IBMTarget,
)
from limit_graph.core.errors import ConfigError

if TYPE_CHECKING:
    from prefect.client.schemas import BlockDocument

__all__ = [
    "DEFAULT_CREDENTIALS_BLOCK",
    "IBMEstimateResult",
    "IBMJobRecord",
    "IBMQuantumCredentials",
    "IBMRuntimeTarget",
    "IBMSampleResult",
    "IBMTarget",
    "JobCancelled",
    "load_credentials",
]


class IBMRuntimeTarget(Block):
    """An IBM Quantum device as a LIMIT-Graph quantum target.

    Attributes:
        backend_name: The device, e.g. ``ibm_brisbane``.
        mode: ``job`` submits each call on its own; ``session`` and ``batch`` open one
            Session or Batch on the first call and submit every later call in it.
        credentials: The credentials, held as a nested block (saved first, to be saved
            in a target); if unset, the block named by ``credentials_block`` is loaded.
        credentials_block: Name of the credentials block to load.
        max_execution_time: Seconds of QPU time one job may take; IBM cancels it after.
        max_session_seconds: Longest life of a Session or Batch; ``None``: IBM's maximum.
        resilience_level: The estimator's error mitigation (0 none, 1 TREX, 2 ZNE).
        job_tags: Tags put on every job, to find them at IBM.
        poll_interval_s: Seconds between status checks (and cancellation checks).

    Example:
        ```python
        from limit_graph.blocks.quantum.ibm import IBMRuntimeTarget

        target = IBMRuntimeTarget(backend_name="ibm_brisbane", mode="batch").get_target()
        results = target.sample(pubs, seed=None)
        results[0].job.usage_seconds
        ```
    """

    _block_type_name = "LIMIT IBM Runtime Target"
    _block_type_slug = "limit-ibm-runtime-target"
    _description = "An IBM Quantum device (job, Session or Batch mode) as a quantum target."

    backend_name: str = Field(default=..., min_length=1, description="IBM device name.")
    mode: Literal["job", "session", "batch"] = Field(
        default="job", description="Execution mode: job, session or batch."
    )
    credentials: IBMQuantumCredentials | None = Field(
        default=None, description="IBM Quantum credentials (a nested block)."
    )
    credentials_block: str = Field(
        default=DEFAULT_CREDENTIALS_BLOCK, description="Credentials block loaded if none set."
    )
    max_execution_time: int | None = Field(
        default=None, ge=1, description="QPU seconds one job may take."
    )
    max_session_seconds: int | None = Field(
        default=None, ge=1, description="Longest life of a Session or Batch."
    )
    resilience_level: Literal[0, 1, 2] = Field(
        default=1, description="Estimator error mitigation level."
    )
    job_tags: list[str] = Field(default_factory=list, description="Tags put on every job.")
    poll_interval_s: float = Field(
        default=2.0, gt=0, le=60, description="Seconds between job status checks."
    )

    def _to_block_document(
        self,
        name: str | None = None,
        block_schema_id: Any = None,
        block_type_id: Any = None,
        is_anonymous: bool | None = None,
        include_secrets: bool = False,
    ) -> BlockDocument:
        """Prefect's document of the block; a save is refused while ``credentials`` is a
        block not saved itself, whose API key Prefect would keep in this document in the
        clear (a saved one is kept as a reference to its own document, sealed)."""
        unsaved = self.credentials is not None and self.credentials._block_document_id is None
        if include_secrets and unsaved:
            raise ConfigError(
                "save the IBM Quantum credentials as a block of their own first "
                "(credentials.save(name)), then this target: nested unsaved, their API key "
                "would be stored in the clear in the target's block"
            )
        return super()._to_block_document(
            name, block_schema_id, block_type_id, is_anonymous, include_secrets
        )

    def get_target(self) -> IBMTarget:
        """Sign in and fetch the device's configuration: the ready target."""
        credentials = self.credentials or self._load_credentials()
        service = credentials.get_service()
        backend = ibm_call(
            f"finding {self.backend_name}",
            credentials.label(),
            lambda: service.backend(self.backend_name),
        )
        return IBMTarget(self, credentials, backend)

    def _load_credentials(self) -> IBMQuantumCredentials:
        return load_credentials([self.credentials_block])
