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
    try:
        await platform.storage.ping()
        checks["database"] = {"status": "ok", "kind": platform.storage.kind}
    except Exception as exc:
        checks["database"] = {"status": "error", "detail": f"{type(exc).__name__}: {exc}"}
    checks["prefect"] = {"status": "not_configured"}
    checks["backends"] = {"local": {"status": "ok", "instance": "inline"}}
    if checks["database"]["status"] != "ok":
        return JSONResponse({"status": "degraded", "checks": checks}, status_code=503)
    return {"status": "ok", "checks": checks}
