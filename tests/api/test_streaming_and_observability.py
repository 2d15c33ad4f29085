"""Events, cancel, metrics, headers, CORS, tracing and reserved routes, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from limit_graph.cli.watch import parse_sse
from limit_graph.core.settings import load_settings
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.live import LiveServer, live_server

HEADERS = {"X-API-Key": ADMIN_KEY}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("live")
    settings = load_settings(
        environ={},
        home=str(home),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{home / 'live.db'}",
        server__cors_origins=["https://app.example.org"],
        telemetry__tracing=True,  # spans with no exporter, for the test's own processor
    )
    with live_server(settings) as running:
        yield running


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as http:
        yield http


def new_session(client: httpx.Client) -> str:
    sid: str = client.post("/sessions", json={}).json()["id"]
    return sid


def read_events(
    client: httpx.Client,
    sid: str,
    count: int,
    last_id: str | None = None,
    once_open: Callable[[], object] | None = None,
) -> list[dict[str, Any]]:
    """The first ``count`` events of the session's stream; ``once_open`` is called when
    the stream has answered, before anything is read from it."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    found: list[dict[str, Any]] = []
    with client.stream("GET", f"/sessions/{sid}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        if once_open is not None:
            once_open()
        for event in parse_sse(response.iter_lines()):
            found.append({"id": event["id"], "event": event["event"], **json.loads(event["data"])})
            if len(found) == count:
                break
    return found


def test_events_replay_resume_and_arrive_live(client: httpx.Client) -> None:
    sid = new_session(client)
    for n in range(2):
        client.post(f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {"n": n}})
    history = read_events(client, sid, 5)
    assert [e["action"] for e in history] == [
        "session.created",
        "execution.started",
        "execution.succeeded",
        "execution.started",
        "execution.succeeded",
    ]
    ids = [int(e["id"]) for e in history]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert history[2]["state"] == "succeeded" and history[2]["agent"] == "echo"
    assert "inputs" not in history[2] and "result" not in history[2]

    resumed = read_events(client, sid, 2, last_id=history[2]["id"])
    assert [e["id"] for e in resumed] == [history[3]["id"], history[4]["id"]]

    def execute() -> None:  # on another connection, while the stream is open
        assert client.post(f"/sessions/{sid}/execute", json={"agent": "fail"}).status_code == 200

    live = read_events(client, sid, 2, last_id=history[4]["id"], once_open=execute)
    assert [e["state"] for e in live] == ["running", "failed"]


def test_event_stream_errors(client: httpx.Client) -> None:
    sid = new_session(client)
    bad = client.get(f"/sessions/{sid}/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    missing = client.get("/sessions/00000000-0000-4000-8000-000000000000/events")
    assert missing.status_code == 404


def test_cancel_stops_a_running_execution(client: httpx.Client) -> None:
    sid = new_session(client)
    started = client.post(
        f"/sessions/{sid}/execute", json={"agent": "sleep", "inputs": {"seconds": 30}, "wait_s": 0}
    )
    assert started.status_code == 202
    eid = started.json()["id"]
    cancelled = client.post(f"/sessions/{sid}/executions/{eid}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["error"]["type"] == "Cancelled"
    again = client.post(f"/sessions/{sid}/executions/{eid}/cancel")
    assert again.status_code == 409
    status = client.get(f"/sessions/{sid}/status").json()
    assert status["counts"]["cancelled"] == 1 and status["counts"]["running"] == 0


def test_metrics_scrape_without_credentials(client: httpx.Client, server: LiveServer) -> None:
    sid = new_session(client)
    client.post(f"/sessions/{sid}/execute", json={"agent": "echo"})
    client.post(f"/sessions/{sid}/execute", json={"agent": "teleport"})
    scraped = httpx.get(server.url + "/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert (
        'limit_http_requests_total{method="POST",route="/sessions/{session_id}/execute",'
        'status="200"}' in text
    )
    assert 'route="/sessions/{session_id}/execute",status="422"' in text
    assert 'limit_executions_total{agent="echo",backend="local",state="succeeded"}' in text
    assert "limit_http_request_duration_seconds_bucket" in text
    ledger = next(line for line in text.splitlines() if line.startswith("limit_ledger_entries "))
    assert float(ledger.split()[1]) >= 3


def test_security_headers_and_request_ids(client: httpx.Client) -> None:
    response = client.get("/sessions", headers={"X-Request-ID": "req-123"})
    assert response.headers["x-request-id"] == "req-123"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) == 32


def test_cors_allows_only_configured_origins(client: httpx.Client) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = client.options(
        "/sessions", headers={"Origin": "https://app.example.org", **preflight}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
    simple = client.get("/health", headers={"Origin": "https://app.example.org"})
    exposed = {
        h.strip() for h in simple.headers["access-control-expose-headers"].lower().split(",")
    }
    assert {"retry-after", "content-disposition", "x-checkpoint-note"} <= exposed
    denied = client.options("/sessions", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers


def test_traceparent_continues_into_the_execution_span(client: httpx.Client) -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    sid = new_session(client)
    client.post(
        f"/sessions/{sid}/execute",
        json={"agent": "echo"},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    spans = exporter.get_finished_spans()
    execute = next(s for s in spans if s.name == "execute echo")
    assert format(execute.context.trace_id, "032x") == trace_id
    assert execute.attributes is not None and execute.attributes["limit.state"] == "succeeded"
    exporter.shutdown()


def test_json_logs_carry_request_ids(tmp_path: Path) -> None:
    script = tmp_path / "log.py"
    script.write_text(
        "import logging\n"
        "from limit_graph.core.logs import configure_logging, log_context\n"
        "configure_logging('INFO')\n"
        "with log_context(request_id='r1', session_id='s1'):\n"
        "    logging.getLogger('limit_graph.x').info('hello %s', 'there')\n"
        "logging.getLogger('limit_graph.x').debug('hidden')\n"
        "logging.getLogger('great_expectations.data_context').info('set-up chatter')\n"
        "logging.getLogger('great_expectations.data_context').warning('a real warning')\n"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(lines) == 2
    assert lines[0]["message"] == "hello there"
    assert lines[1]["message"] == "a real warning"
    assert lines[0]["request_id"] == "r1" and lines[0]["session_id"] == "s1"
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "limit_graph.x"
