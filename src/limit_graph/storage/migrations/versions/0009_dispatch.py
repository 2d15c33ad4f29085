"""The shared dispatch queue: executions waiting for runners, their leases, the runners
heard from, and the signals that wake other processes on SQLite.

A database upgraded to this revision starts with an empty queue; the first process to
start puts the unfinished executions of the store into it.  Downgrading drops the
queue (the executions stay ``queued`` or ``running`` in their records, and the earlier
revision's process re-queues them on start).

Revision ID: 0009
Revises: 0008
Create Date: 2027-03-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limit_dispatch",
        sa.Column("execution_id", sa.Uuid(), primary_key=True),
        sa.Column("instance", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ready_at", sa.Float(), nullable=False),
        sa.Column("runner_id", sa.String(128), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("deadline", sa.Float(), nullable=True),
        sa.Column("timeout_s", sa.Float(), nullable=True),
        sa.Column("cancel", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("family", sa.String(64), nullable=True),
    )
    op.create_index("ix_limit_dispatch_claim", "limit_dispatch", ["state", "instance", "ready_at"])
    op.create_index("ix_limit_dispatch_expiry", "limit_dispatch", ["state", "expires_at"])
    op.create_index("ix_limit_dispatch_runner", "limit_dispatch", ["runner_id"])
    op.create_table(
        "limit_dispatch_runners",
        sa.Column("runner_id", sa.String(128), primary_key=True),
        sa.Column("pool", sa.String(16), nullable=False),
        sa.Column("instances", sa.JSON(), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "limit_signals",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("limit_signals")
    op.drop_table("limit_dispatch_runners")
    op.drop_index("ix_limit_dispatch_runner", "limit_dispatch")
    op.drop_index("ix_limit_dispatch_expiry", "limit_dispatch")
    op.drop_index("ix_limit_dispatch_claim", "limit_dispatch")
    op.drop_table("limit_dispatch")
