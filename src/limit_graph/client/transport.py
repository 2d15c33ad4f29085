"""What both clients share about talking HTTP: address, headers, timeouts, answers.

>>> read_timeout(httpx.Timeout(30.0), 60).read
90.0
>>> env_target({"LIMIT_API_URL": "https://limit.example.org/"})
('https://limit.example.org', None)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import httpx

from limit_graph import __version__
from limit_graph.client.calls import Call
from limit_graph.client.errors import (
    LimitConnectionError,
    UnexpectedResponse,
    error_from_response,
)

__all__ = [
    "DEFAULT_URL",
    "LONG_POLL_S",
    "client_headers",
    "decode_event",
    "env_target",
    "poll_delays",
    "read_answer",
    "read_timeout",
    "stream_timeout",
    "unreachable",
]

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
"""Where ``limit up`` serves by default."""
LONG_POLL_S = 30.0
"""How long a wait asks the server to hold one answer (its limit is 60 s)."""


def env_target(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The address and key ``LIMIT_API_URL`` and ``LIMIT_API_KEY`` name."""
    url = environ.get("LIMIT_API_URL") or DEFAULT_URL
    return url.rstrip("/"), environ.get("LIMIT_API_KEY") or None


def client_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": f"limit-graph-client/{__version__}"}
    if api_key:
        headers["X-API-Key"] = api_key
    headers.update(extra or {})
    return headers


def read_timeout(base: httpx.Timeout, wait_s: float) -> httpx.Timeout:
    """``base`` with the read timeout stretched by the time the server may hold a reply."""
    if not wait_s or base.read is None:
        return base
    return httpx.Timeout(
        connect=base.connect, read=base.read + wait_s, write=base.write, pool=base.pool
    )


def stream_timeout(base: httpx.Timeout) -> httpx.Timeout:
    """``base`` without a read timeout: an event stream may stay quiet for long."""
    return httpx.Timeout(connect=base.connect, read=None, write=base.write, pool=base.pool)


def unreachable(url: str, exc: httpx.TransportError) -> LimitConnectionError:
    return LimitConnectionError(url, str(exc) or type(exc).__name__)


def read_answer(call: Call[T], response: httpx.Response) -> T:
    """What ``call``'s answer holds, or the error it stands for."""
    if response.status_code >= 400 and response.status_code not in call.handles:
        raise error_from_response(response)
    try:
        return call.read(response)
    except (ValueError, KeyError, TypeError) as exc:
        raise UnexpectedResponse(
            f"{call.method} {call.path} answered {response.status_code} with a body this "
            f"client cannot read: {exc}"
        ) from exc


def decode_event(event: dict[str, str]) -> dict[str, Any]:
    """An event stream's event as its JSON document (ledger index, action, state...)."""
    try:
        document = json.loads(event["data"])
    except ValueError as exc:
        raise UnexpectedResponse(f"an event that is not JSON: {event['data'][:200]}") from exc
    if not isinstance(document, dict):
        raise UnexpectedResponse(f"an event that is not a JSON object: {event['data'][:200]}")
    return document


def poll_delays(first: float = 0.05, most: float = 1.0) -> Iterator[float]:
    """Pauses between polls of something still running: short at first, then at most
    ``most`` seconds (most work ends quickly; long work need not be asked often)."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 1.5, most)
