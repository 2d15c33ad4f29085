"""Spans are made only when they are exported: no OTLP endpoint, no request spans
(they cost a request as much as the rest of its middleware); ``[telemetry] tracing``
overrides either way."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from limit_graph.api import create_app
from limit_graph.core.settings import load_settings
from limit_graph.orchestration.telemetry import tracing_enabled


def test_tracing_follows_the_exporter_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing_enabled() is False
    assert tracing_enabled("http://collector:4318") is True
    assert tracing_enabled("http://collector:4318", tracing=False) is False
    assert tracing_enabled(None, tracing=True) is True
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing_enabled() is True


def test_an_app_with_no_exporter_is_not_instrumented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    settings = load_settings(environ={}, home=str(tmp_path), storage__type="memory")
    app = create_app(settings)
    assert not _instrumented(app)
    traced = create_app(
        load_settings(
            environ={}, home=str(tmp_path), storage__type="memory", telemetry__tracing=True
        )
    )
    assert _instrumented(traced)


def _instrumented(app: FastAPI) -> bool:
    """The mark OpenTelemetry's FastAPI instrumentation leaves on an app it wrapped (it
    has no public one)."""
    return getattr(app, "_is_instrumented_by_opentelemetry", False) is True
