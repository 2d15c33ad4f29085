"""uvicorn's server for the app: its long polls end as soon as a shutdown begins.

uvicorn waits ``timeout_graceful_shutdown`` for open requests and then cancels them,
logging an error; a runner's claim (a long poll of up to 20 s) would always be cut off
that way.  :class:`PlatformServer` tells the platform first (:meth:`Platform.drain`),
so the claims are answered, empty, and the event streams end with a complete
response, within the grace period.

>>> # server = PlatformServer(uvicorn.Config(app, port=8080))
>>> # server.run()
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from limit_graph.orchestration.platform import Platform

__all__ = ["PlatformServer"]


class PlatformServer(uvicorn.Server):
    """A uvicorn server of a FastAPI app that drains the app's platform as its shutdown
    begins."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        platform = getattr(app.state, "platform", None) if isinstance(app, FastAPI) else None
        if isinstance(platform, Platform):
            platform.drain()
        await super().shutdown(sockets)
