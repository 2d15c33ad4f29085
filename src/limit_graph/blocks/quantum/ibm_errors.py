"""How the IBM Quantum client's failures become the platform's errors.

What the client and the libraries under it raise when IBM or the network fails
(qiskit-ibm-runtime's errors, each a ``QiskitError``; ibm-cloud-sdk-core's ``ApiException``
from IAM; requests' ``RequestException``) becomes a
:class:`~limit_graph.core.errors.BackendError`: ``retryable`` when IBM or the network
failed on the way (5xx after the client's own retries, 408/429, no connection), not when
IBM refused the request; refused credentials (IAM, 401, 403) name the credentials block.
:class:`JobCancelled` is the one subclass.  Anything else (a ``TypeError`` of a bug, a
platform error such as a missing credentials block's
:class:`~limit_graph.core.errors.ConfigError`) propagates as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from limit_graph.core.errors import BackendError

__all__ = ["JobCancelled", "backend_error", "ibm_call", "ibm_failures"]

_T = TypeVar("_T")


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


@functools.cache
def ibm_failures() -> tuple[type[Exception], ...]:
    """What qiskit-ibm-runtime raises when IBM or the way to it fails: its own errors
    (``IBMError`` and the job errors, all ``QiskitError``), IAM's ``ApiException`` and
    requests' errors (connection, timeout), which reach the caller unwrapped at times.
    Imported on first use, as the client itself is."""
    from ibm_cloud_sdk_core import ApiException  # type: ignore[import-untyped]
    from qiskit.exceptions import QiskitError
    from requests import RequestException

    return (QiskitError, ApiException, RequestException)


def ibm_call(doing: str, who: str, call: Callable[[], _T]) -> _T:
    """``call()``, IBM's and the network's failures turned into :class:`BackendError`
    (see the module doc), refused credentials named as ``who``; any other error, a
    bug's included, propagates unchanged."""
    try:
        return call()
    except ibm_failures() as exc:
        raise backend_error(doing, who, exc) from exc


def backend_error(doing: str, who: str, exc: BaseException) -> BackendError:
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
            f"IBM Quantum refused {who} while {doing}; check its API key and instance ({exc})",
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
