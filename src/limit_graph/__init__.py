"""LIMIT-Graph: a governed, provenance-tracked workflow platform on Prefect 3.

``from limit_graph import agent`` is the decorator that makes a typed function an
agent (:mod:`limit_graph.tasks.authoring`); it is imported on first use, so that
importing any part of the platform does not import Prefect.
"""

import os as _os
from typing import TYPE_CHECKING, Any

# No usage analytics leave this platform: Prefect's and great-expectations' are off
# unless an operator turns them on explicitly.
_os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
_os.environ.setdefault("DO_NOT_TRACK", "1")
_os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

if TYPE_CHECKING:
    from limit_graph.tasks.authoring import Agent, agent

__version__ = "0.1.0"
__all__ = ["Agent", "__version__", "agent"]

_AUTHORING = frozenset({"Agent", "agent"})


def __getattr__(name: str) -> Any:
    if name in _AUTHORING:
        from limit_graph.tasks import authoring

        return getattr(authoring, name)
    raise AttributeError(f"module 'limit_graph' has no attribute {name!r}")
