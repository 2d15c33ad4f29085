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

What the client and the libraries under it raise when IBM or the network fails
(qiskit-ibm-runtime's errors, each a ``QiskitError``; ibm-cloud-sdk-core's ``ApiException``
from IAM; requests' ``RequestException``) becomes a
:class:`~limit_graph.core.errors.BackendError`: ``retryable`` when IBM or the network
failed on the way (5xx after the client's own retries, 408/429, no connection), not when
IBM refused the request; refused credentials (IAM, 401, 403) name the credentials block.
:class:`JobCancelled` is the one subclass.  Anything else (a ``TypeError`` of a bug, a
platform error such as a missing credentials block's
:class:`~limit_graph.core.errors.ConfigError`) propagates as it is.

The client derives IBM's hosts from ``url`` (``https://cloud.ibm.com`` by default:
``quantum.`` for the API, ``iam.`` and ``api.global-search-tagging.`` for the account);
``proxy_url`` sends every request through an HTTP proxy, which is also how the tests
reach a local stand-in of IBM.  The client signs its API requests with a token from
``IAM_URL`` (an environment variable), else ``https://iam.cloud.ibm.com``, whatever
``url`` says.

>>> crn = "crn:v1:bluemix:public:quantum-computing:eu-de:a/0:0::"
>>> IBMQuantumCredentials(api_key="key", instance=crn).runtime_api_url()
'https://eu-de.quantum.cloud.ibm.com/api/v1'
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from prefect.blocks.abstract import CredentialsBlock
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

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
from limit_graph.blocks.sealed_secrets import open_block_secret, seal_block_secret
from limit_graph.core.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from prefect.client.schemas import BlockDocument
    from qiskit import QuantumCircuit
    from qiskit_ibm_runtime import QiskitRuntimeService, RuntimeJobV2

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

DEFAULT_CREDENTIALS_BLOCK = "limit-ibm-quantum"
"""The credentials block an :class:`IBMRuntimeTarget` loads when it holds none."""

_FINAL = ("DONE", "CANCELLED", "ERROR")
_T = TypeVar("_T")

log = logging.getLogger(__name__)


class JobCancelled(BackendError):
    """The caller cancelled the job (or someone did at IBM): nothing to retry."""

    status_code = 409
    title = "Backend job cancelled"
    slug = "backend-job-cancelled"

    def __init__(self, detail: str, job_id: str) -> None:
        super().__init__(detail, retryable=False)
        self.job_id = job_id

    def extras(self) -> dict[str, Any]:
        return {**super().extras(), "job_id": self.job_id}


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


class IBMQuantumCredentials(CredentialsBlock):
    """An IBM Quantum Platform API key and service instance.

    The API key is saved sealed under the platform's key-encryption key (Prefect's
    database holds its ciphertext only; :mod:`limit_graph.blocks.sealed_secrets`), so
    the process that saves the block and every runner that uses it need
    ``LIMIT_DATA_KEK`` (or ``LIMIT_DATA_KEK_FILE``).  A key saved before, or typed into
    the Prefect UI, is read as it is, and sealed when the block is next saved here.

    Attributes:
        api_key: IBM Cloud API key.
        instance: The instance's CRN (or name); ``None`` lets the client pick one.
        channel: The client's channel; ``ibm_cloud`` is the legacy name of the same API.
        url: IBM Cloud base URL; ``None`` is ``https://cloud.ibm.com``.
        proxy_url: HTTP proxy for every request to IBM, if the network needs one.

    Example:
        ```python
        from limit_graph.blocks.quantum.ibm import IBMQuantumCredentials

        credentials = IBMQuantumCredentials(api_key="...", instance="crn:v1:...")
        credentials.save("limit-ibm-quantum")
        service = credentials.get_service()
        ```
    """

    _block_type_name = "LIMIT IBM Quantum Credentials"
    _block_type_slug = "limit-ibm-quantum-credentials"
    _description = "An IBM Quantum Platform API key and instance (CRN) for the ibm: targets."

    api_key: SecretStr = Field(default=..., description="IBM Cloud API key.")
    instance: SecretStr | None = Field(
        default=None, description="Instance CRN or name; empty lets the client choose."
    )
    channel: Literal["ibm_quantum_platform", "ibm_cloud"] = Field(
        default="ibm_quantum_platform", description="qiskit-ibm-runtime channel."
    )
    url: str | None = Field(
        default=None, description="IBM Cloud base URL; empty is https://cloud.ibm.com."
    )
    proxy_url: str | None = Field(default=None, description="HTTP proxy for requests to IBM.")

    def label(self) -> str:
        """How errors name these credentials: the block's name once saved or loaded."""
        name = self._block_document_name
        return f"credentials block {name!r}" if name else "the IBM Quantum credentials given"

    def get_client(self, *_: Any, **__: Any) -> QiskitRuntimeService:
        """The credentials' client (Prefect's name for :meth:`get_service`)."""
        return self.get_service()

    def get_service(self) -> QiskitRuntimeService:
        """A ``QiskitRuntimeService`` signed in with these credentials (network calls)."""
        from qiskit_ibm_runtime import QiskitRuntimeService

        proxies = {"urls": {"http": self.proxy_url, "https": self.proxy_url}}
        return _ibm_call(
            "signing in to IBM Quantum",
            self,
            lambda: QiskitRuntimeService(
                channel=self.channel,
                token=self.plain_api_key(),
                url=self.url,
                instance=self._instance() or "auto",
                proxies=proxies if self.proxy_url else None,
            ),
        )

    def runtime_api_url(self) -> str | None:
        """The IBM Quantum API base URL the client will call, by the client's own resolver
        (no network); ``None`` when the instance is a name or left to the client."""
        from qiskit_ibm_runtime.accounts import Account
        from qiskit_ibm_runtime.api.client_parameters import ClientParameters
        from qiskit_ibm_runtime.utils import is_crn

        account = Account.create_account(
            channel=self.channel, token="", url=self.url, instance=self._instance()
        )
        if not is_crn(account.instance):
            return None
        parameters = ClientParameters(
            channel=self.channel, token="", url=account.url, instance=account.instance
        )
        return cast(str, parameters.get_runtime_api_base_url())

    def _instance(self) -> str | None:
        return self.instance.get_secret_value() if self.instance else None

    def plain_api_key(self) -> str:
        """The API key, opened if it was loaded sealed (bound to this block's name)."""
        return open_block_secret(
            self.api_key.get_secret_value(),
            slug=self.get_block_type_slug(),
            name=self._block_document_name or "",
            field="api_key",
        )

    def _to_block_document(
        self,
        name: str | None = None,
        block_schema_id: Any = None,
        block_type_id: Any = None,
        is_anonymous: bool | None = None,
        include_secrets: bool = False,
    ) -> BlockDocument:
        """Prefect's document of the block, the API key sealed for the name it is saved
        under whenever the document carries secrets (what a save sends).

        Prefect 3 offers no public place for this: its secret handling (``SecretStr``
        with the ``include_secrets`` context of ``Block.ser_model``) writes each secret's
        plain value over whatever a pydantic serializer made of it, it has no save hook,
        and only this method, which every save (sync or async, new or overwritten)
        goes through, is given the document name the seal is bound to."""
        document = super()._to_block_document(
            name, block_schema_id, block_type_id, is_anonymous, include_secrets
        )
        if include_secrets:
            document.data["api_key"] = seal_block_secret(
                self.plain_api_key(),
                slug=self.get_block_type_slug(),
                name=document.name or "",
                field="api_key",
            )
        return document


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
        backend = _ibm_call(
            f"finding {self.backend_name}", credentials, lambda: service.backend(self.backend_name)
        )
        return IBMTarget(self, credentials, backend)

    def _load_credentials(self) -> IBMQuantumCredentials:
        return load_credentials([self.credentials_block])


def load_credentials(names: Sequence[str]) -> IBMQuantumCredentials:
    """The first of the credentials blocks ``names`` that exists (a backend instance's
    own, then the default one); a :class:`ConfigError` naming them when none does."""
    for name in names:
        try:
            # _sync: the blocking load even on an event loop (a runner validating inputs),
            # where Prefect's load would otherwise hand back a coroutine.
            block: object = IBMQuantumCredentials.load(name, _sync=True)  # type: ignore[call-arg]
        except ValueError:
            continue
        if not isinstance(block, IBMQuantumCredentials):
            raise ConfigError(f"block {name!r} is not IBM Quantum credentials")
        return block
    raise ConfigError(
        f"no IBM Quantum credentials block {' or '.join(map(repr, names))}: save one "
        "(`limit prefect register` saves an instance's api_key) or create it in the Prefect UI"
    )


class IBMTarget:
    """The :class:`~limit_graph.blocks.quantum.types.QuantumTarget` for one IBM device.

    Thread-safe; a Session or Batch it opens is closed by :meth:`close` (or ``with``).
    ``seed`` is accepted and ignored: hardware shots cannot be seeded.
    """

    def __init__(
        self, settings: IBMRuntimeTarget, credentials: IBMQuantumCredentials, backend: Any
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
        except _ibm_failures() as exc:
            outcome = f"IBM did not take the cancel request ({exc})"
        else:
            outcome = "IBM took the cancel request"
        raise JobCancelled(
            f"IBM job {job.job_id()} cancelled by the caller: {outcome}", job.job_id()
        )

    def _record(self, job: RuntimeJobV2) -> IBMJobRecord:
        try:
            metrics: dict[str, Any] = job.metrics()
        except _ibm_failures() as exc:  # the results are in hand; metrics must not lose them
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
        return _ibm_call(f"{doing} on {self.name}", self._credentials, call)


@functools.cache
def _ibm_failures() -> tuple[type[Exception], ...]:
    """What qiskit-ibm-runtime raises when IBM or the way to it fails: its own errors
    (``IBMError`` and the job errors, all ``QiskitError``), IAM's ``ApiException`` and
    requests' errors (connection, timeout), which reach the caller unwrapped at times.
    Imported on first use, as the client itself is."""
    from ibm_cloud_sdk_core import ApiException  # type: ignore[import-untyped]
    from qiskit.exceptions import QiskitError
    from requests import RequestException

    return (QiskitError, ApiException, RequestException)


def _ibm_call(doing: str, credentials: IBMQuantumCredentials, call: Callable[[], _T]) -> _T:
    """``call()``, IBM's and the network's failures turned into :class:`BackendError`
    (see the module doc); any other error, a bug's included, propagates unchanged."""
    try:
        return call()
    except _ibm_failures() as exc:
        raise _backend_error(doing, credentials, exc) from exc


def _backend_error(
    doing: str, credentials: IBMQuantumCredentials, exc: BaseException
) -> BackendError:
    """Classify a qiskit-ibm-runtime failure by the HTTP status found in its chain.

    The client wraps HTTP errors (its ``RequestsApiError``, the IBM SDK's
    ``ApiException``) in its own, often ``from None``, which leaves the original on
    ``__context__``.  Status ``-1`` is the client's "no response": the connection failed
    or its own retries (five, on 5xx) ran out.  IAM answers 400 to an unknown API key.
    """
    from ibm_cloud_sdk_core import ApiException
    from qiskit_ibm_runtime.exceptions import IBMNotAuthorizedError
    from requests import RequestException

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    statuses = [(e, s) for e in chain if isinstance(s := getattr(e, "status_code", None), int)]
    if any(isinstance(e, IBMNotAuthorizedError) for e in chain) or any(
        status in (401, 403) or (status == 400 and isinstance(e, ApiException))
        for e, status in statuses
    ):
        return BackendError(
            f"IBM Quantum refused {credentials.label()} while {doing}; check its API key "
            f"and instance ({exc})",
            retryable=False,
        )
    detail = f"IBM Quantum failed while {doing}: {exc}"
    if not statuses:
        return BackendError(detail, retryable=any(isinstance(e, RequestException) for e in chain))
    status = statuses[0][1]
    retryable = status == -1 or status >= 500 or status in (408, 429)
    return BackendError(
        f"{detail} [{'no response' if status == -1 else f'HTTP {status}'}]", retryable=retryable
    )


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
