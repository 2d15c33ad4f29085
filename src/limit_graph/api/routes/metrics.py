"""``GET /metrics``: Prometheus text format; needs no credentials."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from limit_graph.api.deps import CurrentPlatform
from limit_graph.api.ijson import IJSONRoute

router = APIRouter(tags=["health"], route_class=IJSONRoute)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Metrics"}},
)
async def metrics(platform: CurrentPlatform) -> Response:
    """Every metric of this process (of every API process of ``limit up``, in its
    multiprocess mode), with what the store says now (``orchestration/scrape.py``)."""
    await platform.scrape.refresh()
    return Response(generate_latest(platform.telemetry.registry), media_type=CONTENT_TYPE_LATEST)
