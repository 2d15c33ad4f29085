"""Lineage: each session's graph of executions and the content they used and produced,
by content hash, and the cursors of the followers that derive it from the ledger.

The graph is derived data: a database upgraded to this revision starts with an empty
graph and cursors at -1, and the follower derives the whole ledger into it on its first
start.  Downgrading drops the graph (the ledger, from which it came, stays).

Revision ID: 0008
Revises: 0007
Create Date: 2027-02-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Document = sa.JSON()  # json, not jsonb, on Postgres: documents keep their exact text


def upgrade() -> None:
    op.create_table(
        "limit_lineage_nodes",
        sa.Column("session_id", sa.Uuid(), primary_key=True),
        sa.Column("node_id", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("hash", sa.String(64), nullable=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("label", sa.String(300), nullable=False),
        sa.Column("attributes", Document, nullable=False),
        sa.Column("entry", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_limit_lineage_nodes_hash", "limit_lineage_nodes", ["hash", "tenant"])
    op.create_table(
        "limit_lineage_edges",
        sa.Column("session_id", sa.Uuid(), primary_key=True),
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("target", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("attributes", Document, nullable=False),
    )
    op.create_index(
        "ix_limit_lineage_edges_target", "limit_lineage_edges", ["session_id", "target"]
    )
    op.create_table(
        "limit_lineage_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("idx", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("limit_lineage_cursors")
    op.drop_index("ix_limit_lineage_edges_target", "limit_lineage_edges")
    op.drop_table("limit_lineage_edges")
    op.drop_index("ix_limit_lineage_nodes_hash", "limit_lineage_nodes")
    op.drop_table("limit_lineage_nodes")
