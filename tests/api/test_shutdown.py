"""Stopping the server answers what it holds open: a runner's claim and event streams
end cleanly within uvicorn's grace period, and nothing is logged as an error."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from limit_graph.core.models import BackendKind
from limit_graph.core.settings import load_settings
from tests.fixtures.live import live_server

ADMIN = "shutdown-admin-key-0123456789abcdef"
RUNNER = "shutdown-runner-key-0123456789abcde"


def test_a_waiting_claim_and_open_streams_end_cleanly_on_shutdown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN,
        dispatch__runner_api_key=RUNNER,
        storage__url=f"sqlite:///{tmp_path / 'api.db'}",
    )
    outcomes: dict[str, Any] = {}
    streaming = threading.Barrier(3)

    def claim(url: str) -> None:
        body = {"runner_id": "r-1", "pool": "remote", "wait_s": 20}
        try:
            answer = httpx.post(
                f"{url}/runners/claim", json=body, headers={"X-API-Key": RUNNER}, timeout=40
            )
            outcomes["claim"] = (answer.status_code, answer.json())
        except httpx.HTTPError as exc:
            outcomes["claim"] = exc

    def watch(url: str, sid: str, name: str) -> None:
        lines: list[str] = []
        try:
            with httpx.stream(
                "GET", f"{url}/sessions/{sid}/events", headers={"X-API-Key": ADMIN}, timeout=40
            ) as response:
                for line in response.iter_lines():
                    lines.append(line)
                    if line.startswith("data:") and sum(x.startswith("data:") for x in lines) == 1:
                        streaming.wait(timeout=30)
            outcomes[name] = lines
        except httpx.HTTPError as exc:
            outcomes[name] = exc

    caplog.set_level(logging.INFO)
    with live_server(settings, graceful_shutdown_s=3) as server:
        platform: Any = server.app_state.platform  # type: ignore[attr-defined]
        created = httpx.post(
            f"{server.url}/sessions", json={"config": {}}, headers={"X-API-Key": ADMIN}
        )
        sid = created.json()["id"]
        threads = [
            threading.Thread(target=claim, args=(server.url,)),
            threading.Thread(target=watch, args=(server.url, sid, "stream-1")),
            threading.Thread(target=watch, args=(server.url, sid, "stream-2")),
        ]
        for thread in threads:
            thread.start()
        streaming.wait(timeout=30)  # both streams have their first event
        deadline = time.monotonic() + 30
        while platform.executions.dispatcher.live_runners(BackendKind.REMOTE) == 0:
            assert time.monotonic() < deadline, f"the claim never reached the server: {outcomes}"
            threading.Event().wait(0.05)  # the claim has reached the dispatcher
    for thread in threads:
        thread.join(timeout=30)

    assert outcomes["claim"] == (200, {"leases": [], "cancel": []})
    for name in ("stream-1", "stream-2"):
        lines = outcomes[name]
        assert isinstance(lines, list), f"{name} broke off: {lines!r}"
        events = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
        assert [e["action"] for e in events] == ["session.created"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
