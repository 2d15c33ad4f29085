"""Data keys: the key ring of encryption at rest, each key wrapped by the KEK.

Downgrading drops the ring, and with it the only way to open the sealed records (the
sensitive executions, their archives, the signing keys): export or delete them first.

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Document = sa.JSON()  # json, not jsonb, on Postgres: hashed documents keep their exact text


def upgrade() -> None:
    op.create_table(
        "limit_data_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("document", Document, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("limit_data_keys")
