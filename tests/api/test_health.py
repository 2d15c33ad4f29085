"""`GET /health`: 503 when the store is unreachable; Prefect's state reported beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from limit_graph.api import create_app
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer
from tests.fixtures.live import free_port


@asynccontextmanager
async def health_client(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key="k" * 32,
        storage__type="file",
        storage__path=str(tmp_path / "data"),
        **overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def test_health_is_503_when_the_store_is_gone(tmp_path: Path) -> None:
    # The lineage follower writes under the store's folder from a thread; off here, and
    # the folder moved away at once, where deleting it file by file raced those writes.
    async with health_client(tmp_path, lineage__enabled=False) as client:
        healthy = await client.get("/health")
        assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
        assert healthy.json()["checks"]["prefect"] == {"status": "not_configured"}
        (tmp_path / "data").rename(tmp_path / "data-gone")
        client.app.state.platform.database_probe.expire()  # type: ignore[attr-defined]
        down = await client.get("/health")
        assert down.status_code == 503
        body = down.json()
        assert body["status"] == "degraded"
        assert body["checks"]["database"]["status"] == "error"
        assert "is gone" in body["checks"]["database"]["detail"]


async def test_health_reports_an_unreachable_prefect_as_degraded(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    async with health_client(tmp_path, prefect__api_url=url) as client:
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["checks"]["prefect"]["status"] == "error"


async def test_health_sees_a_running_prefect_server(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    async with health_client(tmp_path, prefect__api_url=prefect_server.api_url) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["checks"]["prefect"] == {"status": "ok"}
    assert response.json()["status"] == "ok"
