"""The tables of the quota store (``storage/database/quotas.py``): limits by scope,
counters by scope, resource and window, and each execution's reservations.

Amounts are whole units (``storage/quotas.py``: QPU seconds in microseconds), so that a
claim's condition compares exactly on both databases.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table, Uuid

from limit_graph.storage.schema.columns import Document, metadata

__all__ = ["quota_counters", "quota_limits", "quota_reservations"]


quota_limits = Table(
    "limit_quota_limits",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("updated_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
)

quota_counters = Table(
    "limit_quota_counters",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("resource", String(32), primary_key=True),
    Column("window_key", String(40), primary_key=True),
    Column("used", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
)

quota_reservations = Table(
    "limit_quota_reservations",
    metadata,
    Column("execution_id", Uuid, primary_key=True),
    Column("scope", String(200), primary_key=True),
    Column("resource", String(32), primary_key=True),
    Column("window_key", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)
