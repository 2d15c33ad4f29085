"""The group-commit writer's ledger part: lock the tree's head, then append a batch's
entries, the perfect subtrees they complete and the moved head, in the batch's
transaction (:mod:`~limit_graph.storage.database.group_commit`).

On SQLite, which runs in the process, each table gets one ``executemany``.  On Postgres
every statement is a round trip, and psycopg's ``executemany`` sends each row as a
protocol exchange of its own (about 5 ms for a batch of 32 entries and their nodes,
measured for ``bench/ledger``, against 1.5 to 2 for the one statement below, on a busy
machine of two cores): there the whole append is one
statement, a multi-row ``INSERT`` of the entries and one of the nodes as data-modifying
``WITH`` clauses of the ``UPDATE`` that moves the head, in PostgreSQL's own numbered
placeholders (psycopg parses a long statement of ``%s`` placeholders in Python on
every call; arrays and ``unnest`` cost more still, their text escaped value by value).
Either way the rows are those :func:`~limit_graph.storage.schema.rows.ledger_row` and
:func:`~limit_graph.storage.schema.rows.node_rows` make, in one transaction with the
records they describe: a batch the database refuses leaves nothing behind, and a data
error (a NUL in a text, say) is still the database's to name, record by record, when
the writer retries the batch one write at a time.

Reading the head is a round trip of its own on Postgres (about a third of a
millisecond, as long as the append).  A writer that has found, batch after batch, the
head where it left it is the only one writing (one API process), so it extends the head
it committed last without reading it (:meth:`LedgerAppend.head`); the move still
checks it, changing the head only from the head it extended (size and edge), and an
entry's index is its primary key.  If another writer moved it meanwhile, the append fails (an
index is taken, or the move is refused) before anything commits, and the batch is
written again from the stored head, locked: the head's lock is then the first thing
every batch takes again, as it is whenever writers share the ledger.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from sqlalchemy import Connection, Dialect, Table, insert

from limit_graph.storage import schema as t
from limit_graph.storage.database.statements import Prepared
from limit_graph.storage.ledger import LedgerHead, NodeRow

__all__ = ["LedgerAppend"]

TRUSTED_AFTER = 16
"""How many batches in a row must find the stored head where this writer left it before
it stops reading it."""

_SHAPES_KEPT = 4096
"""How many statements (one per number of entries and of nodes) are kept written.  The
largest batch (512 writes of two entries) binds about 14,500 values, within Postgres's
65,535."""


class _Values:
    """``INSERT INTO <table> (<columns>) VALUES (...), ...`` for Postgres, in PostgreSQL's
    own numbered placeholders (which the driver sends as they are, where it would parse a
    long statement of ``%s`` placeholders on every call).  The rows' values (integers,
    text, bytes, booleans, UUIDs, nulls) are ones psycopg sends as they are."""

    def __init__(self, table: Table) -> None:
        self.table = table.name
        self.names = [c.name for c in table.columns]

    def sql(self, rows: int, first: int) -> str:
        width = len(self.names)
        values = ", ".join(
            "(" + ", ".join(f"${first + r * width + k}" for k in range(width)) + ")"
            for r in range(rows)
        )
        return f"INSERT INTO {self.table} ({', '.join(self.names)}) VALUES {values}"

    def bind(self, rows: list[dict[str, Any]], into: list[Any]) -> None:
        names = self.names
        for row in rows:
            into.extend([row[name] for name in names])


class LedgerAppend:
    """The ledger's statements of one dialect, for the writer's transaction, and what
    the writer knows of the head."""

    def __init__(self, dialect: Dialect) -> None:
        self._lock = Prepared(t.LOCK_LEDGER_HEAD, dialect)
        self._is_postgres = dialect.name == "postgresql"
        self._entries = _Values(t.ledger)
        self._nodes = _Values(t.ledger_nodes)
        self._sql: dict[tuple[int, int], str] = {}
        self._insert_entries = Prepared(insert(t.ledger), dialect)
        self._insert_nodes = Prepared(insert(t.ledger_nodes), dialect)
        self._move_head = Prepared(t.MOVE_LEDGER_HEAD, dialect)
        self._left: tuple[int, bytes] | None = None
        """The head as this writer's last committed append left it."""
        self._agreed = 0
        """How many locked reads in a row found the head at :attr:`_left`."""

    @property
    def trusting(self) -> bool:
        """Whether :meth:`head` extends the head it left without reading it."""
        return self._left is not None and self._agreed >= TRUSTED_AFTER

    def head(self, conn: Connection) -> LedgerHead:
        """The head a batch extends: where this writer left it, if it is the only writer
        it has seen (:data:`TRUSTED_AFTER`), else the stored head, locked."""
        if self._left is not None and self.trusting:
            return LedgerHead.stored(*self._left)
        head = self.lock_head(conn)
        found = (head.size, head.edge_bytes())
        self._agreed = self._agreed + 1 if found == self._left else 0
        return head

    def committed(self, head: LedgerHead) -> None:
        """The transaction that moved the head to ``head`` committed."""
        self._left = (head.size, head.edge_bytes())

    def forget(self) -> bool:
        """A transaction failed: read the head again from now on; whether the batch had
        extended an unread head (and may have failed for that alone)."""
        trusted = self.trusting
        self._left, self._agreed = None, 0
        return trusted

    def lock_head(self, conn: Connection) -> LedgerHead:
        """The head, locked until the transaction ends (``SELECT ... FOR UPDATE``; on
        SQLite the transaction's ``BEGIN IMMEDIATE`` already holds the write lock)."""
        [(size, edge)] = self._lock.rows(conn, {})
        return LedgerHead.stored(size, bytes(edge))

    def append(
        self,
        conn: Connection,
        entries: list[dict[str, Any]],
        nodes: list[NodeRow],
        head: LedgerHead,
        was: tuple[int, bytes],
    ) -> None:
        """Insert the entries' rows and the nodes they completed, and move the head to
        ``head`` (the head ``was``, its size and edge, extended by them); the database
        refuses the move (an integrity error) if the stored head is not ``was``."""
        node_rows = t.node_rows(nodes)
        moved = t.head_values(head, was)
        if not self._is_postgres:
            self._insert_entries.execute(conn, entries)
            if node_rows:
                self._insert_nodes.execute(conn, node_rows)
            self._move_head.execute(conn, [moved])
        else:
            params: list[Any] = []
            self._entries.bind(entries, params)
            self._nodes.bind(node_rows, params)
            params += (moved["size"], moved["edge"], *was)
            driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
            with contextlib.closing(psycopg.RawCursor(driver)) as cursor:
                cursor.execute(self._statement(len(entries), len(node_rows)), params)

    def _statement(self, entries: int, nodes: int) -> str:
        """The one statement that appends ``entries`` rows and ``nodes`` nodes and moves
        the head (kept for the batch sizes seen, up to :data:`_SHAPES_KEPT`)."""
        sql = self._sql.get((entries, nodes))
        if sql is None:
            parts = [f"entries AS ({self._entries.sql(entries, 1)})"]
            after = 1 + entries * len(self._entries.names)
            if nodes:
                parts.append(f"nodes AS ({self._nodes.sql(nodes, after)})")
                after += nodes * len(self._nodes.names)
            sql = (
                f"WITH {', '.join(parts)} UPDATE {t.ledger_head.name} "
                f"SET size = CASE WHEN size = ${after + 2} AND edge = ${after + 3} "
                f"THEN ${after}::bigint END, edge = ${after + 1} WHERE id = 1"
            )
            if len(self._sql) >= _SHAPES_KEPT:
                self._sql.clear()
            self._sql[(entries, nodes)] = sql
        return sql
