"""Metrics and traces of the orchestration layer.

Each platform owns a Prometheus registry (no process-wide globals, so several
platforms can live in one test process); the API adds its request metrics to it.

Two kinds of metric.  *Counted* ones (counters, histograms, the running gauge) are
changed where things happen.  *Read* ones (:data:`READINGS`: queue depth, runners,
ledger size and checkpoints, the last verification, quota use, mirror lag) are read
at each scrape from whoever knows them (:meth:`Telemetry.watch`), mostly the shared
store, so every process and every replica shows the same value of them (dashboards
take their ``max``, and ``sum`` the counted ones).

With several API processes on one port (``[server] workers = N``) a scrape reaches any
one of them, so ``limit up`` runs them in prometheus-client's multiprocess mode: it
sets ``PROMETHEUS_MULTIPROC_DIR`` for them, each writes its counted metrics to files
there, and whichever answers ``/metrics`` adds up every process's
(:meth:`Telemetry.for_process`).  Read metrics need no files: they come from the store.

Spans go to the global OpenTelemetry tracer provider, which ``configure_tracing``
sets up when tracing is on: by default only when an OTLP endpoint is configured, since
spans nobody exports cost each request about as much as the rest of its middleware
(``[telemetry] tracing = true`` makes them anyway, for a processor added in process).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from limit_graph import __version__
from limit_graph.core.models import BackendKind

__all__ = [
    "MULTIPROCESS_DIR_VARIABLE",
    "READINGS",
    "Reader",
    "Telemetry",
    "configure_tracing",
    "tracer",
    "tracing_enabled",
]

tracer = trace.get_tracer("limit_graph")

_configured = False

_ID_SEGMENT = re.compile(r"((?:session|principal)):[^:]+")

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's own variable: where the API processes of one ``limit up`` keep
their counted metrics.  It must be set before the process imports prometheus-client."""

Reader = Callable[[], Iterable[tuple[tuple[str, ...], float]]]
"""What a read metric's source answers at a scrape: ``(label values, value)`` pairs."""

READINGS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "limit_queue_depth": (
        "Executions queued for runners, by pool and backend instance.",
        ("pool", "backend_instance"),
    ),
    "limit_runners": ("Runners heard from within three leases, by pool.", ("pool",)),
    "limit_ledger_entries": ("Entries in the provenance ledger.", ()),
    "limit_ledger_checkpoint_tree_size": ("Tree size of the latest signed checkpoint.", ()),
    "limit_ledger_checkpoint_timestamp_seconds": (
        "When the latest signed checkpoint was made (Unix time).",
        (),
    ),
    "limit_ledger_checkpoint_age_seconds": ("Time since the latest signed checkpoint.", ()),
    "limit_ledger_verification_ok": (
        "1 if the last whole-ledger verification passed, 0 if it failed (absent before the first).",
        (),
    ),
    "limit_ledger_verification_timestamp_seconds": (
        "When the last whole-ledger verification ran (Unix time).",
        (),
    ),
    "limit_ledger_verified_entries": ("Entries the last whole-ledger verification covered.", ()),
    "limit_quota_used": (
        "Use of a tenant's quota in its current window, in the resource's measure.",
        ("tenant", "resource", "period"),
    ),
    "limit_quota_reserved": (
        "Held by running work against a tenant's quota in its current window.",
        ("tenant", "resource", "period"),
    ),
    "limit_quota_limit": (
        "A tenant's quota limit, in the resource's measure.",
        ("tenant", "resource", "period"),
    ),
    "limit_mirror_lag_seconds": (
        "Age of the oldest ledger entry not yet shown in Prefect (0 when caught up).",
        (),
    ),
    "limit_mirror_backlog_entries": ("Ledger entries not yet shown in Prefect.", ()),
    "limit_rate_limiter_failing": (
        "1 while the shared rate limiter's store is unreachable, by how it decides "
        "meanwhile (mode: open lets requests through, closed refuses them).",
        ("mode",),
    ),
    "limit_store_up": ("1 if the last scrape could read the store, else 0.", ()),
}
"""The read metrics: name -> (help, label names).  No label holds an id."""


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


class _Readings(Collector):
    """Yields each watched read metric from its reader, at collection time."""

    def __init__(self) -> None:
        self.readers: dict[str, Reader] = {}

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, labels) in READINGS.items():
            read = self.readers.get(name)
            if read is None:
                continue
            family = GaugeMetricFamily(name, documentation, labels=labels)
            for label_values, value in read():
                family.add_metric(list(label_values), value)
            yield family


