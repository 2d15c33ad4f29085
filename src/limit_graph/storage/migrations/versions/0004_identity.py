"""Identity: tenants, principals, API keys, signing keys, policy versions, session grants,
and the one-row identity epoch that every identity write moves on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Document = sa.JSON()  # json, not jsonb, on Postgres: hashed documents keep their exact text


def upgrade() -> None:
    op.create_table(
        "limit_tenants",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("document", Document, nullable=False),
        sa.UniqueConstraint("name", name="uq_limit_tenants_name"),
    )
    op.create_table(
        "limit_principals",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("deleted_us", sa.BigInteger(), nullable=True),
        sa.Column("document", Document, nullable=False),
        sa.UniqueConstraint("client_id", name="uq_limit_principals_client_id"),
    )
    op.create_index("ix_limit_principals_order", "limit_principals", ["created_us", "id"])
    op.create_index(
        "ix_limit_principals_tenant", "limit_principals", ["tenant", "created_us", "id"]
    )
    live = sa.text("deleted_us IS NULL")
    op.create_index(
        "uq_limit_principals_live_name",
        "limit_principals",
        ["tenant", "name"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )
    op.create_table(
        "limit_api_keys",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("principal_id", sa.Uuid(), sa.ForeignKey("limit_principals.id"), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=True),
        sa.Column("last_used_us", sa.BigInteger(), nullable=True),
        sa.Column("document", Document, nullable=False),
    )
    op.create_index("ix_limit_api_keys_order", "limit_api_keys", ["created_us", "id"])
    op.create_index("ix_limit_api_keys_tenant", "limit_api_keys", ["tenant", "created_us", "id"])
    op.create_index(
        "ix_limit_api_keys_principal", "limit_api_keys", ["principal_id", "created_us", "id"]
    )
    op.create_table(
        "limit_signing_keys",
        sa.Column("kid", sa.String(128), primary_key=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("document", Document, nullable=False),
    )
    op.create_index("ix_limit_signing_keys_order", "limit_signing_keys", ["created_us", "kid"])
    op.create_table(
        "limit_policies",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("document", Document, nullable=False),
    )
    op.create_table(
        "limit_grants",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("permission", sa.String(16), nullable=False),
        sa.Column("principal_id", sa.Uuid(), sa.ForeignKey("limit_principals.id"), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("document", Document, nullable=False),
        sa.UniqueConstraint("session_id", "subject", "permission", name="uq_limit_grants_subject"),
    )
    op.create_index("ix_limit_grants_session", "limit_grants", ["session_id", "created_us", "id"])
    op.create_index("ix_limit_grants_principal", "limit_grants", ["principal_id"])
    op.create_table(
        "limit_identity_epoch",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(
        sa.table(
            "limit_identity_epoch",
            sa.column("id", sa.Integer()),
            sa.column("epoch", sa.BigInteger()),
        ),
        [{"id": 1, "epoch": 0}],
    )


def downgrade() -> None:
    for table in (
        "limit_identity_epoch",
        "limit_grants",
        "limit_policies",
        "limit_signing_keys",
        "limit_api_keys",
        "limit_principals",
        "limit_tenants",
    ):
        op.drop_table(table)
