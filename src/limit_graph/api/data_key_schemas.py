"""Response bodies of the data-key routes: the key ring (never a key's material) and the
progress of a rotation."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from limit_graph.orchestration.data_keys import RotationPhase, RotationProgress
from limit_graph.storage.keyring import DataKeyState

__all__ = ["DataKeyOut", "DataKeysOut", "RotationOut"]


class DataKeyOut(BaseModel):
    kid: str
    state: DataKeyState = Field(description="active (seals), retiring, or retired.")
    kek_id: str = Field(description="The key-encryption key that wraps it.")
    created_at: datetime
    retiring_at: datetime | None = None
    retired_at: datetime | None = None


class RotationOut(BaseModel):
    """A rotation's progress (``resealing`` → ``settling`` → ``sweeping`` → ``done``),
    without the job's own bookkeeping (its cursor and per-pass count), which is ignored."""

    model_config = ConfigDict(extra="ignore")

    phase: RotationPhase
    actor: str
    active: str = Field(description="The data key the rotation made; it seals from now on.")
    retiring: list[str] = Field(description="The keys whose records it seals again.")
    rewrapped: list[str] = Field(description="Data keys re-wrapped under the current KEK.")
    resealed: int = Field(description="Records sealed again so far.")
    pending: list[str] = Field(description="Retiring keys the current pass has yet to finish.")
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None

    @classmethod
    def of(cls, progress: RotationProgress) -> RotationOut:
        return cls.model_validate(progress.model_dump())


class DataKeysOut(BaseModel):
    """The key ring and the latest rotation, as
    :meth:`~limit_graph.orchestration.data_keys.DataKeyRotation.status` reports them."""

    kek_id: str | None = Field(description="The current key-encryption key (None: none).")
    active: str | None = Field(description="The data key that seals new records.")
    keys: list[DataKeyOut]
    rotation: RotationOut | None = Field(description="The latest rotation, if any.")
