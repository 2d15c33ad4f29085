"""The table of the lease store (``storage/database/leases.py``).

- ``limit_leases``: one row per named lease (``mirror``, ``supervisor``): who holds it,
  until when, and since when (``acquired_at`` stays put while the holder renews).
  Times are seconds since the epoch, the platform's clock, not the database's.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, String, Table

from limit_graph.storage.schema.columns import metadata

__all__ = ["leases"]

leases = Table(
    "limit_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
)
