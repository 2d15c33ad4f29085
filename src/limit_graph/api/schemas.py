"""Request and response bodies of the REST API (requests forbid unknown fields)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from limit_graph.api.audit_schemas import AuditEntryOut, CheckpointOut
from limit_graph.core.models import BackendKind, Execution, Session, SessionConfig
from limit_graph.core.run_context import RunContext

__all__ = [
    "ERROR_RESPONSES",
    "AgentExecuteRequest",
    "AgentList",
    "AgentOut",
    "ArchiveSummary",
    "ExecuteRequest",
    "ExecutionPage",
    "HealthOut",
    "Problem",
    "ProvenanceEntryOut",
    "ProvenancePage",
    "SessionCreate",
    "SessionPage",
    "SessionStatusOut",
    "SessionUpdate",
    "FanOutOut",
    "ClaimRequest",
    "ClaimOut",
    "HeartbeatRequest",
    "HeartbeatOut",
    "ReportRequest",
    "ReportOut",
]


class _Request(BaseModel):
    """Unknown fields are refused; numbers must be numbers (not ``false`` or ``"5"``)."""

    model_config = ConfigDict(extra="forbid")


class SessionCreate(_Request):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: SessionConfig = Field(default_factory=SessionConfig)


class SessionUpdate(_Request):
    """Only the name may change.  ``config``, if sent, must be the session's own: a
    different one is refused (409), one asking for quotas or policies too (422)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: SessionConfig | None = None


class ExecuteRequest(_Request):
    agent: str = Field(min_length=1, max_length=200)
    inputs: dict[str, Any] = Field(default_factory=dict)
    backend: BackendKind | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=86_400, strict=True)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    wait_s: float = Field(default=30.0, ge=0, le=300, strict=True)
    inline: bool | None = Field(
        default=None,
        description=(
            "Local backend only: false runs it on the local pool's runners; true on another "
            "backend or with fan_out is refused (it would change nothing)."
        ),
    )
    allow_cached: bool = Field(
        default=False,
        description=(
            "A deterministic agent may answer from an earlier identical execution; refused "
            "for other agents and with fan_out (it would change nothing)."
        ),
    )
    fan_out: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Run on each of these backend instances; the answer aggregates them.",
    )


class FanOutOut(BaseModel):
    """The executions of a fan-out, one per instance, and the agent's aggregate."""

    state: str = Field(description="succeeded, partial, failed or running.")
    executions: list[Execution]
    aggregate: Any = None


class AgentExecuteRequest(_Request):
    inputs: dict[str, Any] = Field(default_factory=dict)
    session_id: uuid.UUID | None = None
    backend: BackendKind | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=86_400, strict=True)
    wait_s: float = Field(default=30.0, ge=0, le=300, strict=True)


class SessionPage(BaseModel):
    items: list[Session]
    next_cursor: str | None


class ExecutionPage(BaseModel):
    items: list[Execution]
    next_cursor: str | None


class ProvenanceEntryOut(AuditEntryOut):
    """One ledger entry of a session, with its inclusion proof in the page's checkpoint.

    The written document itself is left out; an archive bundle carries it.
    """

    proof: list[str] = Field(
        default_factory=list,
        description="RFC 6962 audit path (base64) of the entry in the checkpoint's tree.",
    )


class ProvenancePage(BaseModel):
    items: list[ProvenanceEntryOut]
    checkpoint: CheckpointOut | None = Field(
        default=None, description="The signed checkpoint the proofs are in."
    )
    next_cursor: str | None


class SessionStatusOut(BaseModel):
    session_id: uuid.UUID
    state: str
    counts: dict[str, int]
    backends: dict[str, dict[str, int]]
    updated_at: datetime


class ArchiveSummary(BaseModel):
    session_id: uuid.UUID
    bundle_sha256: str
    entries: int
    executions: int


class AgentOut(BaseModel):
    id: str
    version: str
    latest: bool = Field(
        default=True, description="Whether this is the newest version, which a bare name means."
    )
    description: str
    backends: list[BackendKind]
    deterministic: bool
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class AgentList(BaseModel):
    items: list[AgentOut]


class HealthOut(BaseModel):
    status: str
    checks: dict[str, Any]
    process: dict[str, Any] = Field(
        default_factory=dict,
        description="The API process that answered (``pid``): one of ``[server] workers``.",
    )


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    policy_ids: list[str] | None = None
    retry_after_s: float | None = None
    retryable: bool | None = None


def _problem(description: str) -> dict[str, Any]:
    schema = Problem.model_json_schema()
    return {"description": description, "content": {"application/problem+json": {"schema": schema}}}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Malformed JSON"),
    401: _problem("No or unknown credentials"),
    403: _problem("Denied by policy"),
    404: _problem("Unknown id"),
    409: _problem("Conflicts with the current state"),
    413: _problem("Body too large"),
    422: _problem("Invalid input; `errors` lists each bad field"),
    429: _problem("Quota or rate limit reached"),
    503: _problem("Backend or database unavailable"),
}


# --- runners (docs/orchestration.md, "Protocol") ----------------------------------


def _timestamp_text(value: Any) -> Any:
    """Timestamps arrive as RFC 3339 text; a bare number is refused, not read as epoch."""
    if not isinstance(value, str | datetime):
        raise ValueError("expected an RFC 3339 timestamp string")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp_text)]


class _RunnerRequest(_Request):
    runner_id: str = Field(min_length=1, max_length=200)


class ClaimRequest(_RunnerRequest):
    pool: BackendKind
    instance: str | None = Field(default=None, min_length=1, max_length=200)
    max: int = Field(default=16, ge=1, le=1024, strict=True)
    wait_s: float = Field(default=20.0, ge=0, le=60, strict=True)


class LeaseOut(BaseModel):
    execution: Execution
    attempt: int
    lease_s: float
    timeout_s: float | None


class ClaimOut(BaseModel):
    leases: list[LeaseOut]
    cancel: list[uuid.UUID]


class HeartbeatRequest(_RunnerRequest):
    pool: BackendKind
    instance: str | None = Field(default=None, min_length=1, max_length=200)
    executions: list[uuid.UUID] = Field(default_factory=list, max_length=4096)


class HeartbeatOut(BaseModel):
    cancel: list[uuid.UUID]
    lease_s: float


class ReportedError(_Request):
    type: str = Field(min_length=1, max_length=200)
    message: str = Field(max_length=8192)
    retryable: bool = Field(default=False, strict=True)


class ReportedResult(_Request):
    execution_id: uuid.UUID
    attempt: int = Field(ge=1, strict=True)
    state: Literal["succeeded", "failed", "timed_out", "cancelled"]
    result: Any = None
    error: ReportedError | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    run_context: RunContext | None = None


class ReportRequest(_RunnerRequest):
    results: list[ReportedResult] = Field(max_length=4096)


class RejectedResult(BaseModel):
    execution_id: uuid.UUID
    reason: str


class ReportOut(BaseModel):
    accepted: list[uuid.UUID]
    duplicates: list[uuid.UUID]
    rejected: list[RejectedResult]
