"""The outermost layer of the app: no exception ever leaves it for the server.

Starlette's own outermost middleware answers an unexpected error with the 500
problem of :mod:`limit_graph.api.problems` and then re-raises it for the server to
log; uvicorn then logs it again and drops the keep-alive connection, so the client's
next request on it is reset.  Errors raised where that middleware cannot answer (a
stream that fails after its first bytes, a middleware outside it) escape the same way.
The guard catches each such error, logs it once and returns normally: with the 500
problem if nothing was sent yet; otherwise it ends the response (a stream, such as the
event stream, just ends early; a response of declared length cannot be ended short, so
the server closes that connection).
"""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from limit_graph.api.problems import internal_error_response

__all__ = ["GuardedFastAPI", "guarded"]

log = logging.getLogger("limit_graph.api")


async def guarded(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app`` on one HTTP request; whatever it raises is logged and answered."""
    started = finished = False

    async def tracking_send(message: Message) -> None:
        nonlocal started, finished
        if message["type"] == "http.response.start":
            started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            finished = True
        await send(message)

    try:
        await app(scope, receive, tracking_send)
    except Exception as exc:
        log.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
        # Sending can fail in turn (the client is gone); the server closes the connection.
        with contextlib.suppress(Exception):
            if not started:
                await internal_error_response()(scope, receive, send)
            elif not finished:
                await send({"type": "http.response.body", "body": b"", "more_body": False})


class GuardedFastAPI(FastAPI):
    """A FastAPI app whose every HTTP request runs under :func:`guarded`, outside
    everything else (middleware, exception handlers, tracing)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await guarded(super().__call__, scope, receive, send)
