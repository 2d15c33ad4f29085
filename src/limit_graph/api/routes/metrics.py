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
    telemetry = platform.telemetry
    telemetry.ledger_size.set(await platform.storage.ledger_size())
    return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)
