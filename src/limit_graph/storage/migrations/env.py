"""Alembic environment: migrations run on a connection the storage hands in."""

from __future__ import annotations

from alembic import context

from limit_graph.storage.database.engine import VERSION_TABLE
from limit_graph.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
