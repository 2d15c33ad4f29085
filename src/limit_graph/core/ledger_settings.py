"""Settings of the provenance ledger: the ``[ledger]`` section.

Signed checkpoints are made every ``checkpoint_entries`` new entries or every
``checkpoint_interval_s`` seconds, whichever comes first, when anything is new; each is
also written outside the database -- to ``checkpoint_dir`` (default
``<home>/checkpoints``) and, when set, POSTed to ``checkpoint_url`` -- so that the log's
head survives a rewritten database::

    [ledger]
    origin = "ledger.example.org/limit-graph"   # the log's name in its checkpoints
    checkpoint_entries = 256
    checkpoint_interval_s = 10
    checkpoint_dir = "/var/lib/limit/checkpoints"
    checkpoint_url = "https://witness.example.org/add-checkpoint"
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LedgerSettings"]


class LedgerSettings(BaseModel):
    """How the ledger signs and publishes its checkpoints."""

    model_config = ConfigDict(extra="forbid")

    origin: str = Field(
        default="limit-graph.local/ledger",
        min_length=1,
        max_length=200,
        pattern=r"^[^\s+—][^\n+—]*[^\s+—]$|^[^\s+—]$",
        description="The log's origin line: a name unique to this ledger (a host/path).",
    )
    checkpoint_entries: int = Field(
        default=256, ge=1, le=1_000_000, description="New entries that call for a checkpoint."
    )
    checkpoint_interval_s: float = Field(
        default=10.0,
        ge=0.1,
        le=86_400,
        description="Seconds after which anything new is checkpointed.",
    )
    checkpoint_dir: Path | None = Field(
        default=None,
        description="Where each checkpoint's note is also written (default <home>/checkpoints).",
    )
    checkpoint_url: str | None = Field(
        default=None,
        description="An HTTP endpoint each checkpoint's note is also POSTed to (text/plain).",
    )
