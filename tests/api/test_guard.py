"""No exception leaves the app: each is a problem+json 500 (or ends its stream), logged
once, and the client's keep-alive connection stays usable.

Before, Starlette answered 500 and re-raised; uvicorn logged the error again and
dropped the connection, so the client's next request on it was reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from limit_graph.api import create_app
from limit_graph.api.guard import guarded
from limit_graph.core.settings import Settings, load_settings
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.live import LiveServer, live_server

HEADERS = {"X-API-Key": ADMIN_KEY}


class Broken(Exception):
    """What the test routes raise."""


def _settings(tmp_path: Path) -> Settings:
    return load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'guard.db'}",
    )


def _with_broken_routes(settings: Settings) -> FastAPI:
    app = create_app(settings)

    async def boom() -> None:
        raise Broken("a bug in a route")

    async def broken_stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first part;"
            raise Broken("a bug half-way through a stream")

        return StreamingResponse(chunks(), media_type="text/plain")

    app.add_api_route("/test/boom", boom, methods=["GET"])
    app.add_api_route("/test/stream", broken_stream, methods=["GET"])
    return app


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = _settings(tmp_path)
    with live_server(settings, _with_broken_routes(settings)) as running:
        yield running


def _local_port(response: httpx.Response) -> int:
    """The client side's port of the connection that carried ``response``."""
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


def _unhandled(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.levelno >= logging.ERROR]


def test_a_body_that_was_a_500_keeps_the_connection(tmp_path: Path) -> None:
    """The issue's case: a lone surrogate was a 500 escaping from the writer."""
    with (
        live_server(_settings(tmp_path)) as running,
        httpx.Client(base_url=running.url, headers=HEADERS) as client,
    ):
        sid = client.post("/sessions", json={}).json()["id"]
        bad = client.post(
            f"/sessions/{sid}/execute",
            content=rb'{"agent": "echo", "inputs": {"x": "\ud800"}}',
            headers={"Content-Type": "application/json"},
        )
        assert bad.status_code == 400
        again = client.get(f"/sessions/{sid}")
        assert again.status_code == 200
        assert _local_port(again) == _local_port(bad)


def test_an_unexpected_error_is_a_problem_logged_once(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with httpx.Client(base_url=server.url, headers=HEADERS) as client:
        caplog.clear()
        failed = client.get("/test/boom")
        assert failed.status_code == 500
        assert failed.headers["content-type"].startswith("application/problem+json")
        assert failed.json()["type"].endswith("/internal")
        assert "a bug" not in failed.text  # the detail stays in the log
        after = client.get("/health")
        assert after.status_code == 200
        assert _local_port(after) == _local_port(failed)
    [record] = _unhandled(caplog.records)
    assert record.name == "limit_graph.api" and record.exc_info is not None
    assert isinstance(record.exc_info[1], Broken)


def test_a_stream_that_fails_half_way_ends_and_is_logged_once(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with httpx.Client(base_url=server.url, headers=HEADERS) as client:
        caplog.clear()
        streamed = client.get("/test/stream")
        assert streamed.status_code == 200 and streamed.content == b"first part;"
        after = client.get("/health")
        assert after.status_code == 200
        assert _local_port(after) == _local_port(streamed)
    [record] = _unhandled(caplog.records)
    assert record.exc_info is not None and isinstance(record.exc_info[1], Broken)


# --- the guard on its own, as the ASGI server sees it ----------------------------

SCOPE: Scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _run(app: Any) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await guarded(app, SCOPE, _no_body, send)
    return sent


async def test_an_error_before_the_answer_becomes_the_500_problem() -> None:
    async def app(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise Broken("outside every handler")

    start, body = await _run(app)
    assert start["type"] == "http.response.start" and start["status"] == 500
    assert (b"content-type", b"application/problem+json") in start["headers"]
    assert b'"status":500' in body["body"] and body.get("more_body", False) is False


async def test_an_error_after_the_answer_started_ends_the_body() -> None:
    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise Broken("mid-stream")

    sent = await _run(app)
    assert [m.get("body") for m in sent[1:]] == [b"part", b""]
    assert sent[-1]["more_body"] is False


async def test_an_error_after_a_whole_answer_is_only_logged() -> None:
    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        raise Broken("after the end")

    assert len(await _run(app)) == 2


async def test_a_send_that_fails_in_turn_is_not_raised() -> None:
    async def app(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise Broken("first")

    async def gone(_message: Message) -> None:
        raise OSError("the client went away")

    await guarded(app, SCOPE, _no_body, gone)


async def test_cancellation_is_not_swallowed() -> None:
    async def app(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await _run(app)
