"""The ledger's tables: its entries, the Merkle tree's nodes, its head, and its signed
checkpoints.

- ``limit_ledger``: one row per entry: ``leaf``, the exact bytes its leaf hash is the
  hash of (the canonical JSON of every field but the payload), ``leaf_hash``, the
  payload as its canonical JSON (the bytes ``payload_sha256`` hashes, after the salt of
  an erasable entry) and the salt, with the columns ``/audit`` filters by beside them.
  Verifying a row is hashing its text, with no parsing or re-serialising; erasing an
  erasable payload is the one change the append-only triggers let through
  (``payload`` and ``salt`` to null);
- ``limit_ledger_nodes``: the hash of every perfect subtree of two leaves or more,
  ``(level, idx)`` covering leaves ``[idx << level, (idx + 1) << level)``; a leaf
  (level 0) is its entry's ``leaf_hash``.  Nodes never change once written, so a proof
  of any size is read from them in one query of O(log n) rows;
- ``limit_ledger_head``: one row, the tree's size and right edge (its perfect subtrees,
  largest first), which each writer locks, extends and moves in its transaction;
- ``limit_checkpoints``: the signed checkpoints, by tree size.

The migration that creates them (``0007``) also creates the triggers that refuse any
other UPDATE or DELETE on all four but the head.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
)

from limit_graph.storage.schema.columns import metadata

__all__ = ["ENTRY_COLUMNS", "checkpoints", "ledger", "ledger_head", "ledger_nodes"]

ledger = Table(
    "limit_ledger",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("session_id", Uuid, nullable=True),
    Column("tenant", String(128), nullable=True),
    Column("actor", String(256), nullable=False),
    Column("action", String(128), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("leaf", Text, nullable=False),
    Column("erasable", Boolean, nullable=False),
    Column("payload", Text, nullable=True),
    Column("salt", String(32), nullable=True),
    Index("ix_limit_ledger_session", "session_id", "idx"),
    Index("ix_limit_ledger_tenant", "tenant", "idx"),
)

ledger_nodes = Table(
    "limit_ledger_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

ledger_head = Table(
    "limit_ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("edge", LargeBinary, nullable=False),
)

checkpoints = Table(
    "limit_checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("key_id", String(128), nullable=False),
    Column("note", Text, nullable=False),
)

ENTRY_COLUMNS = (ledger.c.leaf, ledger.c.leaf_hash, ledger.c.payload, ledger.c.salt)
"""What :func:`~limit_graph.storage.schema.rows.ledger_entry` makes an entry of."""
