"""A small HTTP client for the CLI: one server, one key, problems turned into errors.

Which server and which key is :mod:`limit_graph.cli.target`'s business.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

__all__ = ["ApiClient", "CliError"]


class CliError(Exception):
    """A failure to show the user as one line, with the exit code to leave with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
        self._http = httpx.Client(
            base_url=self.url, headers={"X-API-Key": api_key}, timeout=330.0, verify=verify
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(self._unreachable(exc)) from None
        if response.status_code >= 400:
            raise CliError(self._describe(response))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @contextmanager
    def stream(self, method: str, path: str) -> Iterator[httpx.Response]:
        """A streamed response (no read timeout), raising :class:`CliError` on problems."""
        try:
            with self._http.stream(method, path, timeout=httpx.Timeout(10.0, read=None)) as rsp:
                if rsp.status_code >= 400:
                    rsp.read()
                    raise CliError(self._describe(rsp))
                yield rsp
        except httpx.TransportError as exc:
            raise CliError(self._unreachable(exc)) from None

    def _unreachable(self, exc: httpx.TransportError) -> str:
        return (
            f"cannot reach LIMIT-Graph at {self.url} (address from {self.origin}): {exc}; "
            "is `limit up` running with this configuration? (--url or LIMIT_API_URL "
            "names another server)"
        )

    @staticmethod
    def _describe(response: httpx.Response) -> str:
        try:
            problem = response.json()
        except ValueError:
            return f"HTTP {response.status_code}: {response.text[:500]}"
        text = f"{problem.get('title', 'error')} ({response.status_code}): {problem.get('detail')}"
        for error in problem.get("errors", [])[:10]:
            where = ".".join(str(p) for p in error.get("loc", []))
            text += f"\n  {where}: {error.get('msg')}"
        if problem.get("policy_ids"):
            text += f"\n  denied by: {', '.join(problem['policy_ids'])}"
        return text

    def close(self) -> None:
        self._http.close()
