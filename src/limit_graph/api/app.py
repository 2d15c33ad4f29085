"""The FastAPI application factory.

>>> from limit_graph.core.settings import load_settings
>>> app = create_app(load_settings(environ={}, storage__type="memory"))
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from limit_graph import __version__
from limit_graph.api.docs import install_docs
from limit_graph.api.guard import GuardedFastAPI
from limit_graph.api.limits import BodySizeLimit
from limit_graph.api.observability import RequestObserver
from limit_graph.api.problems import install_problem_handlers
from limit_graph.api.routes import (
    agents,
    audit,
    auth,
    data_keys,
    events,
    executions,
    grants,
    health,
    identity,
    lineage,
    maintenance,
    metrics,
    policies,
    provenance,
    quotas,
    replay,
    reserved,
    runners,
    sessions,
    workflows,
)
from limit_graph.api.routes.audit import CHECKPOINT_HEADERS
from limit_graph.api.schemas import ERROR_RESPONSES
from limit_graph.core.settings import Settings
from limit_graph.orchestration.platform import Platform
from limit_graph.orchestration.telemetry import Telemetry, configure_tracing

__all__ = ["create_app"]

log = logging.getLogger("limit_graph.api")


def create_app(settings: Settings, *, platform: Platform | None = None) -> FastAPI:
    """The REST app; it starts the platform (or uses ``platform``) in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = platform or await Platform.start(settings, telemetry=telemetry)
        app.state.platform = started
        try:
            yield
        finally:
            if platform is None:
                await started.close()

    app = GuardedFastAPI(
        title="LIMIT-Graph",
        version=__version__,
        description="Governed, provenance-tracked workflows for hybrid quantum-classical work.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        docs_url=None,  # served from the package by install_docs, not from a CDN
        redoc_url=None,
    )
    telemetry = platform.telemetry if platform else Telemetry.for_process()
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.server.max_body_bytes)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID"],
            expose_headers=[
                "Location",
                "Retry-After",
                "X-Request-ID",
                "Content-Disposition",
                *CHECKPOINT_HEADERS,  # an export's checkpoint, for a browser client to read
            ],
        )
    app.add_middleware(
        RequestObserver,
        registry=telemetry.instruments,
        hsts=settings.server.ssl_certfile is not None,
    )
    routers = [
        m.router
        for m in (
            health,
            metrics,
            sessions,
            executions,
            events,
            agents,
            runners,
            maintenance,
            provenance,
            lineage,
            audit,
            replay,
            workflows,
            auth,
            data_keys,
            identity,
            grants,
            policies,
            quotas,
            reserved,
        )
    ]
    for router in routers:
        app.include_router(router)
    _add_component_schemas(app, executions.execute_body_schemas())
    install_docs(app)
    app.state.route_methods = [
        (route.path_regex, route.methods)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    if configure_tracing(settings.telemetry.otlp_endpoint, settings.telemetry.tracing):
        FastAPIInstrumentor.instrument_app(app, excluded_urls="/health,/metrics")
    return app


def _add_component_schemas(app: FastAPI, schemas: dict[str, Any]) -> None:
    """Put schemas that routes refer to by hand (``openapi_extra``) in the document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in schemas.items():
                components.setdefault(name, schema)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
