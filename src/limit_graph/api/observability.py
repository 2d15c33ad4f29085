"""Request middleware: request ids, access logs, Prometheus metrics, security headers."""

from __future__ import annotations

import logging
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from limit_graph.core.logs import log_context

__all__ = ["RequestObserver"]

log = logging.getLogger("limit_graph.api.access")

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
API_ONLY_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
}
DOCS_PATHS = ("/docs", "/redoc")


class RequestObserver:
    """Gives each request an id (``X-Request-ID``, kept if the client sent one), counts
    and times it by route template, logs it, and adds security headers."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts
        self.requests = Counter(
            "limit_http_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.errors = Counter(
            "limit_http_errors",
            "HTTP responses with status >= 500.",
            ["method", "route"],
            registry=registry,
        )
        self.latency = Histogram(
            "limit_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent_id = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent_id if 0 < len(sent_id) <= 128 else uuid.uuid4().hex
        status = 500
        path: str = scope["path"]
        is_docs = path.startswith(DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not is_docs:
                    for name, value in API_ONLY_HEADERS.items():
                        headers.setdefault(name, value)
                if self.hsts:
                    headers["strict-transport-security"] = "max-age=31536000"
            await send(message)

        started = time.perf_counter()
        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_headers)
            finally:
                elapsed = time.perf_counter() - started
                route = scope.get("route")
                template = getattr(route, "path_format", None) or "unmatched"
                method = scope["method"]
                self.requests.labels(method, template, str(status)).inc()
                self.latency.labels(method, template).observe(elapsed)
                if status >= 500:
                    self.errors.labels(method, template).inc()
                log.debug(
                    "%s %s %d %.1f ms",
                    method,
                    path,
                    status,
                    elapsed * 1000,
                    extra={"status": status, "route": template, "duration_ms": elapsed * 1000},
                )
