"""Workflow runs, and each execution's workflow run as a column to find a run's steps by.

Executions written before workflows existed belong to none: their new column stays null.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Document = sa.JSON()  # json, not jsonb, on Postgres: hashed documents keep their exact text


def upgrade() -> None:
    op.create_table(
        "limit_workflow_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(), sa.ForeignKey("limit_sessions.id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("document", Document, nullable=False),
    )
    op.create_index(
        "ix_limit_workflow_runs_order", "limit_workflow_runs", ["session_id", "created_us", "id"]
    )
    op.create_index("ix_limit_workflow_runs_state", "limit_workflow_runs", ["state"])
    # Batch mode: a plain ALTER where the database has one (adding a nullable column),
    # a table copy on SQLite where it has none (the downgrade's drop).
    with op.batch_alter_table("limit_executions") as batch:
        batch.add_column(sa.Column("workflow_run_id", sa.Uuid(), nullable=True))
        batch.create_index(
            "ix_limit_executions_workflow_run", ["workflow_run_id", "submitted_us", "id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("limit_executions") as batch:
        batch.drop_index("ix_limit_executions_workflow_run")
        batch.drop_column("workflow_run_id")
    op.drop_index("ix_limit_workflow_runs_state", "limit_workflow_runs")
    op.drop_index("ix_limit_workflow_runs_order", "limit_workflow_runs")
    op.drop_table("limit_workflow_runs")
