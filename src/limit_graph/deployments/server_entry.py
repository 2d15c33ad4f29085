"""The Prefect server child's entry point: Prefect's own CLI, with SQLite writes that wait.

Prefect opens its SQLite transactions DEFERRED: a transaction reads on a snapshot and
asks for the write lock only at its first write.  If another connection committed in
between, SQLite cannot let it write on that stale snapshot and fails it at once with
``database is locked``, without waiting out the busy timeout.  A worker heartbeat reads
its pool and then upserts the worker, so two heartbeats (or a heartbeat and one of the
server's services) that overlap fail that way, and the log fills with tracebacks.

:class:`ImmediateSqliteConfiguration` begins every transaction Prefect opens on SQLite
IMMEDIATE, taking the write lock up front: a second writer waits for it (Prefect's busy
timeout, 60 s) instead of failing.  Statements outside a transaction and the concurrent
readers of the WAL journal, which Prefect turns on, are unchanged; Postgres is left alone.
It is installed through Prefect's ``set_database_config`` before the CLI runs in this
process, where ``prefect server start`` serves the API and its services.

>>> # python -m limit_graph.deployments.server_entry server start --port 4200
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from prefect.server.database.configurations import AioSqliteConfiguration
from prefect.server.database.dependencies import set_database_config
from prefect.settings import get_current_settings
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

__all__ = ["ImmediateSqliteConfiguration", "install_database_config", "main"]


class ImmediateSqliteConfiguration(AioSqliteConfiguration):
    """Prefect's SQLite configuration, every transaction begun ``BEGIN IMMEDIATE``."""

    @asynccontextmanager
    async def begin_transaction(
        self, session: AsyncSession, with_for_update: bool = False
    ) -> AsyncGenerator[AsyncSessionTransaction, None]:
        # Prefect asks for IMMEDIATE only where it locks rows (with_for_update).
        del with_for_update
        async with super().begin_transaction(session, with_for_update=True) as transaction:
            yield transaction


def install_database_config() -> bool:
    """Use :class:`ImmediateSqliteConfiguration` if the server's database is SQLite."""
    secret = get_current_settings().server.database.connection_url
    url = secret.get_secret_value() if secret is not None else ""
    if not url.startswith("sqlite"):
        return False
    set_database_config(ImmediateSqliteConfiguration(connection_url=url))
    return True


def main() -> None:
    install_database_config()
    from prefect.cli import app

    sys.argv[0] = "prefect"
    app()


if __name__ == "__main__":
    main()
