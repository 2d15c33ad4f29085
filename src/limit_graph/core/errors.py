"""The platform's error tree; every error a caller can see is one of these.

::

    LimitError                    500  base; never raised bare
    ├── InvalidInput              422  bad request content (``errors`` lists each field)
    │   ├── MalformedJSON         400  a body that is not I-JSON (RFC 7493): syntax, UTF-8,
    │   │                              duplicate keys, NaN, lone surrogates (``errors``)
    │   └── TokenRequestError     400  a malformed OAuth2 token request (``error``, RFC 6749)
    ├── AuthenticationRequired    401  no, unknown or invalid credentials (``error`` on the
    │                                  token endpoint: ``invalid_client``)
    ├── NotFound                  404  unknown id (session, execution, agent, archive)
    ├── Conflict                  409  the request contradicts current state
    ├── PolicyDenied              403  a governance check said no (``policy_ids``)
    │   ├── StateDenied           409  the session's state forbids it (e.g. not active)
    │   ├── CheckFailed           422  a compliance check found the content wanting
    │   │                              (``failures``: each failed expectation or limit)
    │   ├── QuotaExceeded         429  a quota that resets (``quota``, ``limit``, ``used``,
    │   │   │                          ``reserved``, ``retry_after_s`` to its reset)
    │   │   └── QuotaCapReached   403  a quota that never resets (a session's totals)
    │   └── RateLimited           429  with ``retry_after_s``
    ├── BackendError              502  a backend failed (``retryable`` says if a retry may help)
    ├── ConfigError               500  the server's configuration is wrong or incomplete: a
    │                                  file, a variable, a block (credentials) it needs; stops
    │                                  a start, and on a request names what the operator must fix
    ├── StorageUnavailable        503  the store is busy or out of reach for now (a lost
    │   │                              connection, a database that refuses them, SQLite's
    │   │                              write lock taken too long): ``retry_after_s``
    │   └── StorageFull           507  the disk under the store is full: nothing was written,
    │                                  and a retry helps once an operator frees space
    └── SealError                 500  a sealed field cannot be opened or made: wrong or
                                       missing key, altered, or moved to another record

HTTP status codes live on the classes (``status_code``) and are mapped to RFC 9457
problem documents in one place, :mod:`limit_graph.api.problems`.  The API adds one
leaf of its own, ``NotBuiltYet`` (501), for documented routes whose feature is not
built yet (``api/routes/reserved.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationRequired",
    "BackendError",
    "CheckFailed",
    "ConfigError",
    "Conflict",
    "InvalidInput",
    "LimitError",
    "MalformedJSON",
    "NotFound",
    "PolicyDenied",
    "QuotaCapReached",
    "QuotaExceeded",
    "RateLimited",
    "SealError",
    "StateDenied",
    "StorageFull",
    "StorageUnavailable",
    "TokenRequestError",
]


class LimitError(Exception):
    """Root of every error the platform raises on purpose."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extras(self) -> dict[str, Any]:
        """Fields added to the problem document beside type/title/status/detail."""
        return {}


class InvalidInput(LimitError):
    status_code = 422
    title = "Invalid input"
    slug = "invalid-input"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []

    def extras(self) -> dict[str, Any]:
        return {"errors": self.errors} if self.errors else {}


class MalformedJSON(InvalidInput):
    """The body cannot be read as I-JSON, so nothing in it is looked at."""

    status_code = 400
    title = "Malformed JSON"
    slug = "malformed-json"


class TokenRequestError(InvalidInput):
    """A token request RFC 6749 (§5.2) calls ``invalid_request`` or
    ``unsupported_grant_type``; ``error`` carries that code for OAuth2 clients."""

    status_code = 400
    title = "Invalid token request"
    slug = "invalid-token-request"

    def __init__(self, detail: str, error: str = "invalid_request") -> None:
        super().__init__(detail)
        self.error = error

    def extras(self) -> dict[str, Any]:
        return {"error": self.error}


class AuthenticationRequired(LimitError):
    status_code = 401
    title = "Authentication required"
    slug = "unauthenticated"

    def __init__(self, detail: str, *, oauth_error: str | None = None) -> None:
        super().__init__(detail)
        self.oauth_error = oauth_error

    def extras(self) -> dict[str, Any]:
        return {"error": self.oauth_error} if self.oauth_error else {}


class NotFound(LimitError):
    status_code = 404
    title = "Not found"
    slug = "not-found"


class Conflict(LimitError):
    status_code = 409
    title = "Conflict"
    slug = "conflict"


