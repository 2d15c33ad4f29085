"""Quotas: the caller's limits, use and resets; and an admin's setting of them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, Query

from limit_graph.api.deps import CanReadQuotas, CanSetQuotas, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.api.quota_schemas import QuotaList, QuotaPut, QuotaSet

router = APIRouter(prefix="/quotas", tags=["governance"], route_class=IJSONRoute)

Scope = Path(
    min_length=3,
    max_length=200,
    description="tenant:<name> or principal:<id>",
    examples=["tenant:acme"],
)


@router.get("", response_model=QuotaList)
async def list_quotas(
    platform: CurrentPlatform,
    principal: CanReadQuotas,
    session_id: uuid.UUID | None = Query(default=None, description="Also this session's."),
) -> QuotaList:
    """The quotas that apply to the caller (its tenant's, its own; a session's with
    ``session_id``): each limit with what is used, reserved, and when it resets."""
    return QuotaList(items=await platform.quotas.view(principal, session_id))


@router.put("/{scope}", response_model=QuotaSet)
async def set_quotas(
    body: QuotaPut, platform: CurrentPlatform, principal: CanSetQuotas, scope: str = Scope
) -> QuotaSet:
    """Replace a tenant's (platform admin) or a principal's (tenant admin) quotas."""
    limits = await platform.quotas.set(principal, scope, body.model_dump(exclude_none=True))
    return QuotaSet.of(scope, limits)
