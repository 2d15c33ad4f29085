"""uvicorn's server for the app: its long polls end as soon as a shutdown begins.

uvicorn waits ``timeout_graceful_shutdown`` for open requests and then cancels them,
logging an error; a runner's claim (a long poll of up to 20 s) would always be cut off
that way.  :class:`PlatformServer` tells the platform first (:meth:`Platform.drain`),
so the claims are answered, empty, and the event streams end with a complete
response, within the grace period.

Serving a process of its own (``limit up``: ``freeze=True``), it also freezes what the
start made (``gc.freeze``): the modules, the platform and the libraries they loaded
(Qiskit's and SciPy's among them, some 360,000 objects) are left out of every later
garbage collection, each full one of which otherwise walked them all, about 0.2 s
(``docs/performance.md``).  A server in a process that goes on to do other things (a
test's) leaves the collector alone.
"""

from __future__ import annotations

import gc
import socket

import uvicorn
from fastapi import FastAPI

from limit_graph.orchestration.platform import Platform

__all__ = ["PlatformServer"]


class PlatformServer(uvicorn.Server):
    """A uvicorn server of a FastAPI app that drains the app's platform as its shutdown
    begins; with ``freeze``, the objects its start made are kept out of the garbage
    collector's way."""

    def __init__(self, config: uvicorn.Config, *, freeze: bool = False) -> None:
        super().__init__(config)
        self.freeze = freeze

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.freeze and self.started:
            gc.collect()
            gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        platform = getattr(app.state, "platform", None) if isinstance(app, FastAPI) else None
        if isinstance(platform, Platform):
            platform.drain()
        await super().shutdown(sockets)
