"""Maintenance for the scheduled flows: archive idle sessions, verify the ledger, expire
caches.  They need ``maintenance.run``: the platform admin or a runner (whose key the
scheduled flows carry), 403 otherwise; the work is in
:mod:`limit_graph.orchestration.maintenance`.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from limit_graph.api.deps import CanRunMaintenance, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.orchestration import maintenance

__all__ = ["router"]

router = APIRouter(prefix="/maintenance", tags=["maintenance"], route_class=IJSONRoute)


class SkippedSession(BaseModel):
    id: uuid.UUID
    reason: str


class ArchiveIdleOut(BaseModel):
    archived: list[uuid.UUID] = Field(description="Sessions archived by this call.")
    skipped: list[SkippedSession] = Field(
        description="Idle sessions left alone (e.g. executions still queued or running)."
    )


class VerifyLedgerOut(BaseModel):
    """What the verification found; it is also recorded as a ``ledger.verified`` entry
    (which this ``size`` does not count)."""

    ok: bool
    size: int = Field(description="Entries the ledger head records: the ledger verified.")
    first_bad: int | None = Field(description="Index of the first entry that does not verify.")
    detail: str | None
    checkpoints: int = Field(
        description="Signed checkpoints checked (signature, root, consistency with the next)."
    )
    external: int = Field(
        description="Checkpoint copies kept outside the database checked (latest.note)."
    )
    erased: int = Field(description="Erasable entries whose payload has been erased.")


class ExpireCachesOut(BaseModel):
    expired: int = Field(description="Expired cache documents deleted.")


@router.post("/archive-idle", response_model=ArchiveIdleOut)
async def archive_idle(
    platform: CurrentPlatform,
    principal: CanRunMaintenance,
    idle_days: float = Query(default=7.0, gt=0, le=36_500),
) -> ArchiveIdleOut:
    outcome = await maintenance.archive_idle_sessions(
        platform.sessions, platform.storage, principal, idle_days
    )
    return ArchiveIdleOut(
        archived=outcome.archived,
        skipped=[SkippedSession(id=k, reason=v) for k, v in outcome.skipped.items()],
    )


@router.post("/verify-ledger", response_model=VerifyLedgerOut)
async def verify_ledger(platform: CurrentPlatform, principal: CanRunMaintenance) -> VerifyLedgerOut:
    """Verify the whole ledger with the platform's checkpoint key, against the checkpoint
    copy outside the database too, and record the result in the ledger."""
    report = await maintenance.verify_and_record(platform.storage, platform.checkpoints, principal)
    return VerifyLedgerOut.model_validate(report, from_attributes=True)


@router.post("/expire-caches", response_model=ExpireCachesOut)
async def expire_caches(platform: CurrentPlatform, _: CanRunMaintenance) -> ExpireCachesOut:
    return ExpireCachesOut(expired=await maintenance.expire_caches(platform.storage))
