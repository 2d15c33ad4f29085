"""A key-value table for the platform's bookkeeping: mirror cursors, result cache.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limit_kv",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("expires_us", sa.BigInteger(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
    )
    op.create_index("ix_limit_kv_expiry", "limit_kv", ["expires_us"])
    op.create_index("ix_limit_executions_unfinished", "limit_executions", ["state", "backend"])


def downgrade() -> None:
    op.drop_index("ix_limit_executions_unfinished", "limit_executions")
    op.drop_index("ix_limit_kv_expiry", "limit_kv")
    op.drop_table("limit_kv")
