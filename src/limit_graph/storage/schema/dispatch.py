"""The tables of the shared dispatch queue (``storage/database/dispatch.py``): what every
API process of one platform hands to runners, and who is serving.

- ``limit_dispatch``: one row per execution waiting for a runner (``queued``, claimable
  from ``ready_at``), held under a lease (``leased``, until ``expires_at``), or whose
  result is being recorded (``reporting``).  The row goes when the final record is
  written.  Times are seconds since the epoch (the platform's clock, not the
  database's, so a fake clock drives tests).  ``ix_limit_dispatch_claim`` serves the
  claims (oldest ready first, per instance), ``ix_limit_dispatch_expiry`` the reaper;
- ``limit_dispatch_runners``: the runners heard from lately, by any process (their pool,
  the instances they serve, when last seen), so that every process counts them;
- ``limit_signals``: wake-ups between processes on SQLite, which has no ``NOTIFY``
  (``seq`` only grows; readers follow it, and old rows are pruned).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
)

from limit_graph.storage.schema.columns import metadata

__all__ = ["dispatch", "dispatch_runners", "signals"]

dispatch = Table(
    "limit_dispatch",
    metadata,
    Column("execution_id", Uuid, primary_key=True),
    Column("instance", String(128), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("ready_at", Float, nullable=False),
    Column("runner_id", String(128), nullable=True),
    Column("expires_at", Float, nullable=True),
    Column("deadline", Float, nullable=True),
    Column("timeout_s", Float, nullable=True),
    Column("cancel", Boolean, nullable=False, default=False),
    Column("pinned", Boolean, nullable=False, default=False),
    Column("family", String(64), nullable=True),
    Index("ix_limit_dispatch_claim", "state", "instance", "ready_at"),
    Index("ix_limit_dispatch_expiry", "state", "expires_at"),
    Index("ix_limit_dispatch_runner", "runner_id"),
)

dispatch_runners = Table(
    "limit_dispatch_runners",
    metadata,
    Column("runner_id", String(128), primary_key=True),
    Column("pool", String(16), nullable=False),
    Column("instances", JSON, nullable=False),
    Column("seen_at", Float, nullable=False),
)

signals = Table(
    "limit_signals",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("channel", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("at", Float, nullable=False),
    sqlite_autoincrement=True,
)