class PolicyDenied(LimitError):
    status_code = 403
    title = "Denied by policy"
    slug = "policy-denied"

    def __init__(self, detail: str, policy_ids: list[str]) -> None:
        super().__init__(detail)
        self.policy_ids = policy_ids

    def extras(self) -> dict[str, Any]:
        return {"policy_ids": self.policy_ids}


class StateDenied(PolicyDenied):
    status_code = 409
    title = "Denied by state"
    slug = "state-denied"


class CheckFailed(PolicyDenied):
    """A compliance check (data quality, circuit limits) refused the request's content:
    the request could never pass as it is, so it is a 422, and each failure is listed."""

    status_code = 422
    title = "Failed a compliance check"
    slug = "check-failed"

    def __init__(self, detail: str, policy_ids: list[str], failures: list[dict[str, Any]]) -> None:
        super().__init__(detail, policy_ids)
        self.failures = failures

    def extras(self) -> dict[str, Any]:
        return {**super().extras(), "failures": self.failures}


class QuotaExceeded(PolicyDenied):
    """A quota that resets is used up: worth retrying at ``retry_after_s``."""

    status_code = 429
    title = "Quota exceeded"
    slug = "quota-exceeded"

    def __init__(
        self,
        detail: str,
        policy_ids: list[str],
        *,
        quota: dict[str, Any],
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail, policy_ids)
        self.quota = quota
        self.retry_after_s = retry_after_s

    def extras(self) -> dict[str, Any]:
        found = {**super().extras(), "quota": self.quota}
        if self.retry_after_s is not None:
            found["retry_after_s"] = self.retry_after_s
        return found


class QuotaCapReached(QuotaExceeded):
    """A quota that never resets (a session's totals) is used up: retrying cannot help."""

    status_code = 403
    title = "Quota cap reached"
    slug = "quota-cap-reached"


class RateLimited(PolicyDenied):
    status_code = 429
    title = "Rate limited"
    slug = "rate-limited"

    def __init__(self, detail: str, policy_ids: list[str], retry_after_s: float) -> None:
        super().__init__(detail, policy_ids)
        self.retry_after_s = retry_after_s

    def extras(self) -> dict[str, Any]:
        return {**super().extras(), "retry_after_s": self.retry_after_s}


class BackendError(LimitError):
    status_code = 502
    title = "Backend error"
    slug = "backend-error"

    def __init__(self, detail: str, *, retryable: bool = False) -> None:
        super().__init__(detail)
        self.retryable = retryable

    def extras(self) -> dict[str, Any]:
        return {"retryable": self.retryable}


class ConfigError(LimitError):
    """The server is configured wrongly or not completely: a settings file or variable, an
    agent file, a key, or a block it needs at run time (the IBM Quantum credentials of an
    ``ibm:`` target).  The operator's to fix, never the caller's: at start-up it stops the
    start; while serving a request it is a 500 (logged at error level by the API) whose
    detail names what to fix and never a secret's value.  ``errors`` lists each bad
    setting, for the start-up message; it is not sent to clients."""

    title = "Server misconfigured"
    slug = "server-misconfigured"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []


class StorageUnavailable(LimitError):
    """The store cannot answer now, for a reason that passes (the database is restarting
    or refuses connections, a connection was lost, another writer held SQLite's lock
    past the busy timeout): nothing of the request was written, and the same request
    may succeed after ``retry_after_s``."""

    status_code = 503
    title = "Storage unavailable"
    slug = "storage-unavailable"

    def __init__(self, detail: str, retry_after_s: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s

    def extras(self) -> dict[str, Any]:
        return {"retry_after_s": self.retry_after_s}


class StorageFull(StorageUnavailable):
    """The disk that holds the store has no room left (``ENOSPC``, or a quota's
    ``EDQUOT``): the write failed whole, nothing of the request was written and what was
    written before is intact.  507 Insufficient Storage (RFC 4918, section 11.5) says
    exactly that the server could not store what the request needs, for now; unlike the
    503's other causes it does not pass by itself, so ``retry_after_s`` is long.

    >>> StorageFull("the disk is full").status_code, StorageFull("x").retry_after_s
    (507, 30.0)
    """

    status_code = 507
    title = "Insufficient storage"
    slug = "storage-full"

    def __init__(self, detail: str, retry_after_s: float = 30.0) -> None:
        super().__init__(detail, retry_after_s)


class SealError(LimitError):
    """A field encrypted at rest cannot be opened (the key that sealed it is unknown or
    not configured, the ciphertext was altered, or it was moved to another tenant, table,
    column or record), or cannot be sealed (no key-encryption key is configured).  Never
    the caller's fault: a 500 whose detail names the key and the record, not the data."""

    title = "Sealed data unavailable"
    slug = "sealed-data"
