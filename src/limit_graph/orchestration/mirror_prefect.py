"""The Prefect mirror's requests to Prefect's REST API, and what it counts as a refusal.

Everything the mirror sends goes through :class:`PrefectApi`: a busy server (SQLite
locked: 503, and 408, 429, 502) is retried briefly; anything else that fails, a
transport error or an error status, is :class:`Unavailable`, which leaves the mirror's
cursor where it was so that the same request is sent again later.  The helpers that
make a re-sent request harmless live here too: whether a flow run is already in a
state (:meth:`PrefectApi.set_state` skips a transition sent again) and whether an
artifact was published before (:meth:`PrefectApi.publish` looks it up by key and
description, :meth:`PrefectApi.latest_artifact` finds a key's newest version, since
Prefect keeps every version a key is given).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["BUSY_CODES", "PrefectApi", "PrefectState", "Unavailable"]

BUSY_RETRIES = 4
BUSY_CODES = frozenset({408, 429, 502, 503})


class Unavailable(Exception):
    """Prefect did not take a request (down, busy, or refused it); retried later."""


@dataclass(frozen=True)
class PrefectState:
    """A flow-run state to show: Prefect's state type, its name and a message.

    ``transition_id`` (Prefect's own ``state_details.transition_id``, kept in the run's
    state history) names the ledger entry that made the state, so a transition sent
    again is recognised even after later ones.
    """

    type: str
    name: str
    message: str | None = None
    transition_id: uuid.UUID | None = None

    def body(self) -> dict[str, Any]:
        state: dict[str, Any] = {"type": self.type, "name": self.name}
        if self.message is not None:
            state["message"] = self.message
        if self.transition_id is not None:
            state["state_details"] = {"transition_id": str(self.transition_id)}
        return state


class PrefectApi:
    """An HTTP client of one Prefect API, with the flows the mirror files runs under."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.api_url + "/", timeout=httpx.Timeout(30.0, connect=5.0)
        )
        self._flows: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, body: Any) -> httpx.Response:
        """One request; a busy server (SQLite locked: 503) is retried briefly."""
        for attempt in range(BUSY_RETRIES + 1):
            try:
                response = await self._http.request(method, path, json=body)
            except httpx.TransportError as exc:
                raise Unavailable(f"{type(exc).__name__} from {self.api_url}") from exc
            if response.status_code in BUSY_CODES and attempt < BUSY_RETRIES:
                await asyncio.sleep(0.1 * 2**attempt)
                continue
            if response.is_error:
                raise Unavailable(
                    f"{method} {path}: HTTP {response.status_code} {response.text[:300]}"
                )
            return response
        raise AssertionError("unreachable")

    async def flow_id(self, name: str) -> str:
        """The id of the flow ``name`` (made, or found: Prefect upserts flows by name)."""
        if name not in self._flows:
            response = await self.call("POST", "flows/", {"name": name})
            self._flows[name] = str(response.json()["id"])
        return self._flows[name]

    async def create_flow_run(self, body: dict[str, Any]) -> uuid.UUID:
        """Create a flow run (with an idempotency key, a second call finds the first)."""
        response = await self.call("POST", "flow_runs/", body)
        return uuid.UUID(response.json()["id"])

    async def set_state(self, flow_run_id: uuid.UUID, state: PrefectState, *, again: bool) -> bool:
        """Move the flow run to ``state``; sent ``again``, only if the first try did not
        make it: a state with a ``transition_id`` is looked for in the run's history, one
        without counts as made if the run is in it now.

        ``False`` when the flow run no longer exists in Prefect (deleted there), so that
        the caller makes it anew.
        """
        if again and await self.made(flow_run_id, state):
            return True  # the first try made it: no second, identical transition
        try:
            await self.call(
                "POST", f"flow_runs/{flow_run_id}/set_state", {"state": state.body(), "force": True}
            )
        except Unavailable:
            if await self.exists(f"flow_runs/{flow_run_id}"):
                raise
            return False
        return True

    async def made(self, flow_run_id: uuid.UUID, state: PrefectState) -> bool:
        """Whether the flow run went to ``state`` before (see :meth:`set_state`)."""
        if state.transition_id is None:
            return await self.in_state(flow_run_id, state)
        try:
            response = await self._http.get(
                "flow_run_states/", params={"flow_run_id": str(flow_run_id)}
            )
        except httpx.TransportError:
            return False
        if not response.is_success:
            return False
        wanted = str(state.transition_id)
        return any(
            (found.get("state_details") or {}).get("transition_id") == wanted
            for found in response.json()
        )

    async def in_state(self, flow_run_id: uuid.UUID, state: PrefectState) -> bool:
        try:
            response = await self._http.get(f"flow_runs/{flow_run_id}")
        except httpx.TransportError:
            return False
        if not response.is_success:
            return False
        found = response.json().get("state") or {}
        return (found.get("type"), found.get("name")) == (state.type, state.name)

    async def exists(self, path: str) -> bool:
        """Whether GET ``path`` finds something (when in doubt, yes)."""
        try:
            response = await self._http.get(path)
        except httpx.TransportError:
            return True
        return response.status_code != 404

    async def publish(self, artifact: dict[str, Any], *, again: bool) -> None:
        """Publish an artifact (``key``, ``type``, ``data``, ``description``,
        ``flow_run_id``); sent ``again``, only if the first one did not make it."""
        if again and await self.published(
            artifact["key"], artifact["flow_run_id"], artifact["description"]
        ):
            return
        await self.call("POST", "artifacts/", artifact)

    async def published(self, key: str, flow_run_id: str, description: str) -> bool:
        """Whether this artifact made it before (a key keeps every version it is given)."""
        found = await self.call(
            "POST",
            "artifacts/filter",
            {"artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [flow_run_id]}}},
        )
        return any(a.get("description") == description for a in found.json())

    async def latest_artifact(self, key: str, flow_run_id: str) -> dict[str, Any] | None:
        """The newest version of the artifact ``key`` on the flow run, if any."""
        found = await self.call(
            "POST",
            "artifacts/filter",
            {
                "artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [flow_run_id]}},
                "sort": "CREATED_DESC",
                "limit": 1,
            },
        )
        page: list[dict[str, Any]] = found.json()
        return page[0] if page else None
