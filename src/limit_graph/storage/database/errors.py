"""Which database errors pass: the ones a client should retry, not a bug's 500.

A lost or refused connection (Postgres restarting, shutting down, refusing connections
to a database; the pool unable to hand one out in time), a transaction Postgres rolled
back to break a deadlock or a serialization conflict, a statement or lock timeout, and
SQLite's write lock held by another writer past the busy timeout.  Each is the store's
condition, not the request's: the transaction it failed in did not commit, and the
request may succeed when retried, so the API answers it with a 503 problem and
``Retry-After`` (:class:`~limit_graph.core.errors.StorageUnavailable`).  A disk too
full for the write (SQLite's ``SQLITE_FULL``, Postgres's ``disk_full``) is the 507 of
that branch (:class:`~limit_graph.core.errors.StorageFull`): the transaction did not
commit either, but it does not pass by itself.  Data errors, constraint violations and
programming errors are not among them.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy import exc as sa_exc

from limit_graph.core.errors import StorageFull, StorageUnavailable

__all__ = ["DATABASE_ERRORS", "RETRY_AFTER_S", "storage_unavailable"]

RETRY_AFTER_S = 2.0
"""What a client is told to wait before retrying."""

DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.SQLAlchemyError,
    sqlite3.Error,
    psycopg.Error,
)
"""Every error a database call can raise, wrapped by SQLAlchemy or the driver's own."""

_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
_SQLITE_FULL = "database or disk is full"
_FULL = "the disk the store writes to is full: nothing of this request was written"


def _full(error: BaseException) -> bool:
    if isinstance(error, sqlite3.OperationalError):
        return str(error).lower() == _SQLITE_FULL
    return isinstance(error, psycopg.errors.DiskFull)


def _reason(error: BaseException) -> str | None:
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        return "SQLite is busy: another writer holds its lock" if text in _SQLITE_BUSY else None
    if isinstance(error, psycopg.errors.TransactionRollback):  # deadlock, serialization
        return "Postgres rolled the transaction back to resolve a conflict"
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        if isinstance(error, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
            return "Postgres timed a statement out"
        return "the connection to Postgres failed or was lost"
    return None


def storage_unavailable(error: BaseException) -> StorageUnavailable | None:
    """The 503 for ``error`` if it is one that passes (the module's docstring), else
    ``None``.

    >>> import sqlite3
    >>> storage_unavailable(sqlite3.OperationalError("database is locked")).status_code
    503
    >>> storage_unavailable(sqlite3.IntegrityError("UNIQUE constraint failed")) is None
    True
    >>> storage_unavailable(sqlite3.OperationalError("database or disk is full")).status_code
    507
    """
    cause: BaseException | None = error
    if isinstance(error, sa_exc.TimeoutError):  # no connection free in the pool in time
        return StorageUnavailable("no database connection was free in time", RETRY_AFTER_S)
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return StorageUnavailable("the connection to the database was lost", RETRY_AFTER_S)
        cause = error.orig
    if cause is not None and _full(cause):
        return StorageFull(f"{_FULL}; retry once an operator has freed space")
    reason = _reason(cause) if cause is not None else None
    if reason is None:
        return None
    return StorageUnavailable(f"{reason}; retry later", RETRY_AFTER_S)
