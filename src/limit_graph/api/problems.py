"""RFC 9457 problem documents: the one place errors become HTTP responses."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from limit_graph.core.errors import (
    ConfigError,
    LimitError,
    QuotaExceeded,
    RateLimited,
    StorageUnavailable,
)
from limit_graph.storage.database.errors import DATABASE_ERRORS, storage_unavailable

__all__ = [
    "PROBLEM_TYPE_BASE",
    "install_problem_handlers",
    "internal_error_response",
    "problem_response",
]

log = logging.getLogger("limit_graph.api")

PROBLEM_TYPE_BASE = "https://limit-graph.dev/problems/"
MEDIA_TYPE = "application/problem+json"


def problem_response(
    status: int,
    title: str,
    detail: str,
    slug: str,
    extras: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **(extras or {}),
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]


async def _limit_error(request: Request, exc: Exception) -> JSONResponse:
    """The error's own problem; a :class:`ConfigError` is the server's fault, so it is
    also logged (here, once) for the operator it names the fix to."""
    assert isinstance(exc, LimitError)
    if isinstance(exc, ConfigError):
        log.error("server misconfigured on %s %s: %s", request.method, request.url.path, exc.detail)
    headers = None
    retrying = RateLimited | QuotaExceeded | StorageUnavailable
    if isinstance(exc, retrying) and exc.retry_after_s is not None:
        # Retry-After is whole seconds (RFC 9110): rounded up, so a retry is never early.
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    if exc.status_code == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="limit-graph"'}
    return problem_response(exc.status_code, exc.title, exc.detail, exc.slug, exc.extras(), headers)


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        return problem_response(
            400,
            "Malformed JSON",
            "the request body is not valid JSON",
            "malformed-json",
            {"errors": errors},
        )
    count = len(errors)
    return problem_response(
        422,
        "Invalid input",
        f"{count} field{'s' if count != 1 else ''} failed validation",
        "invalid-input",
        {"errors": errors},
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only one route's)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for pattern, route_methods in getattr(request.app.state, "route_methods", ()):
        if pattern.match(path):
            methods |= route_methods
    return ", ".join(sorted(methods))


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Method not allowed", 413: "Payload too large"}
    title = titles.get(exc.status_code, "HTTP error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(
        exc.status_code,
        title,
        str(exc.detail),
        title.lower().replace(" ", "-"),
        headers=headers or None,
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database error that passes (a lost connection, SQLite busy) is a 503 with
    ``Retry-After``; any other is raised on, to be the logged 500 of an unexpected error."""
    unavailable = storage_unavailable(exc)
    if unavailable is None:
        raise exc
    log.warning(
        "storage unavailable on %s %s: %s",
        request.method,
        request.url.path,
        " ".join(str(exc).split())[:300],
    )
    return await _limit_error(request, unavailable)


def internal_error_response() -> JSONResponse:
    """The answer to an error no handler expected (the guard logs it, once)."""
    return problem_response(
        500, "Internal error", "the server failed; the error has been logged", "internal"
    )


async def _unexpected(_: Request, __: Exception) -> JSONResponse:
    """Starlette's outermost middleware sends this and re-raises; ``api/guard.py``
    catches and logs what it re-raises."""
    return internal_error_response()


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LimitError, _limit_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(Exception, _unexpected)
