"""Tables of the database backend (SQLAlchemy Core), shared by the code and the migrations.

Each record is kept whole as a JSON document, with the columns it is filtered,
ordered or joined by beside it.  Sort keys are microseconds since the epoch, which
order the same way on SQLite and Postgres.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    Uuid,
    bindparam,
    select,
    update,
)
from sqlalchemy.sql import Select

from limit_graph.core.models import Execution, ProvenanceEntry, Session, WorkflowRun
from limit_graph.storage.ledger import LedgerHead

__all__ = [
    "LOCK_LEDGER_HEAD",
    "MOVE_LEDGER_HEAD",
    "UPDATE_EXECUTIONS",
    "UPDATE_WORKFLOW_RUNS",
    "api_keys",
    "data_keys",
    "execution_by_key",
    "execution_changes",
    "execution_row",
    "from_micros",
    "grants",
    "head_values",
    "identity_epoch",
    "kv",
    "ledger_row",
    "metadata",
    "policies",
    "principals",
    "quota_counters",
    "quota_limits",
    "quota_reservations",
    "session_row",
    "signing_keys",
    "tag_rows",
    "tenants",
    "to_micros",
    "workflow_run_changes",
    "workflow_run_row",
    "workflow_runs",
]

metadata = MetaData()

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Plain ``json`` on Postgres too: it keeps the text as written, while ``jsonb`` turns
# 1e+20 into an integer and -0.0 into 0, which changes a document's SHA-256.
Document = JSON()

sessions = Table(
    "limit_sessions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
    Index("ix_limit_sessions_order", "created_us", "id"),
    Index("ix_limit_sessions_tenant", "tenant", "state"),
)

session_tags = Table(
    "limit_session_tags",
    metadata,
    Column("session_id", Uuid, ForeignKey("limit_sessions.id"), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Index("ix_limit_session_tags_tag", "tag"),
)

executions = Table(
    "limit_executions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("session_id", Uuid, ForeignKey("limit_sessions.id"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("backend", String(16), nullable=False),
    Column("submitted_us", BigInteger, nullable=False),
    Column("idempotency_key", String(256), nullable=True),
    Column("document", Document, nullable=False),
    # The workflow run the execution is a step of (``document.workflow.run_id``); no
    # foreign key, so that an execution may be written before its run's first record.
    Column("workflow_run_id", Uuid, nullable=True),
    UniqueConstraint("session_id", "idempotency_key", name="uq_limit_executions_idempotency"),
    Index("ix_limit_executions_order", "session_id", "submitted_us", "id"),
    Index("ix_limit_executions_unfinished", "state", "backend"),
    Index("ix_limit_executions_workflow_run", "workflow_run_id", "submitted_us", "id"),
)

workflow_runs = Table(
    "limit_workflow_runs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("session_id", Uuid, ForeignKey("limit_sessions.id"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
    Index("ix_limit_workflow_runs_order", "session_id", "created_us", "id"),
    Index("ix_limit_workflow_runs_state", "state"),
)

ledger = Table(
    "limit_ledger",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("session_id", Uuid, nullable=True),
    Column("entry_hash", String(64), nullable=False),
    Column("document", Document, nullable=False),
    Index("ix_limit_ledger_session", "session_id", "idx"),
)

ledger_head = Table(
    "limit_ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

archives = Table(
    "limit_archives",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("document", Document, nullable=False),
)

kv = Table(
    "limit_kv",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("expires_us", BigInteger, nullable=True),
    Column("document", Document, nullable=False),
    Index("ix_limit_kv_expiry", "expires_us"),
)


# --- identity (storage/database/identity.py) ----------------------------------------
# Unique constraints stand where the identity store answers Conflict, so that two
# processes racing for the same name cannot both win.

tenants = Table(
    "limit_tenants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("document", Document, nullable=False),
    UniqueConstraint("name", name="uq_limit_tenants_name"),
)

principals = Table(
    "limit_principals",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("client_id", String(128), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("deleted_us", BigInteger, nullable=True),
    Column("document", Document, nullable=False),
    # A client id is never given out again, even once its principal is deleted.
    UniqueConstraint("client_id", name="uq_limit_principals_client_id"),
    Index("ix_limit_principals_order", "created_us", "id"),
    Index("ix_limit_principals_tenant", "tenant", "created_us", "id"),
)
# A name is taken only by a principal not deleted: a partial unique index.
Index(
    "uq_limit_principals_live_name",
    principals.c.tenant,
    principals.c.name,
    unique=True,
    sqlite_where=principals.c.deleted_us.is_(None),
    postgresql_where=principals.c.deleted_us.is_(None),
)

api_keys = Table(
    "limit_api_keys",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("principal_id", Uuid, ForeignKey("limit_principals.id"), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    # Kept here, not in the document (whose last_used_at stays null), so that marking
    # keys used rewrites no document.
    Column("last_used_us", BigInteger, nullable=True),
    Column("document", Document, nullable=False),
    Index("ix_limit_api_keys_order", "created_us", "id"),
    Index("ix_limit_api_keys_tenant", "tenant", "created_us", "id"),
    Index("ix_limit_api_keys_principal", "principal_id", "created_us", "id"),
)

signing_keys = Table(
    "limit_signing_keys",
    metadata,
    Column("kid", String(128), primary_key=True),
    Column("created_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
    Index("ix_limit_signing_keys_order", "created_us", "kid"),
)

policies = Table(
    "limit_policies",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("deleted", Boolean, nullable=False),
    Column("document", Document, nullable=False),
)

grants = Table(
    "limit_grants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("session_id", Uuid, nullable=False),
    # ``principal:<id>`` or ``group:<name>``: one column, so that the unique constraint
    # holds (a null group would make every principal grant distinct).
    Column("subject", String(200), nullable=False),
    Column("permission", String(16), nullable=False),
    Column("principal_id", Uuid, ForeignKey("limit_principals.id"), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
    UniqueConstraint("session_id", "subject", "permission", name="uq_limit_grants_subject"),
    Index("ix_limit_grants_session", "session_id", "created_us", "id"),
    Index("ix_limit_grants_principal", "principal_id"),
)

identity_epoch = Table(
    "limit_identity_epoch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False),
)


# --- quotas (storage/database/quotas.py) ---------------------------------------------
# Amounts are whole units (storage/quotas.py: QPU seconds in microseconds), so that a
# claim's condition compares exactly on both databases.

quota_limits = Table(
    "limit_quota_limits",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("updated_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
)

quota_counters = Table(
    "limit_quota_counters",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("resource", String(32), primary_key=True),
    Column("window_key", String(40), primary_key=True),
    Column("used", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
)

quota_reservations = Table(
    "limit_quota_reservations",
    metadata,
    Column("execution_id", Uuid, primary_key=True),
    Column("scope", String(200), primary_key=True),
    Column("resource", String(32), primary_key=True),
    Column("window_key", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)


# --- data keys (storage/database/keyring.py) -----------------------------------------
# Each key only wrapped by the key-encryption key; the state says which one seals.

data_keys = Table(
    "limit_data_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: a sort key equal on every database."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """The UTC moment :func:`to_micros` made ``micros`` of."""
    return EPOCH + timedelta(microseconds=micros)


# --- rows and statements shared by the interactive and the group-commit writers ------

LOCK_LEDGER_HEAD = (
    select(ledger_head.c.size, ledger_head.c.last_hash)
    .where(ledger_head.c.id == 1)
    .with_for_update()
)

UPDATE_EXECUTIONS = update(executions).where(executions.c.id == bindparam("b_id"))
"""Executemany form: each parameter set has ``b_id`` and the columns to set."""

UPDATE_WORKFLOW_RUNS = update(workflow_runs).where(workflow_runs.c.id == bindparam("b_id"))
"""Executemany form, as :data:`UPDATE_EXECUTIONS`: ``b_id`` and the columns to set."""


MOVE_LEDGER_HEAD = (
    update(ledger_head)
    .where(ledger_head.c.id == 1)
    .values(size=bindparam("size"), last_hash=bindparam("last_hash"))
)
"""Parameters: :func:`head_values` of the head after the new entries."""


def head_values(head: LedgerHead) -> dict[str, Any]:
    """The parameters of :data:`MOVE_LEDGER_HEAD` for ``head``."""
    return {"size": head.size, "last_hash": head.last_hash}


def execution_by_key(session_id: uuid.UUID, idempotency_key: str) -> Select[tuple[Any]]:
    return select(executions.c.document).where(
        executions.c.session_id == session_id,
        executions.c.idempotency_key == idempotency_key,
    )


def ledger_row(entry: ProvenanceEntry) -> dict[str, Any]:
    return {
        "idx": entry.index,
        "session_id": entry.session_id,
        "entry_hash": entry.entry_hash,
        "document": entry.document(),
    }


def session_row(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "tenant": session.tenant,
        "state": session.state.value,
        "created_us": to_micros(session.created_at),
        "document": session.document(),
    }


def tag_rows(session: Session) -> list[dict[str, Any]]:
    return [{"session_id": session.id, "tag": tag} for tag in sorted(set(session.config.tags))]


def execution_row(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.id,
        "session_id": execution.session_id,
        "state": execution.state.value,
        "backend": execution.backend.value,
        "submitted_us": to_micros(execution.submitted_at),
        "idempotency_key": execution.idempotency_key,
        "document": execution.document(),
        "workflow_run_id": _run_id_of(execution),
    }


def execution_changes(execution: Execution) -> dict[str, Any]:
    """The parameters of :data:`UPDATE_EXECUTIONS` for ``execution``."""
    return {
        "b_id": execution.id,
        "state": execution.state.value,
        "backend": execution.backend.value,
        "document": execution.document(),
        "workflow_run_id": _run_id_of(execution),
    }


def _run_id_of(execution: Execution) -> uuid.UUID | None:
    return execution.workflow.run_id if execution.workflow is not None else None


def workflow_run_row(run: WorkflowRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "session_id": run.session_id,
        "state": run.state.value,
        "created_us": to_micros(run.created_at),
        "document": run.document(),
    }


def workflow_run_changes(run: WorkflowRun) -> dict[str, Any]:
    """The parameters of :data:`UPDATE_WORKFLOW_RUNS` for ``run`` (its session and
    creation time never change)."""
    return {"b_id": run.id, "state": run.state.value, "document": run.document()}
