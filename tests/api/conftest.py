"""An app over a real SQLite database, driven through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from limit_graph.api import create_app
from limit_graph.core.settings import load_settings
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.platform import Platform

ADMIN_KEY = "test-admin-key-0123456789abcdef"
OTHER_KEY = "test-other-tenant-key-0123456789"


@dataclass
class Api:
    client: httpx.AsyncClient
    platform: Platform
    other: httpx.AsyncClient

    async def ledger_size(self) -> int:
        return await self.platform.storage.ledger_size()

    async def new_session(self, **config: object) -> str:
        response = await self.client.post("/sessions", json={"config": config})
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        return session_id


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'api.db'}",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        app.state.authenticator.add(OTHER_KEY, Principal("bob", "other-tenant"))
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(
                transport=transport, base_url="http://test", headers={"X-API-Key": ADMIN_KEY}
            ) as client,
            httpx.AsyncClient(
                transport=transport, base_url="http://test", headers={"X-API-Key": OTHER_KEY}
            ) as other,
        ):
            yield Api(client, app.state.platform, other)


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """The response is an RFC 9457 problem document with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body
