"""Quotas: each scope's limits, a counter per (scope, resource, window) and what each
execution holds until it is reconciled.

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Document = sa.JSON()  # json, not jsonb, on Postgres: hashed documents keep their exact text


def upgrade() -> None:
    op.create_table(
        "limit_quota_limits",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("document", Document, nullable=False),
    )
    op.create_table(
        "limit_quota_counters",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("resource", sa.String(32), primary_key=True),
        sa.Column("window_key", sa.String(40), primary_key=True),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "limit_quota_reservations",
        sa.Column("execution_id", sa.Uuid(), primary_key=True),
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("resource", sa.String(32), primary_key=True),
        sa.Column("window_key", sa.String(40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in ("limit_quota_reservations", "limit_quota_counters", "limit_quota_limits"):
        op.drop_table(table)
