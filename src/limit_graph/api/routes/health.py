"""Liveness and readiness: ``GET /health`` needs no credentials."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from limit_graph.api.deps import CurrentPlatform
from limit_graph.api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(platform: CurrentPlatform) -> Any:
    checks: dict[str, Any] = {}
    error = await platform.database_error()
    if error is None:
        checks["database"] = {"status": "ok", "kind": platform.storage.kind}
    else:
        checks["database"] = {"status": "error", "detail": error}
    checks["prefect"] = {"status": "not_configured"}
    checks["backends"] = {"local": {"status": "ok", "instance": "inline"}}
    if checks["database"]["status"] != "ok":
        return JSONResponse({"status": "degraded", "checks": checks}, status_code=503)
    return {"status": "ok", "checks": checks}
