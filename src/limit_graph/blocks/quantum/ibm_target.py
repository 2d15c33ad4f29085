"""The :class:`IBMTarget`: sampler and estimator PUBs run on one IBM device, in job,
Session or Batch mode, each result with its job's record (id, queue and QPU seconds);
a caller's ``threading.Event`` cancels the job at IBM.  Made by the block
``IBMRuntimeTarget`` (:mod:`limit_graph.blocks.quantum.ibm`)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from limit_graph.blocks.quantum.ibm_credentials import IBMQuantumCredentials
from limit_graph.blocks.quantum.ibm_errors import JobCancelled, ibm_call, ibm_failures
from limit_graph.blocks.quantum.types import (
    EstimatePub,
    EstimateResult,
    SamplePub,
    SampleResult,
    TargetInfo,
    TargetLimits,
    coupling_edges,
    library_versions,
)
from limit_graph.core.errors import BackendError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit_ibm_runtime import RuntimeJobV2

__all__ = ["IBMEstimateResult", "IBMJobRecord", "IBMSampleResult", "IBMTarget", "TargetSettings"]

_FINAL = ("DONE", "CANCELLED", "ERROR")
_T = TypeVar("_T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IBMJobRecord:
    """What IBM reports about a finished job: where it ran and the time it took.

    ``queue_seconds`` runs from creation to the start of running; ``usage_seconds`` is
    the QPU time IBM bills.  Either is ``None`` when IBM has not reported it (yet).
    """

    job_id: str
    backend: str
    mode: Literal["job", "session", "batch"]
    session_id: str | None
    queue_seconds: float | None
    usage_seconds: float | None


@dataclass(frozen=True)
class IBMSampleResult(SampleResult):
    """A :class:`SampleResult` with the job's record."""

    job: IBMJobRecord | None = None


@dataclass(frozen=True)
class IBMEstimateResult(EstimateResult):
    """An :class:`EstimateResult` with the job's record."""

    job: IBMJobRecord | None = None


class TargetSettings(Protocol):
    """What an :class:`IBMTarget` reads of its block (``IBMRuntimeTarget``)."""

    @property
    def mode(self) -> Literal["job", "session", "batch"]: ...
    @property
    def max_execution_time(self) -> int | None: ...
    @property
    def max_session_seconds(self) -> int | None: ...
    @property
    def resilience_level(self) -> Literal[0, 1, 2]: ...
    @property
    def job_tags(self) -> list[str]: ...
    @property
    def poll_interval_s(self) -> float: ...


