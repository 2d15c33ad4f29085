"""Liveness and readiness: ``GET /health`` needs no credentials.

A rate limiter whose Redis is out of reach makes the platform degraded (still 200): it
answers every request, as ``[governance] fail_open`` says.  ``process`` names the API
process that answered (``limit up`` may run several: ``[server] workers``).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from limit_graph.api.deps import CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.schemas import HealthOut
from limit_graph.core.models import BackendKind
from limit_graph.orchestration.platform import Platform

router = APIRouter(tags=["health"], route_class=IJSONRoute)


def backends_check(platform: Platform) -> dict[str, Any]:
    """Each backend instance: its health, queue depth and live runners (by pool)."""
    dispatcher = platform.dispatcher
    router_ = dispatcher.router
    health = router_.health.snapshot()
    report: dict[str, Any] = {}
    for kind in BackendKind:
        live = dispatcher.live_runners(kind)
        for info in router_.instances(kind):
            report[info.name] = {
                "kind": kind.value,
                "status": health.get(info.name, {}).get("state", "healthy"),
                "queued": dispatcher.depth(info.name),
                "pool_runners": live,
            }
    return report


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(platform: CurrentPlatform) -> Any:
    checks: dict[str, Any] = {}
    database = await platform.database_probe.error()
    checks["database"] = (
        {"status": "ok", "kind": platform.storage.kind}
        if database is None
        else {"status": "error", "detail": database}
    )
    if platform.prefect_probe is None:
        checks["prefect"] = {"status": "not_configured"}
    else:
        prefect = await platform.prefect_probe.error()
        checks["prefect"] = (
            {"status": "ok"}
            if prefect is None
            else {
                "status": "error",
                "detail": prefect,
            }
        )
    checks["backends"] = backends_check(platform)
    checks["rate_limiter"] = await platform.rates.status()
    if platform.leaderships:  # which process runs the mirror and the supervisor
        checks["leases"] = {
            name: {"holder": lead.current_holder, "this_process": lead.is_leader}
            for name, lead in platform.leaderships.items()
        }
    process = {"pid": os.getpid()}
    if database is not None:
        return JSONResponse(
            {"status": "degraded", "checks": checks, "process": process}, status_code=503
        )
    degraded = checks["prefect"]["status"] == "error" or checks["rate_limiter"] != "ok"
    return {"status": "degraded" if degraded else "ok", "checks": checks, "process": process}
