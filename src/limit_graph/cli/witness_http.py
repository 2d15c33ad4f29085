"""How ``limit audit witness run`` reads the ledger over the platform's REST API, and
pushes what it cosigned to a collector."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from limit_graph.cli.client import CliError, describe

if TYPE_CHECKING:
    import httpx

    from limit_graph.client import LimitClient
    from limit_graph.orchestration.witness import LogCheckpoint, Push

__all__ = ["HttpLog", "pusher"]


class HttpLog:
    """The platform's ledger over its REST API (``/audit/checkpoint`` and
    ``/audit/proof/consistency``): what may work later is ``LogUnavailable``."""

    def __init__(self, sdk: LimitClient) -> None:
        self._sdk = sdk

    def _get(self, path: str, params: dict[str, int] | None = None) -> dict[str, Any]:
        from limit_graph.client import (
            AuthenticationError,
            LimitAPIError,
            LimitClientError,
            PermissionDeniedError,
        )
        from limit_graph.orchestration.witness import LogUnavailable

        where = f"{self._sdk.base_url}{path}"
        try:
            answer = self._sdk.request("GET", path, params=params)
        except (AuthenticationError, PermissionDeniedError) as exc:
            raise CliError(f"{where}: {describe(exc)}") from None
        except LimitAPIError as exc:
            raise LogUnavailable(f"{where}: {describe(exc)}") from None
        except LimitClientError as exc:
            raise LogUnavailable(f"{where}: {exc}") from None
        except ValueError:
            raise LogUnavailable(f"{where} did not answer JSON") from None
        if not isinstance(answer, dict):
            raise LogUnavailable(f"{where} did not answer a JSON object")
        return answer

    def checkpoint(self) -> LogCheckpoint:
        from limit_graph.orchestration.witness import LogCheckpoint, LogUnavailable

        document = self._get("/audit/checkpoint")
        note = document.get("note")
        if not isinstance(note, str):
            raise LogUnavailable("the log's checkpoint answer holds no note")
        try:
            signed_at: datetime | None = datetime.fromisoformat(str(document.get("timestamp")))
        except ValueError:
            signed_at = None
        return LogCheckpoint(note, signed_at)

    def consistency(self, first: int, second: int) -> Sequence[bytes]:
        from limit_graph.core import merkle

        document = self._get("/audit/proof/consistency", {"first": first, "second": second})
        hashes = document.get("hashes")
        if (document.get("first"), document.get("second")) != (first, second):
            raise merkle.ProofError(f"the log answered a proof of other sizes than {first, second}")
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise merkle.ProofError("the log's proof is not a list of base64 hashes")
        try:
            return [base64.b64decode(h, validate=True) for h in hashes]
        except binascii.Error:
            raise merkle.ProofError("the log's proof holds a hash that is not base64") from None


def pusher(url: str, http: httpx.Client) -> Push:
    """POST each cosigned note to ``url`` as text/plain."""
    import httpx

    from limit_graph.orchestration.witness import LogUnavailable

    def push(note: str) -> None:
        try:
            answer = http.post(
                url,
                content=note.encode("utf-8"),
                headers={"content-type": "text/plain; charset=utf-8"},
            )
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise LogUnavailable(
                f"pushing the cosigned checkpoint to {url} failed: {exc}"
            ) from None

    return push
