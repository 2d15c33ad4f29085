"""Tables of the database backend (SQLAlchemy Core), shared by the code and the migrations.

Each record is kept whole as a JSON document, with the columns it is filtered,
ordered or joined by beside it.  Sort keys are microseconds since the epoch, which
order the same way on SQLite and Postgres.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    Uuid,
)

__all__ = ["metadata", "to_micros"]

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
    UniqueConstraint("session_id", "idempotency_key", name="uq_limit_executions_idempotency"),
    Index("ix_limit_executions_order", "session_id", "submitted_us", "id"),
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


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: a sort key equal on every database."""
    return (moment - EPOCH) // timedelta(microseconds=1)
