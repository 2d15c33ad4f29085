"""The runners' side of dispatch: claim, heartbeat, report (docs/orchestration.md).

These need ``runners:claim``, which the runner key (role ``runner``) and the admin key
hold.  The admin may act as a runner on purpose: it is the operator's superset
credential, and outside dev mode with no runner key configured the runners are handed
the admin key (``ensure_runner_key``).  The runner key, for its part, may call these and
``/maintenance`` and nothing else.  The routes are part of the OpenAPI document, so
runners in other languages can be written from it.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from limit_graph.api.deps import CanClaimWork, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.schemas import (
    ClaimOut,
    ClaimRequest,
    HeartbeatOut,
    HeartbeatRequest,
    LeaseOut,
    RejectedResult,
    ReportOut,
    ReportRequest,
)
from limit_graph.core.models import ErrorInfo, ExecutionState
from limit_graph.orchestration.dispatch import RunnerResult

router = APIRouter(prefix="/runners", tags=["runners"], route_class=IJSONRoute)


DISCONNECT_CHECK_S = 0.25


@router.post("/claim", response_model=ClaimOut)
async def claim(
    body: ClaimRequest, request: Request, platform: CurrentPlatform, _: CanClaimWork
) -> ClaimOut:
    """Leases on up to ``max`` executions; waits up to ``wait_s`` for the first one.

    A runner that goes away while its claim waits (killed, say) must not be handed
    work: the wait is abandoned as soon as its connection closes.
    """
    claiming = asyncio.ensure_future(
        platform.executions.dispatcher.claim(
            body.runner_id, body.pool, body.instance, max_items=body.max, wait_s=body.wait_s
        )
    )
    try:
        while not claiming.done():
            await asyncio.wait({claiming}, timeout=DISCONNECT_CHECK_S)
            if not claiming.done() and await request.is_disconnected():
                break
    except asyncio.CancelledError:
        pass  # the server is shutting down: answer now, the runner claims again later
    if not claiming.done():
        claiming.cancel()
        await asyncio.gather(claiming, return_exceptions=True)
    if claiming.cancelled():  # by us, or by the dispatcher closing at shutdown
        return ClaimOut(leases=[], cancel=[])
    leases, cancel = claiming.result()
    return ClaimOut(
        leases=[
            LeaseOut(
                execution=lease.execution,
                attempt=lease.attempt,
                lease_s=lease.lease_s,
                timeout_s=lease.execution.timeout_s,
            )
            for lease in leases
        ],
        cancel=cancel,
    )


@router.post("/heartbeat", response_model=HeartbeatOut)
async def heartbeat(
    body: HeartbeatRequest, platform: CurrentPlatform, _: CanClaimWork
) -> HeartbeatOut:
    """Renew the leases held; the answer names executions to cancel."""
    dispatcher = platform.executions.dispatcher
    cancel = dispatcher.heartbeat(body.runner_id, body.pool, body.instance, body.executions)
    return HeartbeatOut(cancel=cancel, lease_s=dispatcher.settings.lease_s)


@router.post("/report", response_model=ReportOut)
async def report(body: ReportRequest, platform: CurrentPlatform, _: CanClaimWork) -> ReportOut:
    """Record results, once each per execution and attempt."""
    results = [
        RunnerResult(
            execution_id=item.execution_id,
            attempt=item.attempt,
            state=ExecutionState(item.state),
            result=item.result,
            error=ErrorInfo(**item.error.model_dump()) if item.error else None,
            started_at=item.started_at,
            finished_at=item.finished_at,
        )
        for item in body.results
    ]
    outcome = await platform.executions.dispatcher.report(body.runner_id, results)
    return ReportOut(
        accepted=outcome.accepted,
        duplicates=outcome.duplicates,
        rejected=[RejectedResult(execution_id=i, reason=r) for i, r in outcome.rejected],
    )
