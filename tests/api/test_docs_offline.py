"""``/docs`` and ``/redoc`` render on a machine with no network: their assets are ours.

FastAPI's default pages load Swagger UI and ReDoc from a CDN and stayed white here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from limit_graph.api import create_app
from limit_graph.core.settings import Settings, load_settings
from tests.fixtures.browser import headless_chromium
from tests.fixtures.live import live_server

ASSETS = {
    "/docs/assets/swagger-ui-bundle.js": "javascript",
    "/docs/assets/swagger-ui.css": "text/css",
    "/docs/assets/redoc.standalone.js": "javascript",
    "/docs/assets/favicon.png": "image/png",
}


def _settings(tmp_path: Path) -> Settings:
    return load_settings(environ={}, home=str(tmp_path / "home"), storage__type="memory")


@pytest.fixture
async def anonymous(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no credentials at all."""
    app = create_app(_settings(tmp_path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_only_local_assets_without_credentials(
    anonymous: httpx.AsyncClient, page: str
) -> None:
    response = await anonymous.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    linked = set(re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", response.text))
    assert linked, response.text
    assert all(url.startswith(("/docs/assets/", "/openapi.json")) for url in linked), linked
    assert "://" not in response.text  # no CDN, no Google fonts


async def test_the_assets_are_served_from_the_package(anonymous: httpx.AsyncClient) -> None:
    for path, kind in ASSETS.items():
        response = await anonymous.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"], (path, response.headers)
        assert len(response.content) > 1000, path
    assert (await anonymous.get("/docs/assets/missing.js")).status_code == 404


async def test_the_docs_are_not_operations_of_the_api(anonymous: httpx.AsyncClient) -> None:
    paths = (await anonymous.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
    assert (await anonymous.get("/sessions")).status_code == 401  # the API itself still is closed


def test_swagger_ui_and_redoc_render_every_operation_in_a_browser(tmp_path: Path) -> None:
    """Chromium with no host name resolvable, as on an air-gapped machine."""
    chromium = headless_chromium()
    with live_server(_settings(tmp_path)) as server:
        spec = httpx.get(f"{server.url}/openapi.json").json()
        swagger = chromium.dom(f"{server.url}/docs")
        redoc = chromium.dom(f"{server.url}/redoc")
    rendered_paths = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', swagger))
    assert rendered_paths == set(spec["paths"]), swagger[-2000:]
    operation_ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    rendered_operations = set(re.findall(r'id="operation/([^"]+)"', redoc))
    assert operation_ids <= rendered_operations, redoc[-2000:]
