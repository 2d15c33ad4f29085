"""`GET /health` answers 503 with a problem named when the store is unreachable."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from limit_graph.api import create_app
from limit_graph.core.settings import load_settings
from limit_graph.orchestration import platform as platform_module


async def test_health_is_503_when_the_store_is_gone(tmp_path: Path) -> None:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key="k" * 32,
        storage__type="file",
        storage__path=str(tmp_path / "data"),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            healthy = await client.get("/health")
            assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
            shutil.rmtree(tmp_path / "data")
            app.state.platform._health_checked_at = -platform_module.HEALTH_TTL_S
            down = await client.get("/health")
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "degraded"
            assert body["checks"]["database"]["status"] == "error"
            assert "is gone" in body["checks"]["database"]["detail"]
