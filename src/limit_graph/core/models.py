"""Domain types shared by every layer: sessions, executions and provenance entries.

These are the platform's records, not request bodies: request schemas live in
``api/schemas.py`` and are converted to these by the orchestrator.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    ValidationError,
    field_validator,
    model_serializer,
)

from limit_graph.core.canonical import sha256_hex
from limit_graph.core.quotas import COUNTED, QuotaLimits
from limit_graph.core.run_context import RunContext

__all__ = [
    "BackendKind",
    "CheckResult",
    "ErrorInfo",
    "Execution",
    "ExecutionState",
    "ProvenanceEntry",
    "Session",
    "SessionConfig",
    "SessionState",
    "StepRun",
    "StepState",
    "WorkflowRun",
    "WorkflowRunState",
    "WorkflowTag",
    "utcnow",
]


_COUNTED_NAMES = frozenset(r.value for r in COUNTED)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (every stored timestamp is)."""
    return datetime.now(UTC)


class BackendKind(StrEnum):
    LOCAL = "local"
    REMOTE = "remote"
    QUANTUM = "quantum"


class SessionState(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ARCHIVED = "archived"
    DELETED = "deleted"


class ExecutionState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self not in (ExecutionState.QUEUED, ExecutionState.RUNNING)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def document(self) -> dict[str, Any]:
        """The JSON document stored and hashed for this record."""
        return self.model_dump(mode="json")


class SessionConfig(_Record):
    """A session's configuration; immutable once the session exists."""

    backends: list[BackendKind] = Field(
        default_factory=lambda: [BackendKind.LOCAL, BackendKind.REMOTE, BackendKind.QUANTUM],
        min_length=1,
        description="Backend kinds this session may use.",
    )
    default_backend: BackendKind | None = Field(
        default=None, description="Backend used when a request names none."
    )
    tags: list[str] = Field(
        default_factory=list, max_length=64, description="Labels to filter listings by."
    )
    quotas: dict[str, Annotated[float, Strict()]] = Field(
        default_factory=dict,
        description="Totals for the session's life: executions, concurrent, shots, "
        "qpu_seconds, storage_bytes (none: no limit of the session's own).",
    )
    policies: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=64,
        description='Compliance checks every execution in it passes, each {"check": ID, '
        '...its settings}, e.g. {"check": "circuit-limits", "max_qubits": 7}.',
    )
    classification: dict[str, Literal["pii", "restricted"]] = Field(
        default_factory=dict,
        max_length=256,
        description="Data classes of agent inputs by input name: such inputs run only on "
        "backends cleared for them, and are encrypted at rest.",
    )
    sensitive: bool = Field(
        default=False,
        strict=True,
        description="Whether every execution's inputs and result are encrypted at rest.",
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        strict=True,
        description="Timeout of each execution that names none.",
    )

    @field_validator("tags")
    @classmethod
    def _tags_are_short(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag or len(tag) > 128:
                raise ValueError("each tag must be 1 to 128 characters")
        return tags

    @field_validator("quotas")
    @classmethod
    def _quotas_are_limits(cls, quotas: dict[str, float]) -> dict[str, float]:
        """Known resources, none negative, counts whole (a session's have no period)."""
        if "period" in quotas:
            raise ValueError("a session's quotas are totals for its life: they take no period")
        whole = {
            k: int(v) if k in _COUNTED_NAMES and float(v).is_integer() else v
            for k, v in quotas.items()
        }
        try:
            QuotaLimits.model_validate(whole)
        except ValidationError as exc:
            raise ValueError(
                "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    for e in exc.errors(include_url=False)
                )
            ) from None
        return quotas

    @field_validator("policies")
    @classmethod
    def _policies_name_checks(cls, policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each declaration names its check; what the settings mean is the check's to say."""
        for index, declaration in enumerate(policies):
            check = declaration.get("check")
            if not isinstance(check, str) or not check:
                raise ValueError(
                    f'policies[{index}] names no check: write {{"check": ID, ...settings}}'
                )
        return policies

    @model_serializer(mode="wrap")
    def _omit_unset_newer_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        """``classification`` and ``sensitive`` only when set, everywhere a config is
        written (stored, hashed, answered), so configs from before they existed hash as
        they did."""
        doc = handler(self)
        if isinstance(doc, dict):
            if not doc.get("classification"):
                doc.pop("classification", None)
            if not doc.get("sensitive"):
                doc.pop("sensitive", None)
        return doc

    def sha256(self) -> str:
        return sha256_hex(self.document())


class Session(_Record):
    id: uuid.UUID
    name: str
    state: SessionState
    config: SessionConfig
    config_sha256: str
    owner: str
    tenant: str
    created_at: datetime
    updated_at: datetime
    prefect_flow_run_id: uuid.UUID | None = None
    restored_from: str | None = Field(
        default=None, description="SHA-256 of the archive bundle this session was restored from."
    )
    owner_id: uuid.UUID | None = Field(
        default=None,
        description="The owner's principal id (unset for sessions made before "
        "principals existed, whose owner is known by name).",
    )

    def document(self) -> dict[str, Any]:
        """As stored and hashed; ``owner_id`` only when set, so records written before the
        field existed hash as they did."""
        doc = super().document()
        if doc.get("owner_id") is None:
            doc.pop("owner_id", None)
        return doc


class ErrorInfo(_Record):
    type: str
    message: str
    retryable: bool = False


class CheckResult(_Record):
    """One pre-task check's verdict on an execution, kept with it (and so in its ledger
    entry): which check, whether it passed, the policies that decided."""

    check: str
    passed: bool
    policy_ids: list[str] = Field(default_factory=list)
    detail: str | None = None


class WorkflowTag(_Record):
    """Which workflow run, step and map item an execution ran for, and what fed it."""

    run_id: uuid.UUID
    step: str
    index: int | None = Field(default=None, description="The map item, for a mapped step.")
    attempt: int = Field(default=1, ge=1, description="The step's attempt (retries add one).")
    upstream: list[uuid.UUID] = Field(
        default_factory=list,
        description="The executions whose outputs this one's inputs came from, or which it "
        "waited for.",
    )


class Execution(_Record):
    id: uuid.UUID
    session_id: uuid.UUID
    agent: str
    agent_version: str
    backend: BackendKind
    instance: str
    state: ExecutionState
    inputs: dict[str, Any]
    result: Any = None
    error: ErrorInfo | None = None
    attempts: int = 0
    cache_hit: bool = False
    cached_from: uuid.UUID | None = Field(
        default=None, description="The execution whose result a cache hit returned."
    )
    submitted_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    provenance_entry: int | None = Field(
        default=None, description="Ledger index of the entry that recorded this state."
    )
    idempotency_key: str | None = None
    timeout_s: float | None = None
    actor: str
    workflow: WorkflowTag | None = Field(
        default=None, description="Set when the execution is a step (or map item) of a workflow."
    )
    checks: list[CheckResult] = Field(
        default_factory=list,
        description="The pre-task checks that admitted it and the policies that decided.",
    )
    sensitive: bool = Field(
        default=False,
        description="Its inputs, result and error message are encrypted at rest, and its "
        "ledger entries hold salted SHA-256 commitments of them instead.",
    )
    salts: dict[str, str] = Field(
        default_factory=dict,
        description="For a sensitive execution, the random salt (base64url) of each sealed "
        "field's commitment: `inputs`, `result`, `error.message`.",
    )
    run_context: RunContext | None = Field(
        default=None,
        description="What the run depended on besides its inputs (library versions, seed, "
        "quantum target and snapshot): what a replay repeats and compares.",
    )
    replay_of: uuid.UUID | None = Field(
        default=None, description="The execution this one replayed from its ledger entry."
    )

    def document(self) -> dict[str, Any]:
        """As stored and hashed; ``workflow``, ``checks``, ``sensitive``, ``salts``,
        ``run_context`` and ``replay_of`` only when set, so records written before the
        fields existed hash as they did."""
        doc = super().document()
        for name in ("workflow", "run_context", "replay_of"):
            if doc.get(name) is None:
                doc.pop(name, None)
        for name in ("checks", "sensitive", "salts"):
            if not doc.get(name):
                doc.pop(name, None)
        return doc


class ProvenanceEntry(_Record):
    """One leaf of the append-only ledger: who did what to which resource, when.

    ``payload_sha256`` is the SHA-256 of the canonical JSON of ``payload`` (what was
    written), salted for an ``erasable`` entry (``payload_salt``); ``leaf_hash``
    (base64) is the RFC 6962 leaf hash of every other field, which is what the Merkle
    tree and its signed checkpoints commit to (:mod:`limit_graph.storage.ledger`).
    An erased payload is ``None``: its hash stays in the leaf.
    """

    index: int
    timestamp: datetime
    actor: str
    tenant: str | None = None
    action: str
    resource_type: str
    resource_id: str
    session_id: uuid.UUID | None
    payload: dict[str, Any] | None
    payload_sha256: str
    erasable: bool = False
    payload_salt: str | None = None
    leaf_hash: str

    def written(self) -> dict[str, Any]:
        """The payload, or ``{}`` once erased (only an erasable entry can be: the
        records' own entries -- sessions, executions, workflow runs -- never are)."""
        return self.payload if self.payload is not None else {}


class WorkflowRunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (WorkflowRunState.PENDING, WorkflowRunState.RUNNING)


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (StepState.PENDING, StepState.RUNNING)


class StepRun(_Record):
    """One step of a workflow run, as the run's record holds it."""

    id: str
    state: StepState = StepState.PENDING
    execution_ids: list[uuid.UUID] = Field(
        default_factory=list,
        description="Every execution the step ran, oldest first (map items in order; "
        "retries and resumes append).",
    )
    attempt: int = Field(default=0, ge=0, description="Attempts started, retries included.")
    items: int | None = Field(default=None, description="Map items, for a mapped step.")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: ErrorInfo | None = None
    reason: str | None = Field(
        default=None, description="Why a step was skipped or cancelled (e.g. `when` false)."
    )


class WorkflowRun(_Record):
    """One run of a workflow in a session: its spec, params and the state of each step."""

    id: uuid.UUID
    session_id: uuid.UUID
    name: str
    state: WorkflowRunState
    params: dict[str, Any]
    spec: dict[str, Any] = Field(description="The validated spec, as JSON, that this run runs.")
    spec_sha256: str
    steps: list[StepRun]
    agents: dict[str, str] = Field(
        default_factory=dict,
        description="Step id → the agent version this run uses (`name@version`), fixed when "
        "the run was made.",
    )
    actor: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: ErrorInfo | None = None
    resumes: int = Field(default=0, ge=0, description="How many times the run was resumed.")

    def step(self, step_id: str) -> StepRun:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)
