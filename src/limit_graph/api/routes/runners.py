"""The runners' side of dispatch: claim, heartbeat, report (docs/orchestration.md).

Each asks the governance authorizer for ``runner.claim`` on the work pool concerned:
runners' service accounts hold it for their pools (the runner key's for every pool);
outside dev mode with no runner key configured the runners are handed the platform
admin's key, which signs in as the runners' account.  A runner may call these and
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
from limit_graph.core.models import BackendKind, ErrorInfo, ExecutionState
from limit_graph.orchestration.dispatch import RunnerResult

router = APIRouter(prefix="/runners", tags=["runners"], route_class=IJSONRoute)


DISCONNECT_CHECK_S = 0.25


@router.post("/claim", response_model=ClaimOut)
async def claim(
    body: ClaimRequest, request: Request, platform: CurrentPlatform, principal: CanClaimWork
) -> ClaimOut:
    """Leases on up to ``max`` executions; waits up to ``wait_s`` for the first one.

    A runner that goes away while its claim waits (killed, say) must not be handed
    work: the wait is abandoned as soon as its connection closes.
    """
    await platform.authorizer.on_pool(principal, body.pool)
    claiming = asyncio.ensure_future(
        platform.dispatcher.claim(
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
    body: HeartbeatRequest, platform: CurrentPlatform, principal: CanClaimWork
) -> HeartbeatOut:
    """Renew the leases held; the answer names executions to cancel."""
    await platform.authorizer.on_pool(principal, body.pool)
    dispatcher = platform.dispatcher
    cancel = await dispatcher.heartbeat(body.runner_id, body.pool, body.instance, body.executions)
    return HeartbeatOut(cancel=cancel, lease_s=dispatcher.settings.lease_s)


@router.post("/report", response_model=ReportOut)
async def report(
    body: ReportRequest, platform: CurrentPlatform, principal: CanClaimWork
) -> ReportOut:
    """Record results, once each per execution and attempt (of pools the caller holds)."""
    leased = await platform.dispatcher.lease_pools(i.execution_id for i in body.results)
    await platform.authorizer.on_any_pool(principal, [kind.value for kind in BackendKind])
    for pool in sorted(leased):
        await platform.authorizer.on_pool(principal, pool)
    results = [
        RunnerResult(
            execution_id=item.execution_id,
            attempt=item.attempt,
            state=ExecutionState(item.state),
            result=item.result,
            error=ErrorInfo(**item.error.model_dump()) if item.error else None,
            started_at=item.started_at,
            finished_at=item.finished_at,
            run_context=item.run_context,
        )
        for item in body.results
    ]
    outcome = await platform.dispatcher.report(body.runner_id, results)
    return ReportOut(
        accepted=outcome.accepted,
        duplicates=outcome.duplicates,
        rejected=[RejectedResult(execution_id=i, reason=r) for i, r in outcome.rejected],
    )