class Telemetry:
    """The platform's metrics: ``registry`` is what ``/metrics`` shows; counted metrics
    are made in ``instruments`` (the same registry, but for the files of multiprocess
    mode when ``multiprocess_dir`` is given).

    >>> telemetry = Telemetry()
    >>> telemetry.watch("limit_runners", lambda: [(("remote",), 2.0)])
    >>> telemetry.registry.get_sample_value("limit_runners", {"pool": "remote"})
    2.0
    """

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess_dir is not None
        if multiprocess_dir is None:
            self.instruments = self.registry
        else:
            if values.ValueClass is values.MutexValue:
                raise RuntimeError(
                    f"{MULTIPROCESS_DIR_VARIABLE} was not set when prometheus-client was "
                    "imported: this process's metrics would not reach the files"
                )
            self.instruments = CollectorRegistry()
            MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        self._readings = _Readings()
        self.registry.register(self._readings)
        registry = self.instruments
        Gauge(
            "limit_build_info",
            "Platform version.",
            ["version"],
            registry=registry,
            multiprocess_mode="livemax",
        ).labels(__version__).set(1)
        self.executions = Counter(
            "limit_executions",
            "Executions that reached a final state.",
            ["agent", "backend", "state"],
            registry=registry,
        )
        self.execution_seconds = Histogram(
            "limit_execution_duration_seconds",
            "Time from start to final state.",
            ["agent", "backend"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300),
        )
        self.running = Gauge(
            "limit_executions_running",
            "Executions running in this process.",
            ["backend"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        for kind in BackendKind:  # a series per backend from the start, 0 until one runs
            self.running.labels(kind.value)
        self.cache_hits = Counter(
            "limit_cache_hits", "Executions answered from the result cache.", registry=registry
        )
        self.denials = Counter(
            "limit_policy_denials",
            "Executions denied by a pre-task check.",
            ["policy_id"],
            registry=registry,
        )
        self.mirror_task_runs = Counter(
            "limit_mirror_task_runs",
            "Task runs the Prefect mirror created, one execution each or a group.",
            ["kind"],
            registry=registry,
        )
        self.rate_decisions = Counter(
            "limit_rate_limit_decisions",
            "Rate-limit checks by route class and outcome (allowed, limited, failed_open, "
            "failed_closed: decided without the shared store).",
            ["route_class", "outcome"],
            registry=registry,
        )

    @classmethod
    def for_process(cls, environ: Mapping[str, str] = os.environ) -> Telemetry:
        """This process's telemetry: in multiprocess mode when ``limit up`` started it as
        one of several API processes (``PROMETHEUS_MULTIPROC_DIR`` is set)."""
        return cls(multiprocess_dir=environ.get(MULTIPROCESS_DIR_VARIABLE) or None)

    def watch(self, name: str, read: Reader) -> None:
        """Show the read metric ``name`` (one of :data:`READINGS`) as ``read()`` says at
        each scrape; a later reader of the same name replaces the earlier one."""
        if name not in READINGS:
            raise KeyError(f"{name} is not a read metric (READINGS)")
        self._readings.readers[name] = read

    def count_denial(self, policy_id: str) -> None:
        """One execution denied by ``policy_id``, labelled without the id of a session or
        principal that a quota's policy id names (``quota:session:<id>:shots``).

        >>> telemetry = Telemetry()
        >>> telemetry.count_denial("quota:principal:5f0c4a8e-0000-4000-8000-000000000000:shots")
        >>> telemetry.registry.get_sample_value(
        ...     "limit_policy_denials_total", {"policy_id": "quota:principal:shots"}
        ... )
        1.0
        """
        self.denials.labels(_ID_SEGMENT.sub(r"\1", policy_id)).inc()

    def count_rate_decision(self, route_class: str, outcome: str) -> None:
        """One rate-limit decision, made on every request of a class with rates."""
        self.rate_decisions.labels(route_class, outcome).inc()

    def watch_rate_limiter(self, failing: Callable[[], str | None]) -> None:
        """Read ``failing()`` ("open", "closed" or ``None``) at each scrape for the gauge."""
        self.watch(
            "limit_rate_limiter_failing",
            lambda: [((mode,), float(failing() == mode)) for mode in ("open", "closed")],
        )
