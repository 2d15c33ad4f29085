"""The database backend: SQLite (the embedded default) and Postgres through SQLAlchemy 2.

``engine`` connects and migrates, ``transaction`` is the interactive write transaction,
``store`` the :class:`DatabaseStorage` itself; single-record writes are group-committed
(:mod:`limit_graph.storage.database.group_commit`).
"""

from limit_graph.storage.database.store import DatabaseStorage

__all__ = ["DatabaseStorage"]
