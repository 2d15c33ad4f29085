"""Statements compiled once and run on the driver's cursor, for the group-commit writer.

SQLAlchemy Core spends ~0.15 ms per statement on building and looking up its compiled
form, more than SQLite takes to run it; the writer's statements are compiled once for
the engine's dialect (:class:`Prepared`) and sent to the driver with the parameters
SQLAlchemy's own column types would bind.  Rows come back as the driver returns them.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Dialect, bindparam, select
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Lookup", "Prepared", "pipelined"]


def pipelined(conn: Connection) -> contextlib.AbstractContextManager[Any]:
    """On Postgres, psycopg's pipeline mode for ``conn`` until the block ends: statements
    whose answer nobody reads are sent without waiting for it, and the next read or the
    block's end waits for them all at once (one round trip for the writes of a batch),
    raising the first one's error; nested, the inner block's end waits.  Nothing
    elsewhere: SQLite runs in the process.  Only statements run on the driver's cursor
    or whose result is not read belong in it: SQLAlchemy reads a result's columns as
    soon as it has run the statement, before the pipeline has its answer."""
    if conn.dialect.name != "postgresql":
        return contextlib.nullcontext()
    driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    return driver.pipeline()


class Prepared:
    """A statement compiled once for a dialect: its SQL, the order of its parameters
    (for positional drivers) and each parameter's bind processor (UUIDs as SQLite's
    32-digit hex, documents through the dialect's JSON serializer...)."""

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, columns: list[str] | None = None
    ) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=columns))
        self.sql = compiled.string
        self.order: list[str] | None = (
            list(compiled.positiontup) if compiled.positiontup is not None else None
        )
        self.processors: dict[str, Any] = {}
        self.fixed: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            if self.order is not None and name not in self.order:
                continue
            if self.order is None and f"%({name})s" not in self.sql:
                continue  # named style (psycopg): only the names the SQL uses
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor
            if not bind.required:  # a value written in the statement, e.g. the head's id
                self.fixed[name] = bind.effective_value

    def bound(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` (and the statement's own values) as the driver is given them."""
        return {
            name: (processor(value) if (processor := self.processors.get(name)) else value)
            for name, value in (self.fixed | row).items()
        }

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        bound = self.bound(row)
        return tuple(bound[name] for name in self.order) if self.order is not None else bound

    def execute(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Run for each row in the connection's transaction, on the driver's cursor."""
        with contextlib.closing(conn.connection.cursor()) as cursor:
            if len(rows) == 1:
                cursor.execute(self.sql, self.parameters(rows[0]))
            else:
                cursor.executemany(self.sql, [self.parameters(row) for row in rows])  # type: ignore[arg-type]

    def count(self, conn: Connection, row: dict[str, Any]) -> int:
        """Run once with ``row``: the number of rows it changed (so never inside
        :func:`pipelined`, where the count comes only with the block's end)."""
        with contextlib.closing(conn.connection.cursor()) as cursor:
            cursor.execute(self.sql, self.parameters(row))
            return int(cursor.rowcount)

    def rows(self, conn: Connection, row: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows it selects, as the driver returns them (no result processing)."""
        with contextlib.closing(conn.connection.cursor()) as cursor:
            cursor.execute(self.sql, self.parameters(row))
            return [tuple(found) for found in cursor.fetchall()]


class Lookup:
    """``SELECT <columns> WHERE <key> IN (...)``, prepared for each number of keys.

    Rows come back as the driver returns them, so keys are matched in the driver's
    form: each wanted key is bound the way the statement binds it, and the rows are
    given back under the key as passed in.
    """

    def __init__(self, key: Any, columns: list[Any], dialect: Dialect) -> None:
        self._key = key
        self._columns = columns
        self._dialect = dialect
        self._prepared: dict[int, Prepared] = {}

    def find(self, conn: Connection, keys: list[Any]) -> dict[Any, tuple[Any, ...]]:
        prepared = self._prepared.get(len(keys))
        if prepared is None:
            names = [bindparam(f"k{n}", type_=self._key.type) for n in range(len(keys))]
            statement = select(self._key, *self._columns).where(self._key.in_(names))
            prepared = self._prepared.setdefault(len(keys), Prepared(statement, self._dialect))
        row = {f"k{n}": key for n, key in enumerate(keys)}
        bound = prepared.bound(row)
        wanted = {bound[f"k{n}"]: key for n, key in enumerate(keys)}
        return {wanted[found[0]]: found[1:] for found in prepared.rows(conn, row)}
