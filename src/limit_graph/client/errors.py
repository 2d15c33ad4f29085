"""What the client raises; every failure a caller sees is one of these.

::

    LimitClientError                 base; never raised bare
    ├── LimitAPIError                the server answered with a problem (RFC 9457)
    │   ├── BadRequestError     400  malformed JSON
    │   ├── AuthenticationError 401  no or unknown credentials
    │   ├── PermissionDeniedError 403  a policy said no (``policy_ids``)
    │   ├── NotFoundError       404  unknown id
    │   ├── ConflictError       409  contradicts the current state
    │   ├── InvalidInputError   422  bad content; ``errors`` lists each problem
    │   ├── RateLimitError      429  quota or rate limit (``retry_after_s``)
    │   └── ServerError         5xx
    ├── LimitConnectionError         nothing answered (refused, TLS, timeout)
    ├── UnexpectedResponse           a success answer this client cannot read
    └── WaitTimeout                  a wait for a final state ran out of time

>>> error = error_for(404, {"title": "Not found", "detail": "no session x"})
>>> isinstance(error, NotFoundError), error.status, str(error)
(True, 404, 'Not found (404): no session x')
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InvalidInputError",
    "LimitAPIError",
    "LimitClientError",
    "LimitConnectionError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "UnexpectedResponse",
    "WaitTimeout",
    "error_for",
    "error_from_response",
]


class LimitClientError(Exception):
    """Root of everything the client raises on purpose."""


class LimitAPIError(LimitClientError):
    """The server refused or failed a request; the fields are its problem document's."""

    def __init__(self, status: int, problem: dict[str, Any], *, text: str = "") -> None:
        self.status = status
        self.problem = problem  # as sent; empty when the body was not one (then ``text``)
        self.text = text
        self.title = str(problem.get("title") or f"HTTP {status}")
        self.detail = str(problem.get("detail") or text)
        errors = problem.get("errors")
        self.errors: list[dict[str, Any]] = (
            [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        )
        ids = problem.get("policy_ids")
        self.policy_ids: list[str] = [str(i) for i in ids] if isinstance(ids, list) else []
        super().__init__(f"{self.title} ({status}): {self.detail}")


class BadRequestError(LimitAPIError):
    """400: the body was not JSON the server accepts."""


class AuthenticationError(LimitAPIError):
    """401: no key, or one the server does not know."""


class PermissionDeniedError(LimitAPIError):
    """403: the caller may not do this (``policy_ids`` says which policies said no)."""


class NotFoundError(LimitAPIError):
    """404: no such session, execution, run, agent or artifact (or not visible)."""


class ConflictError(LimitAPIError):
    """409: the request contradicts the current state (e.g. the session is not active)."""


class InvalidInputError(LimitAPIError):
    """422: bad content; ``errors`` has one item per problem (for a workflow spec each
    carries ``step``, ``field`` and ``msg``)."""


class RateLimitError(LimitAPIError):
    """429: a quota or rate limit; ``retry_after_s`` says when to try again, if known."""

    @property
    def retry_after_s(self) -> float | None:
        value = self.problem.get("retry_after_s")
        return float(value) if isinstance(value, int | float) else None


class ServerError(LimitAPIError):
    """5xx: the server or a backend failed."""


class LimitConnectionError(LimitClientError):
    """Nothing answered at ``url``; ``reason`` is the transport's own words."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach {url}: {reason}")


class UnexpectedResponse(LimitClientError):
    """A successful answer this client cannot read (not the document it expects)."""


class WaitTimeout(LimitClientError, TimeoutError):
    """A wait for an execution or workflow run to end ran out of time; ``last`` is the
    record as last seen, still unfinished."""

    def __init__(self, message: str, last: object) -> None:
        super().__init__(message)
        self.last = last


_BY_STATUS: dict[int, type[LimitAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidInputError,
    429: RateLimitError,
}


def error_for(status: int, problem: dict[str, Any], text: str = "") -> LimitAPIError:
    """The error class for ``status``, made from its problem document (or body text)."""
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else LimitAPIError)
    return cls(status, problem, text=text)


def error_from_response(response: httpx.Response) -> LimitAPIError:
    """The error a 4xx/5xx response stands for; a body that is not a problem document
    becomes one (its text as ``detail``)."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return error_for(response.status_code, {}, response.text[:500])
    return error_for(response.status_code, problem)
