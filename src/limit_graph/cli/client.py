"""The CLI's client: the SDK (:mod:`limit_graph.client`) for one server and key, its
errors turned into one-line :class:`CliError` messages.

Which server and which key is :mod:`limit_graph.cli.target`'s business.

>>> from limit_graph.client import error_for
>>> print(describe(error_for(422, {"title": "Invalid input", "detail": "1 field failed",
...     "errors": [{"loc": ["body", "inputs", "seconds"], "msg": "not a number"}]})))
Invalid input (422): 1 field failed
  body.inputs.seconds: not a number
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from limit_graph.client import (
    AsyncLimitClient,
    LimitAPIError,
    LimitClient,
    LimitClientError,
    LimitConnectionError,
)

__all__ = ["ApiClient", "CliError", "describe"]

TIMEOUT_S = 330.0
"""Longer than the longest wait a request may ask the server for (300 s)."""


class CliError(Exception):
    """A failure to show the user as one line, with the exit code to leave with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def describe(error: LimitAPIError) -> str:
    """A problem the server answered, as the CLI prints it: title, status and detail,
    then each listed error (step and field for a workflow, else its location)."""
    if not error.problem:
        return f"HTTP {error.status}: {error.detail}"
    text = f"{error.title} ({error.status}): {error.detail}"
    for item in error.errors[:10]:
        if "field" in item or "step" in item:
            where = "  ".join(str(item.get(k) or "-") for k in ("step", "field"))
        else:
            where = ".".join(str(p) for p in item.get("loc", []))
        text += f"\n  {where}: {item.get('msg')}"
    if error.policy_ids:
        text += f"\n  denied by: {', '.join(error.policy_ids)}"
    return text


class ApiClient:
    """Calls the platform at ``url`` with ``api_key``; ``origin`` says where the URL came
    from, for the message when nothing answers there."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        verify: ssl.SSLContext | bool = True,
        origin: str = "--url",
    ) -> None:
        self.url = url.rstrip("/")
        self.origin = origin
        self._key = api_key
        self._verify = verify
        self.sdk = LimitClient(self.url, api_key, timeout=TIMEOUT_S, verify=verify)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request's JSON answer (``None`` when empty), problems as :class:`CliError`."""
        with self.errors():
            return self.sdk.request(method, path, **kwargs)

    @contextmanager
    def errors(self) -> Iterator[LimitClient]:
        """The SDK client, with what it raises in the block turned into :class:`CliError`."""
        try:
            yield self.sdk
        except LimitAPIError as exc:
            raise CliError(describe(exc)) from None
        except LimitConnectionError as exc:
            raise CliError(self.unreachable(exc.reason)) from None
        except LimitClientError as exc:
            raise CliError(f"{self.url}: {exc}") from None

    def async_sdk(self) -> AsyncLimitClient:
        """An async SDK client for the same server and key (the caller closes it)."""
        return AsyncLimitClient(self.url, self._key, timeout=TIMEOUT_S, verify=self._verify)

    def unreachable(self, reason: str) -> str:
        return (
            f"cannot reach LIMIT-Graph at {self.url} (address from {self.origin}): {reason}; "
            "is `limit up` running with this configuration? (--url or LIMIT_API_URL "
            "names another server)"
        )

    def close(self) -> None:
        self.sdk.close()
