"""What a caller asks the execution service to run."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limit_graph.core.models import BackendKind, WorkflowTag

__all__ = ["ExecuteCommand"]


@dataclass(frozen=True)
class ExecuteCommand:
    agent: str
    inputs: dict[str, Any]
    backend: BackendKind | None = None
    timeout_s: float | None = None
    idempotency_key: str | None = None
    wait_s: float = 30.0
    inline: bool | None = None
    """Local work only: ``False`` sends it to the ``local`` pool's runners."""
    allow_cached: bool = False
    fan_out: tuple[str, ...] = ()
    workflow: WorkflowTag | None = None
    """Set by the workflow engine: the run, step and map item this execution is for."""
    policies: tuple[Mapping[str, Any], ...] = ()
    """Compliance checks declared on the workflow step this execution is for."""
    new_key: bool = False
    """The caller made ``idempotency_key`` just now (a workflow step's first try): no
    earlier execution can have it, so it is not looked up (the write still checks)."""
    replay_of: uuid.UUID | None = None
    """Set by a replay: the execution this one runs again (never answered from the cache)."""
