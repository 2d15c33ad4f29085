"""Leases: which of the API processes sharing a store runs the services that run once
per platform (the Prefect mirror, the runner supervisor).

A database upgraded to this revision starts with no leases; the first process to ask
takes each.  Downgrading drops them (the earlier revision's processes run those
services without asking).

Revision ID: 0010
Revises: 0009
Create Date: 2027-03-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limit_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("limit_leases")
