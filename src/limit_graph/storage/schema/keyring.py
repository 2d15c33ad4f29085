"""The table of the data keys (``storage/database/keyring.py``): each key only wrapped
by the key-encryption key; the state says which one seals.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table

from limit_graph.storage.schema.columns import Document, metadata

__all__ = ["data_keys"]

data_keys = Table(
    "limit_data_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
)
