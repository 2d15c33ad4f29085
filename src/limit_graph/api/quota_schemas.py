"""Request and response bodies of the quota routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from limit_graph.core.quotas import QuotaLimits, QuotaUse

__all__ = ["QuotaList", "QuotaPut", "QuotaSet"]


class QuotaPut(QuotaLimits):
    """A scope's quotas: a limit per resource (absent: no limit), and for counted
    resources of a tenant or principal the period they count over.  An empty body
    removes the scope's quotas."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [{"shots": 100_000, "qpu_seconds": 600, "period": "day"}]},
    )


class QuotaSet(BaseModel):
    scope: str
    limits: dict[str, Any] = Field(description="The limits now in force, and their period.")

    @classmethod
    def of(cls, scope: str, limits: QuotaLimits) -> QuotaSet:
        return cls(scope=scope, limits=limits.document())


class QuotaList(BaseModel):
    items: list[QuotaUse]
