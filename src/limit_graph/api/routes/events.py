"""``GET /sessions/{id}/events``: Server-Sent Events of session and execution changes.

A stream holds a connection and a task for as long as its client keeps it open, so
each principal may hold at most ``[server] max_streams_per_principal`` of them open on
a process at once; one more is a 429 problem (policy ``open-streams``) until one ends.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from limit_graph.api.deps import CanReadSessions, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.core.errors import InvalidInput
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.events import event_of

router = APIRouter(
    prefix="/sessions/{session_id:uuid}", tags=["executions"], route_class=IJSONRoute
)

KEEPALIVE_S = 15
# sse-starlette sees a signalled shutdown itself and would cancel the stream at once,
# leaving the response incomplete; this grace lets Platform.drain end it first.
SHUTDOWN_GRACE_S = 1.0


def _resume_point(last_event_id: str | None) -> int:
    if last_event_id is None or last_event_id == "":
        return -1
    if not (last_event_id.isascii() and last_event_id.isdigit()):
        raise InvalidInput(
            "Last-Event-ID must be an event id this stream sent (a whole number)",
            [{"loc": ["header", "Last-Event-ID"], "msg": "not a number", "type": "value_error"}],
        )
    return int(last_event_id)


def stream_holder(principal: Principal) -> str:
    """Whose streams count together: one principal (by record id, else by name).

    >>> stream_holder(Principal("alice", "acme"))
    'acme/alice'
    """
    return f"{principal.tenant}/{principal.id or principal.name}"


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Event stream"}},
)
async def session_events(
    session_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanReadSessions,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
) -> EventSourceResponse:
    """Every change since ``Last-Event-ID`` (or the start), then live ones.

    Each event's ``id`` is its ledger index and its ``event`` the resource type
    (``session`` or ``execution``); ``data`` is JSON with the action and new state.
    """
    after = _resume_point(last_event_id)
    await platform.sessions.get(principal, session_id)
    # A client gone without a word is noticed when a keep-alive fails to send: by then
    # its slot is free again, so that is when a refused client should try again.
    slot = platform.events.open_stream(
        stream_holder(principal),
        limit=platform.settings.server.max_streams_per_principal,
        retry_after_s=KEEPALIVE_S,
    )

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for entry in platform.events.stream(session_id, after):
                yield ServerSentEvent(
                    data=json.dumps(event_of(entry)),
                    id=str(entry.index),
                    event=entry.resource_type,
                )
        finally:
            slot.release()

    return EventSourceResponse(
        events(),
        ping=KEEPALIVE_S,
        shutdown_event=anyio.Event(),  # with it, sse-starlette waits out the grace
        shutdown_grace_period=SHUTDOWN_GRACE_S,
        # A stream whose generator never started (HEAD, or a client gone at once) ends
        # here instead of in the generator's finally.
        background=BackgroundTask(slot.release),
    )
