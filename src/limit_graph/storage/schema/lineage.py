"""The tables of the lineage store (``storage/database/lineage.py``): the graph's nodes
and edges, per session, and the cursors of the followers that derive them.

- ``limit_lineage_nodes``: one row per (session, node id); ``hash`` is the content's
  SHA-256 (hex) where it has content; ``entry`` the ledger index it was derived from.
  ``ix_limit_lineage_nodes_hash`` answers "which executions used or produced this",
  across sessions, a tenant at a time;
- ``limit_lineage_edges``: one row per (session, source, target, kind); the key serves
  a session's graph and the edges leaving a node, ``ix_limit_lineage_edges_target`` the
  edges reaching one;
- ``limit_lineage_cursors``: the last ledger index each follower wrote up to, moved in
  the transaction of the batch it covers.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Uuid

from limit_graph.storage.schema.columns import Document, metadata

__all__ = ["lineage_cursors", "lineage_edges", "lineage_nodes"]

lineage_nodes = Table(
    "limit_lineage_nodes",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("node_id", String(100), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("hash", String(64), nullable=True),
    Column("tenant", String(128), nullable=False),
    Column("label", String(300), nullable=False),
    Column("attributes", Document, nullable=False),
    Column("entry", BigInteger, nullable=False),
    Index("ix_limit_lineage_nodes_hash", "hash", "tenant"),
)

lineage_edges = Table(
    "limit_lineage_edges",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("source", String(100), primary_key=True),
    Column("target", String(100), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("attributes", Document, nullable=False),
    Index("ix_limit_lineage_edges_target", "session_id", "target"),
)

lineage_cursors = Table(
    "limit_lineage_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("idx", BigInteger, nullable=False),
)
