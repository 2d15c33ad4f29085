"""A small HTTP client for the CLI: finds the server and key, turns problems into errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ApiClient", "CliError", "find_key"]

DEFAULT_URL = "http://127.0.0.1:8080"


class CliError(Exception):
    """A failure to show the user as one line, with the exit code to leave with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def find_key(
    explicit: str | None, variable: str = "LIMIT_API_KEY", file: str = "admin.key"
) -> str | None:
    """A key: given, else from ``variable``, else from ``file`` in LIMIT_HOME (``.limit``)."""
    if explicit:
        return explicit
    if os.environ.get(variable):
        return os.environ[variable]
    key_file = Path(os.environ.get("LIMIT_HOME", ".limit")) / file
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    return None


class ApiClient:
    def __init__(self, url: str | None = None, api_key: str | None = None) -> None:
        self.url = (url or os.environ.get("LIMIT_API_URL") or DEFAULT_URL).rstrip("/")
        key = find_key(api_key)
        headers = {"X-API-Key": key} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=330.0)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach LIMIT-Graph at {self.url} ({exc}); is `limit up` running? "
                "(--url or LIMIT_API_URL names another server)"
            ) from None
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
            raise CliError(f"cannot reach LIMIT-Graph at {self.url} ({exc})") from None

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
