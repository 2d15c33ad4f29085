"""``POST /sessions/{id}/executions/{eid}/replay``: run an execution again from its
ledger entry and say whether the result reproduces (:mod:`limit_graph.orchestration.replay`).

The caller needs the right to execute in the session, as for ``/execute``, and the
replay passes every pre-task check an execute does.  ``POST /executions/{eid}/replay``
is the same for an execution named alone (``limit audit replay EID``): the service finds
its session, which must be visible to the caller, and asks the authorizer the same.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from limit_graph.api.deps import CanExecuteAgents, CanExecuteInSessions, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.replay_schemas import ReplayOut

__all__ = ["router"]

router = APIRouter(tags=["provenance"], route_class=IJSONRoute)

_REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"description": "It cannot be replayed (`reason` says why)"}
}


@router.post(
    "/sessions/{session_id:uuid}/executions/{execution_id:uuid}/replay",
    response_model=ReplayOut,
    responses=_REFUSED,
)
async def replay(
    session_id: uuid.UUID,
    execution_id: uuid.UUID,
    platform: CurrentPlatform,
    principal: CanExecuteInSessions,
) -> ReplayOut:
    """Run a deterministic or seeded execution again from what its ledger entry
    recorded, as a new execution; answer whether the results' hashes match and what
    differs (a library version, a snapshot)."""
    return ReplayOut.of(await platform.replay.replay(principal, session_id, execution_id))


@router.post("/executions/{execution_id:uuid}/replay", response_model=ReplayOut, responses=_REFUSED)
async def replay_execution(
    execution_id: uuid.UUID, platform: CurrentPlatform, principal: CanExecuteAgents
) -> ReplayOut:
    """The same, for an execution named by its id alone."""
    return ReplayOut.of(await platform.replay.replay_anywhere(principal, execution_id))
