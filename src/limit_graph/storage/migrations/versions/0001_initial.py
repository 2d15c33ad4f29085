"""Sessions, executions, the provenance ledger and archives.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Document = sa.JSON()  # json, not jsonb, on Postgres: hashed documents keep their exact text


def upgrade() -> None:
    op.create_table(
        "limit_sessions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("document", Document, nullable=False),
    )
    op.create_index("ix_limit_sessions_order", "limit_sessions", ["created_us", "id"])
    op.create_index("ix_limit_sessions_tenant", "limit_sessions", ["tenant", "state"])
    op.create_table(
        "limit_session_tags",
        sa.Column("session_id", sa.Uuid(), sa.ForeignKey("limit_sessions.id"), primary_key=True),
        sa.Column("tag", sa.String(128), primary_key=True),
    )
    op.create_index("ix_limit_session_tags_tag", "limit_session_tags", ["tag"])
    op.create_table(
        "limit_executions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(), sa.ForeignKey("limit_sessions.id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("submitted_us", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=True),
        sa.Column("document", Document, nullable=False),
        sa.UniqueConstraint(
            "session_id", "idempotency_key", name="uq_limit_executions_idempotency"
        ),
    )
    op.create_index(
        "ix_limit_executions_order", "limit_executions", ["session_id", "submitted_us", "id"]
    )
    op.create_table(
        "limit_ledger",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("document", Document, nullable=False),
    )
    op.create_index("ix_limit_ledger_session", "limit_ledger", ["session_id", "idx"])
    op.create_table(
        "limit_ledger_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        sa.table(
            "limit_ledger_head",
            sa.column("id", sa.Integer()),
            sa.column("size", sa.BigInteger()),
            sa.column("last_hash", sa.String(64)),
        ),
        [{"id": 1, "size": 0, "last_hash": "0" * 64}],
    )
    op.create_table(
        "limit_archives",
        sa.Column("session_id", sa.Uuid(), primary_key=True),
        sa.Column("document", Document, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "limit_archives",
        "limit_ledger_head",
        "limit_ledger",
        "limit_executions",
        "limit_session_tags",
        "limit_sessions",
    ):
        op.drop_table(table)