class IBMTarget:
    """The :class:`~limit_graph.blocks.quantum.types.QuantumTarget` for one IBM device.

    Thread-safe; a Session or Batch it opens is closed by :meth:`close` (or ``with``).
    ``seed`` is accepted and ignored: hardware shots cannot be seeded.
    """

    def __init__(
        self, settings: TargetSettings, credentials: IBMQuantumCredentials, backend: Any
    ) -> None:
        self.name = f"ibm:{backend.name}"
        self.num_qubits: int | None = int(backend.configuration().n_qubits)
        self._settings = settings
        self._credentials = credentials
        self._backend = backend
        self._lock = threading.Lock()
        self._open_mode: Any = None

    def __repr__(self) -> str:
        return f"IBMTarget({self.name!r}, mode={self._settings.mode!r})"

    def __enter__(self) -> IBMTarget:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def describe(self) -> TargetInfo:
        """The device now: its calibration snapshot is fetched fresh from IBM."""
        properties = self._call(
            "reading calibration", lambda: self._backend.properties(refresh=True)
        )
        stamp = properties.last_update_date.isoformat() if properties is not None else "unknown"
        document = json.dumps(
            properties.to_dict() if properties is not None else None, sort_keys=True, default=str
        )
        digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
        settings = self._settings
        return TargetInfo(
            name=self.name,
            kind="ibm",
            num_qubits=self.num_qubits,
            basis_gates=tuple(sorted(self._backend.operation_names)),
            snapshot_id=f"{self._backend.name}@{stamp}/sha256:{digest}",
            simulator=False,
            versions=library_versions(),
            options={
                "mode": settings.mode,
                "channel": self._credentials.channel,
                "max_execution_time": settings.max_execution_time,
                "resilience_level": settings.resilience_level,
            },
        )

    def limits(self) -> TargetLimits:
        """What the device runs: its qubits, operations and directed coupling edges from
        the backend's target (which the client builds on first use, fetching the
        device's properties), and ``max_shots`` from its configuration.  Built once."""
        return self._limits

    @functools.cached_property
    def _limits(self) -> TargetLimits:
        configuration = self._backend.configuration()
        coupling = self._backend.coupling_map
        max_shots = getattr(configuration, "max_shots", None)
        return TargetLimits(
            name=self.name,
            num_qubits=self.num_qubits,
            basis_gates=frozenset(self._backend.operation_names),
            coupling=None if coupling is None else coupling_edges(coupling.get_edges()),
            max_shots=int(max_shots) if isinstance(max_shots, int) and max_shots > 0 else None,
            simulator=False,
        )

    def transpile(
        self, circuit: QuantumCircuit, *, optimization_level: int, seed: int | None
    ) -> QuantumCircuit:
        """``circuit`` for this device's target (ISA), as IBM's preset pass managers make it."""
        from qiskit.transpiler import generate_preset_pass_manager

        manager = generate_preset_pass_manager(
            optimization_level=optimization_level, backend=self._backend, seed_transpiler=seed
        )
        return manager.run(circuit)

    def sample(
        self,
        pubs: Sequence[SamplePub],
        *,
        seed: int | None,  # noqa: ARG002 - the protocol's; hardware shots take no seed
        cancel: threading.Event | None = None,
    ) -> list[IBMSampleResult]:
        """Counts for each PUB from one job; ``cancel`` set while waiting cancels the job."""
        from qiskit_ibm_runtime.executor_sampler import Sampler
        from qiskit_ibm_runtime.options_models.sampler import SamplerOptions

        options = SamplerOptions(
            max_execution_time=self._settings.max_execution_time,
            environment={"job_tags": list(self._settings.job_tags)},
        )
        job, results, record = self._run(
            lambda mode: Sampler(mode=mode, options=options).run(
                [(p.circuit, dict(p.parameter_values) or None, p.shots) for p in pubs]
            ),
            cancel,
        )
        return [
            IBMSampleResult(
                counts=dict(result.join_data().get_counts()),
                shots=pub.shots,
                job_id=job.job_id(),
                queue_s=record.queue_seconds,
                usage_s=record.usage_seconds,
                job=record,
            )
            for pub, result in zip(pubs, results, strict=True)
        ]

    def estimate(
        self,
        pubs: Sequence[EstimatePub],
        *,
        precision: float | None,
        seed: int | None,  # noqa: ARG002 - the protocol's; hardware shots take no seed
        cancel: threading.Event | None = None,
    ) -> list[IBMEstimateResult]:
        """Expectation values and standard errors for each PUB from one job."""
        from qiskit_ibm_runtime.executor_estimator import Estimator
        from qiskit_ibm_runtime.options_models.estimator import EstimatorOptions

        options = EstimatorOptions(
            resilience_level=self._settings.resilience_level,
            max_execution_time=self._settings.max_execution_time,
            environment={"job_tags": list(self._settings.job_tags)},
        )
        job, results, record = self._run(
            lambda mode: Estimator(mode=mode, options=options).run(
                [
                    (p.circuit, list(p.observables), dict(p.parameter_values) or None, p.precision)
                    for p in pubs
                ],
                precision=precision,
            ),
            cancel,
        )
        return [
            IBMEstimateResult(
                evs=[float(v) for v in result.data.evs],
                stds=[float(v) for v in result.data.stds],
                job_id=job.job_id(),
                queue_s=record.queue_seconds,
                usage_s=record.usage_seconds,
                job=record,
            )
            for result in results
        ]

    def close(self) -> None:
        """Close the open Session or Batch: its running jobs finish, no new ones start."""
        with self._lock:
            opened, self._open_mode = self._open_mode, None
        if opened is not None:
            self._call("closing the session", opened.close)

    def _run(
        self, submit: Callable[[Any], RuntimeJobV2], cancel: threading.Event | None
    ) -> tuple[RuntimeJobV2, Any, IBMJobRecord]:
        mode = self._call("opening the session", self._execution_mode)
        try:
            job = self._call("submitting the job", lambda: submit(mode))
        except BackendError:
            self._forget_mode(mode)
            raise
        self._wait(job, cancel)
        if job.status() == "CANCELLED":
            raise JobCancelled(f"IBM job {job.job_id()} was cancelled at IBM", job.job_id())
        results = self._call(f"fetching job {job.job_id()}", job.result)
        return job, results, self._record(job)

    def _execution_mode(self) -> Any:
        """The backend (job mode) or the open Session or Batch, opening it if need be."""
        if self._settings.mode == "job":
            return self._backend
        from qiskit_ibm_runtime import Batch, Session

        with self._lock:
            if self._open_mode is None:
                kind = Session if self._settings.mode == "session" else Batch
                self._open_mode = kind(self._backend, max_time=self._settings.max_session_seconds)
            return self._open_mode

    def _forget_mode(self, mode: Any) -> None:
        """Drop a Session or Batch a submission failed in, so the retry opens a new one."""
        with self._lock:
            if self._open_mode is mode:
                self._open_mode = None

    def _wait(self, job: RuntimeJobV2, cancel: threading.Event | None) -> None:
        stop = cancel or threading.Event()
        while not stop.is_set():
            if self._call(f"polling job {job.job_id()}", job.status) in _FINAL:
                return
            stop.wait(self._settings.poll_interval_s)
        try:
            job.cancel()
        except ibm_failures() as exc:
            outcome = f"IBM did not take the cancel request ({exc})"
        else:
            outcome = "IBM took the cancel request"
        raise JobCancelled(
            f"IBM job {job.job_id()} cancelled by the caller: {outcome}", job.job_id()
        )

    def _record(self, job: RuntimeJobV2) -> IBMJobRecord:
        try:
            metrics: dict[str, Any] = job.metrics()
        except ibm_failures() as exc:  # the results are in hand; metrics must not lose them
            log.warning("no metrics for IBM job %s: %s", job.job_id(), exc)
            metrics = {}
        stamps = metrics.get("timestamps") or {}
        usage = metrics.get("usage") or {}
        billed = usage.get("qpu_charge_time_seconds") if usage.get("status") != "pending" else None
        return IBMJobRecord(
            job_id=job.job_id(),
            backend=self._backend.name,
            mode=self._settings.mode,
            session_id=job.session_id if self._settings.mode != "job" else None,
            queue_seconds=_seconds_between(stamps.get("created"), stamps.get("running")),
            usage_seconds=float(billed) if isinstance(billed, int | float) else None,
        )

    def _call(self, doing: str, call: Callable[[], _T]) -> _T:
        return ibm_call(f"{doing} on {self.name}", self._credentials.label(), call)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
