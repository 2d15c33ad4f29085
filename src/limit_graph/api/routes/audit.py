"""``/audit``: the trail (tenant-scoped, for auditors and admins), the signed checkpoint,
and RFC 6962 inclusion and consistency proofs (for everyone who reads)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from limit_graph.api.audit_schemas import (
    AuditEntryOut,
    AuditExportOut,
    AuditPage,
    CheckpointOut,
    ConsistencyProofOut,
    InclusionProofOut,
)
from limit_graph.api.deps import CanReadAudit, CanReadLedger, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.core.errors import InvalidInput
from limit_graph.orchestration.audit_export import ExportFormat, start_export
from limit_graph.storage.ledger import encode_hash
from limit_graph.storage.ledger_store import EntryFilter

__all__ = ["CHECKPOINT_HEADERS", "router"]

router = APIRouter(prefix="/audit", tags=["audit"], route_class=IJSONRoute)

RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
"""A moment with its offset: ``2026-12-03T08:00:00Z`` (a bare number or date is refused)."""


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{name} is not a moment: {text!r}",
            [{"loc": ["query", name], "msg": "not an RFC 3339 moment", "type": "datetime_parsing"}],
        ) from None


def _trail_filter(
    actor: str | None = Query(default=None, max_length=256),
    action: str | None = Query(default=None, max_length=128),
    session_id: uuid.UUID | None = None,
    since: str | None = Query(
        default=None, pattern=RFC3339, description="From this moment (RFC 3339, inclusive)."
    ),
    until: str | None = Query(
        default=None, pattern=RFC3339, description="Before this moment (RFC 3339)."
    ),
) -> EntryFilter:
    return EntryFilter(
        actor=actor,
        action=action,
        session_id=session_id,
        since=_moment(since, "since"),
        until=_moment(until, "until"),
    )


@router.get("", response_model=AuditPage)
async def trail(
    platform: CurrentPlatform,
    principal: CanReadAudit,
    where: Annotated[EntryFilter, Depends(_trail_filter)],
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = Query(default=None, max_length=512),
) -> AuditPage:
    """Who did what when: the ledger's entries of the caller's tenant, in ledger order."""
    page = await platform.audit.trail(principal, where, limit=limit, cursor=cursor)
    return AuditPage(items=[AuditEntryOut.of(e) for e in page.items], next_cursor=page.next_cursor)


@router.get("/checkpoint", response_model=CheckpointOut)
async def checkpoint(platform: CurrentPlatform, _: CanReadLedger) -> CheckpointOut:
    """The signed checkpoint of the whole ledger as it is now."""
    made = await platform.audit.checkpoint()
    return CheckpointOut.of(made, platform.checkpoints.key.verifier_key)


@router.get("/proof/inclusion", response_model=InclusionProofOut)
async def inclusion(
    platform: CurrentPlatform,
    _: CanReadLedger,
    index: int = Query(ge=0, description="The entry's index."),
    size: int = Query(ge=1, description="The tree size, e.g. a checkpoint's."),
) -> InclusionProofOut:
    """The entry's audit path in the tree of the first ``size`` entries."""
    proof = await platform.audit.inclusion(index, size)
    return InclusionProofOut(
        index=proof.index,
        tree_size=proof.tree_size,
        leaf_hash=encode_hash(proof.leaf_hash),
        hashes=[encode_hash(h) for h in proof.hashes],
    )


@router.get("/proof/consistency", response_model=ConsistencyProofOut)
async def consistency(
    platform: CurrentPlatform,
    _: CanReadLedger,
    first: int = Query(ge=1, description="The earlier tree size."),
    second: int = Query(ge=1, description="The later tree size."),
) -> ConsistencyProofOut:
    """Proof that the tree of ``first`` entries is a prefix of the tree of ``second``."""
    hashes = await platform.audit.consistency(first, second)
    return ConsistencyProofOut(first=first, second=second, hashes=[encode_hash(h) for h in hashes])


_EXPORT_MEDIA = {ExportFormat.JSON: "application/json", ExportFormat.CSV: "text/csv; charset=utf-8"}
CHECKPOINT_HEADERS = {
    "X-Checkpoint-Size": "The tree size of the checkpoint the export verifies against.",
    "X-Checkpoint-Root": "Its root hash, base64.",
    "X-Checkpoint-Timestamp": "When it was signed.",
    "X-Checkpoint-Key-Id": "The signing key's id (hex).",
    "X-Checkpoint-Public-Key": "The signing key in the note verifier-key format.",
    "X-Checkpoint-Note": "The C2SP signed note, base64 of its UTF-8 text.",
}


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "model": AuditExportOut,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "headers": {
                k: {"description": v, "schema": {"type": "string"}}
                for k, v in CHECKPOINT_HEADERS.items()
            },
        }
    },
)
async def export(
    platform: CurrentPlatform,
    principal: CanReadAudit,
    where: Annotated[EntryFilter, Depends(_trail_filter)],
    format_: ExportFormat = Query(
        default=ExportFormat.JSON, alias="format", description="json (default) or csv."
    ),
) -> StreamingResponse:
    """The caller's trail (filtered as ``GET /audit``) with the signed checkpoint it
    verifies against and each entry's inclusion proof, checked as it is written; a
    download, streamed (``docs/provenance.md``, "Export and report")."""
    made = await start_export(platform.audit, principal, where)
    chunks = made.json_chunks() if format_ is ExportFormat.JSON else made.csv_chunks()
    disposition = f'attachment; filename="{made.filename(format_.value)}"'
    return StreamingResponse(
        chunks,
        media_type=_EXPORT_MEDIA[format_],
        headers={"Content-Disposition": disposition, **made.headers()},
    )
