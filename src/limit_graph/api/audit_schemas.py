"""Response bodies of the audit routes: trail entries, checkpoints and Merkle proofs.

Hashes are standard base64, as in the checkpoint's note (C2SP ``tlog-checkpoint``);
``payload_sha256`` stays hex, as every other content hash of the platform.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.ledger import encode_hash
from limit_graph.storage.ledger_store import StoredCheckpoint

__all__ = [
    "AuditEntryOut",
    "AuditExportEntryOut",
    "AuditExportOut",
    "AuditPage",
    "CheckpointOut",
    "ConsistencyProofOut",
    "ExportFiltersOut",
    "ExportVerificationOut",
    "InclusionProofOut",
]


class AuditEntryOut(BaseModel):
    """One ledger entry: who did what to which resource, when, and its leaf in the tree."""

    index: int = Field(description="Position in the ledger: the leaf's index in the tree.")
    timestamp: datetime
    actor: str
    tenant: str | None = Field(description="Whose trail it is; none: the platform's own.")
    action: str = Field(description="e.g. session.created, execution.finished, access.denied")
    resource_type: str
    resource_id: str
    session_id: uuid.UUID | None
    payload_sha256: str = Field(
        description="SHA-256 (hex) of the payload's canonical JSON, after its salt when "
        "the entry is erasable."
    )
    erasable: bool = Field(description="Whether the payload may be erased (personal data).")
    leaf_hash: str = Field(description="RFC 6962 leaf hash (base64) of the entry's fields.")

    @classmethod
    def of(cls, entry: ProvenanceEntry) -> AuditEntryOut:
        return cls.model_validate(entry, from_attributes=True)


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


class CheckpointOut(BaseModel):
    """The latest signed checkpoint: the tree's size and root, signed as a C2SP note."""

    tree_size: int
    root_hash: str = Field(description="The tree's root hash, base64.")
    timestamp: datetime = Field(description="When the checkpoint was signed.")
    note: str = Field(description="The C2SP signed note (tlog-checkpoint body, signatures).")
    key_id: str = Field(description="The signing key's id (hex of its 4-byte note key id).")
    public_key: str = Field(description="The signing key in the note verifier-key format.")

    @classmethod
    def of(cls, checkpoint: StoredCheckpoint, public_key: str) -> CheckpointOut:
        return cls(
            tree_size=checkpoint.tree_size,
            root_hash=encode_hash(checkpoint.root_hash),
            timestamp=checkpoint.timestamp,
            note=checkpoint.note,
            key_id=checkpoint.key_id,
            public_key=public_key,
        )


class InclusionProofOut(BaseModel):
    """RFC 6962 audit path of the entry ``index`` in the tree of ``tree_size`` entries."""

    index: int
    tree_size: int
    leaf_hash: str = Field(description="The entry's leaf hash, base64.")
    hashes: list[str] = Field(description="The audit path, leaf to root, base64.")


class ConsistencyProofOut(BaseModel):
    """RFC 6962 proof that the tree of ``first`` entries is a prefix of ``second``'s."""

    first: int
    second: int
    hashes: list[str] = Field(description="The consistency proof, base64.")


class AuditExportEntryOut(AuditEntryOut):
    """An exported entry: every field of the trail's, the written payload, and the proof."""

    payload: dict[str, Any] | None = Field(
        description="What was written (none: an erasable payload, erased)."
    )
    payload_salt: str | None = Field(
        description="The salt (base64url) ``payload_sha256`` hashes first, for an erasable "
        "entry whose payload is still there."
    )
    proof: list[str] = Field(
        description="RFC 6962 audit path (base64) of the entry in the export's checkpoint."
    )


class ExportFiltersOut(BaseModel):
    """What was exported; ``tenant`` none: every tenant's trail and the platform's own."""

    tenant: str | None
    actor: str | None
    action: str | None
    session_id: uuid.UUID | None
    since: datetime | None
    until: datetime | None


class ExportFailureOut(BaseModel):
    index: int
    problem: str


class ExportVerificationOut(BaseModel):
    """What checking every exported entry against the checkpoint found, as it was written."""

    ok: bool = Field(description="The checkpoint's signature and every entry verify.")
    entries: int
    verified: int
    failed: int
    failures: list[ExportFailureOut] = Field(description="The first failures (100 at most).")
    checkpoint_signature: str = Field(
        description="``ok``, or why the checkpoint's note does not verify under the ledger's key."
    )
    summary: str = Field(description="The result in one sentence.")


class AuditExportOut(BaseModel):
    """``GET /audit/export?format=json``: the trail with the checkpoint it verifies against.

    ``entries`` are those with an index below the checkpoint's tree size, in ledger order;
    the document is streamed, one entry a line, ``verification`` last.
    """

    format: str = Field(description="``limit-graph.audit-export/1``.")
    exported_at: datetime
    filters: ExportFiltersOut
    checkpoint: CheckpointOut | None = Field(description="None only for an empty ledger.")
    entries: list[AuditExportEntryOut]
    verification: ExportVerificationOut
