"""Unrestricted resource consumption: page sizes, body sizes and open event streams are
capped, and a request over a cap is refused with a problem before it costs anything.

Every paged list and every bounded query parameter of the OpenAPI document is tried
one above its maximum (422 naming it) and at it (let through); every route that takes a
body is sent one over ``[server] max_body_bytes``, with a ``Content-Length`` and chunked
(413, nothing written); and one principal may hold only ``[server]
max_streams_per_principal`` event streams open at once (429 ``open-streams``), a
stream that ends giving its slot back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from limit_graph.api import create_app
from limit_graph.api.routes.auth import FORM
from limit_graph.api.routes.events import KEEPALIVE_S, stream_holder
from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import Settings, load_settings
from limit_graph.governance.auth import Principal
from tests.fixtures.live import LiveServer
from tests.fixtures.waiting import wait_until
from tests.security.cast import PLATFORM_ADMIN, Caller, World
from tests.security.catalogue import Answer, Operation, operations, request_for, send
from tests.security.conftest import security_settings

MAX_STREAMS = 2
MAX_BODY_BYTES = 64 * 1024

PUBLISHED = operations(create_app(load_settings(environ={}, storage__type="memory")).openapi())
BOUNDED = [op for op in PUBLISHED if op.maxima or op.paged]
TAKING_BODIES = [op for op in PUBLISHED if op.takes_body]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return security_settings(
        tmp_path_factory.mktemp("consumption"),
        server__max_streams_per_principal=MAX_STREAMS,
        server__max_body_bytes=MAX_BODY_BYTES,
    )


@pytest.mark.parametrize("operation", BOUNDED, ids=str)
def test_every_page_and_query_bound_is_enforced(operation: Operation, world: World) -> None:
    if operation.paged:
        assert "limit" in operation.maxima, f"{operation} pages without a bounded limit"
    for name, maximum in operation.maxima.items():
        # team-a's admin, or for the platform's own routes the platform admin
        for role in ("admin", PLATFORM_ADMIN):
            headers = world.callers[role].headers
            request = request_for(operation, world.home(role).shared())
            given = dict(request.params or {})
            at = send(world.http, replace(request, params={**given, name: f"{maximum:g}"}), headers)
            if at.status != 403:
                break
        assert at.status == 200, f"{operation} with {name}={maximum:g}: {at}"
        over = send(
            world.http, replace(request, params={**given, name: f"{maximum + 1:g}"}), headers
        )
        assert over.status == 422, f"{operation} with {name} over {maximum:g}: {over}"
        locations = [error["loc"] for error in over.problem()["errors"]]
        assert ["query", name] in locations, over


def _oversize(operation: Operation, world: World, *, chunked: bool) -> Answer:
    """``operation`` with a body (JSON, or a form where it takes one) over the cap, sent
    whole or in chunks."""
    request = request_for(operation, world.home("admin").shared())
    if request.body is not None and request.body.form is not None:
        media, payload = FORM, b"grant_type=client_credentials&padding=" + b"x" * MAX_BODY_BYTES
    else:
        media, payload = "application/json", b'{"padding": "' + b" " * MAX_BODY_BYTES + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 16 * 1024):
            yield payload[start : start + 16 * 1024]

    response = world.http.request(
        request.method,
        request.url,
        content=chunks() if chunked else payload,
        headers={**world.callers["admin"].headers, "Content-Type": media},
    )
    return Answer(response.status_code, response.headers, response.text)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_every_body_over_the_cap_is_refused_and_writes_nothing(chunked: bool, world: World) -> None:
    admin = world.callers["admin"].headers
    before = _snapshot(world.http, admin)
    for operation in TAKING_BODIES:
        answer = _oversize(operation, world, chunked=chunked)
        assert answer.status == 413, f"{operation}: {answer}"
        assert str(MAX_BODY_BYTES) in answer.problem()["detail"]
    assert _snapshot(world.http, admin) == before


def _snapshot(http: httpx.Client, headers: dict[str, str]) -> list[list[str]]:
    """What team-a's admin sees of its tenant: sessions, principals, keys (by id)."""
    seen = []
    for path in ("/sessions", "/principals", "/keys"):
        listed = http.get(path, headers=headers, params={"limit": 500})
        assert listed.status_code == 200, listed.text
        seen.append(sorted(item["id"] for item in listed.json()["items"]))
    return seen


@pytest.mark.parametrize("value", ["0", '"many"'])
def test_a_stream_cap_that_is_not_a_positive_number_is_refused_at_start(
    value: str, tmp_path: Path
) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(f"[server]\nmax_streams_per_principal = {value}\n")
    with pytest.raises(ConfigError, match=r"server\.max_streams_per_principal") as refused:
        load_settings(config, environ={})
    assert str(config) in str(refused.value)
    assert load_settings(environ={}).server.max_streams_per_principal == 16


def holder_of(caller: Caller) -> str:
    assert caller.name and caller.tenant and caller.id
    return stream_holder(Principal(caller.name, caller.tenant, id=uuid.UUID(caller.id)))


def test_one_principal_holds_at_most_n_open_streams(world: World, live: LiveServer) -> None:
    author, viewer = world.callers["author"], world.callers["viewer"]
    path = f"/sessions/{world.home('author').shared().session_id}/events"
    events = live.app_state.platform.events  # type: ignore[attr-defined]
    holder = holder_of(author)
    with ExitStack() as open_streams:
        for _ in range(MAX_STREAMS):
            stream = world.http.stream("GET", path, headers=author.headers)
            assert open_streams.enter_context(stream).status_code == 200
        assert events.open_streams(holder) == MAX_STREAMS
        with world.http.stream("GET", path, headers=author.headers) as refused:
            assert refused.status_code == 429, f"stream {MAX_STREAMS + 1} was let open"
            problem = Answer(429, refused.headers, refused.read().decode()).problem()
        assert problem["policy_ids"] == ["open-streams"]
        assert problem["retry_after_s"] == KEEPALIVE_S
        assert refused.headers["retry-after"] == str(KEEPALIVE_S)
        # Another principal's streams are counted apart.
        with world.http.stream("GET", path, headers=viewer.headers) as theirs:
            assert theirs.status_code == 200
    # Every stream closed: once the server has seen them go, the slots are free again.
    wait_until(lambda: events.open_streams(holder) == 0, what="the closed streams' slots")
    with world.http.stream("GET", path, headers=author.headers) as again:
        assert again.status_code == 200
