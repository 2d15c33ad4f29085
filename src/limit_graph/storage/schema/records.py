"""The tables of the records: sessions and their tags, executions, workflow runs,
archives, and the key-value store (the ledger's are in ``ledger``).

Each record is kept whole as a JSON document, with the columns it is filtered, ordered or
joined by beside it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    UniqueConstraint,
    Uuid,
)

from limit_graph.storage.schema.columns import Document, metadata

__all__ = [
    "archives",
    "executions",
    "kv",
    "session_tags",
    "sessions",
    "workflow_runs",
]

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
