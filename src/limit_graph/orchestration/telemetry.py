"""Metrics and traces of the orchestration layer.

Each platform owns a Prometheus registry (no process-wide globals, so several
platforms can live in one test process); the API adds its request metrics to it.
Spans go to the global OpenTelemetry tracer provider, which ``configure_tracing``
sets up when tracing is on: by default only when an OTLP endpoint is configured, since
spans nobody exports cost each request about as much as the rest of its middleware
(``[telemetry] tracing = true`` makes them anyway, for a processor added in process).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from limit_graph import __version__

__all__ = ["Telemetry", "configure_tracing", "tracer", "tracing_enabled"]

tracer = trace.get_tracer("limit_graph")

_configured = False


def tracing_enabled(otlp_endpoint: str | None = None, tracing: bool | None = None) -> bool:
    """Whether spans are made: as ``tracing`` says, else when they are exported
    (``otlp_endpoint`` or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    if tracing is not None:
        return tracing
    return bool(otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure_tracing(otlp_endpoint: str | None = None, tracing: bool | None = None) -> bool:
    """Install the tracer provider once if tracing is on (:func:`tracing_enabled`),
    exporting to ``otlp_endpoint`` when given; whether it is on.  Off, the global
    provider stays OpenTelemetry's default, whose spans record nothing.

    The standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` variable also turns export on.
    """
    global _configured
    if not tracing_enabled(otlp_endpoint, tracing):
        return False
    if _configured:
        return True
    provider = TracerProvider(resource=Resource.create({"service.name": "limit-graph"}))
    endpoint = otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces"))
        )
    trace.set_tracer_provider(provider)
    _configured = True
    return True


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        Gauge("limit_build_info", "Platform version.", ["version"], registry=self.registry).labels(
            __version__
        ).set(1)
        self.executions = Counter(
            "limit_executions",
            "Executions that reached a final state.",
            ["agent", "backend", "state"],
            registry=self.registry,
        )
        self.execution_seconds = Histogram(
            "limit_execution_duration_seconds",
            "Time from start to final state.",
            ["agent", "backend"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300),
        )
        self.running = Gauge(
            "limit_executions_running",
            "Executions running in this process.",
            ["backend"],
            registry=self.registry,
        )
        self.ledger_size = Gauge(
            "limit_ledger_entries", "Entries in the provenance ledger.", registry=self.registry
        )
        self.queue_depth = Gauge(
            "limit_queue_depth",
            "Executions queued for runners, by backend instance.",
            ["instance"],
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "limit_cache_hits", "Executions answered from the result cache.", registry=self.registry
        )
        self.denials = Counter(
            "limit_policy_denials",
            "Executions denied by a pre-task check.",
            ["policy_id"],
            registry=self.registry,
        )
        self.mirror_lag = Gauge(
            "limit_mirror_lag_seconds",
            "Age of the oldest ledger entry not yet shown in Prefect (0 when caught up).",
            registry=self.registry,
        )
        self.mirror_backlog = Gauge(
            "limit_mirror_backlog_entries",
            "Ledger entries not yet shown in Prefect.",
            registry=self.registry,
        )
        self.mirror_task_runs = Counter(
            "limit_mirror_task_runs",
            "Task runs the Prefect mirror created, one execution each or a group.",
            ["kind"],
            registry=self.registry,
        )
        self.rate_decisions = Counter(
            "limit_rate_limit_decisions",
            "Rate-limit checks by route class and outcome (allowed, limited, failed_open, "
            "failed_closed: decided without the shared store).",
            ["route_class", "outcome"],
            registry=self.registry,
        )
        self.rate_limiter_failing = Gauge(
            "limit_rate_limiter_failing",
            "1 while the shared rate limiter's store is unreachable, by how it decides "
            "meanwhile (mode: open lets requests through, closed refuses them).",
            ["mode"],
            registry=self.registry,
        )

    def count_rate_decision(self, route_class: str, outcome: str) -> None:
        """One rate-limit decision, made on every request of a class with rates."""
        self.rate_decisions.labels(route_class, outcome).inc()

    def watch_rate_limiter(self, failing: Callable[[], str | None]) -> None:
        """Read ``failing()`` ("open", "closed" or ``None``) at each scrape for the gauge."""

        def reader(mode: str) -> Callable[[], float]:
            return lambda: float(failing() == mode)

        for mode in ("open", "closed"):
            self.rate_limiter_failing.labels(mode).set_function(reader(mode))
