"""The ledger as an RFC 6962 Merkle tree, append-only in the database.

Upgrading checks the whole hash chain first (:mod:`limit_graph.storage.legacy_chain`)
and refuses, naming the first bad entry, to migrate one that does not verify: a tree
built over a broken chain would certify it.  Each entry then becomes a leaf
(:mod:`limit_graph.storage.ledger`): the same index, time, actor, action, resource,
session and payload, its tenant found from its session (or the payload's ``tenant``),
its payload hash in the canonical form of today; the tree's nodes and its head follow,
and the triggers that refuse UPDATE and DELETE on the ledger, its nodes and its
checkpoints (erasing an erasable payload is the one update let through).

Downgrading writes the chain back from the entries, and refuses when a payload has been
erased (the chain would not verify without it).

Revision ID: 0007
Revises: 0006
Create Date: 2027-02-02
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from limit_graph.storage.ledger import LedgerHead
from limit_graph.storage.ledger_upgrade import leaf_of_chained
from limit_graph.storage.legacy_chain import (
    GENESIS_HASH,
    chain_document,
    verify_chain_document,
)
from limit_graph.storage.schema.rows import ledger_row

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Document = sa.JSON()
CHUNK = 1000
LEDGER_TABLES = ("limit_ledger", "limit_ledger_nodes", "limit_checkpoints")

_old_ledger = sa.table(
    "limit_ledger",
    sa.column("idx", sa.BigInteger()),
    sa.column("session_id", sa.Uuid()),
    sa.column("entry_hash", sa.String(64)),
    sa.column("document", Document),
)
_old_head = sa.table(
    "limit_ledger_head",
    sa.column("id", sa.Integer()),
    sa.column("size", sa.BigInteger()),
    sa.column("last_hash", sa.String(64)),
)
_sessions = sa.table("limit_sessions", sa.column("id", sa.Uuid()), sa.column("tenant", sa.String()))


def _new_ledger_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("tenant", sa.String(128), nullable=True),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf", sa.Text(), nullable=False),
        sa.Column("erasable", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("salt", sa.String(32), nullable=True),
    ]


def _chunks(
    conn: sa.Connection, query: sa.Select[Any], idx: sa.ColumnClause[Any]
) -> Iterator[Sequence[Any]]:
    """The rows of ``query`` in ``idx`` order, a chunk at a time (keyset, so a ledger of
    millions never sits in memory whole)."""
    after = -1
    while True:
        rows = conn.execute(query.where(idx > after).order_by(idx).limit(CHUNK)).all()
        if not rows:
            return
        yield rows
        after = rows[-1].idx


def _verify_chain(conn: sa.Connection) -> None:
    size, last_hash = conn.execute(sa.select(_old_head.c.size, _old_head.c.last_hash)).one()
    query = sa.select(_old_ledger.c.idx, _old_ledger.c.document)
    expected, prev = 0, GENESIS_HASH
    for rows in _chunks(conn, query, _old_ledger.c.idx):
        for row in rows:
            problem = verify_chain_document(row.document, expected, prev)
            if problem is not None:
                raise RuntimeError(
                    f"the ledger's hash chain does not verify: {problem}; "
                    "it is not migrated (restore it from a backup first)"
                )
            expected, prev = expected + 1, row.document["entry_hash"]
    if (expected, prev) != (size, last_hash):
        raise RuntimeError(
            f"the ledger's hash chain does not verify: its head says {size} entries ending "
            f"in {last_hash[:12]}…, the entries end at {expected} in {prev[:12]}…; "
            "it is not migrated"
        )


def upgrade() -> None:
    conn = op.get_bind()
    _verify_chain(conn)
    tenants = {
        row.id: row.tenant for row in conn.execute(sa.select(_sessions.c.id, _sessions.c.tenant))
    }
    new_ledger = op.create_table("limit_ledger_v2", *_new_ledger_columns())
    nodes = op.create_table(
        "limit_ledger_nodes",
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    head = LedgerHead()
    query = sa.select(_old_ledger.c.idx, _old_ledger.c.document)
    for rows in _chunks(conn, query, _old_ledger.c.idx):
        entries = [leaf_of_chained(row.document, tenants) for row in rows]
        conn.execute(new_ledger.insert(), [ledger_row(e) for e in entries])
        made = [
            {"level": level, "idx": idx, "hash": digest}
            for (level, idx), digest in head.add(entries)
            if level
        ]
        if made:
            conn.execute(nodes.insert(), made)
    op.drop_index("ix_limit_ledger_session", table_name="limit_ledger")
    op.drop_table("limit_ledger")
    op.rename_table("limit_ledger_v2", "limit_ledger")
    op.create_index("ix_limit_ledger_session", "limit_ledger", ["session_id", "idx"])
    op.create_index("ix_limit_ledger_tenant", "limit_ledger", ["tenant", "idx"])
    op.drop_table("limit_ledger_head")
    new_head = op.create_table(
        "limit_ledger_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("edge", sa.LargeBinary(), nullable=False),
    )
    conn.execute(new_head.insert(), [{"id": 1, "size": head.size, "edge": head.edge_bytes()}])
    op.create_table(
        "limit_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    for statement in append_only_triggers(conn.dialect.name):
        conn.execute(sa.text(statement))


def downgrade() -> None:
    conn = op.get_bind()
    erased = conn.scalar(
        sa.text("SELECT count(*) FROM limit_ledger WHERE erasable AND payload IS NULL")
    )
    if erased:
        raise RuntimeError(
            f"{erased} ledger entries have had their payload erased: the hash chain cannot "
            "be written back without them"
        )
    for statement in drop_triggers(conn.dialect.name):
        conn.execute(sa.text(statement))
    old = op.create_table(
        "limit_ledger_v1",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("document", Document, nullable=False),
    )
    current = sa.table(
        "limit_ledger",
        sa.column("idx", sa.BigInteger()),
        sa.column("leaf", sa.Text()),
        sa.column("payload", sa.Text()),
    )
    query = sa.select(current.c.idx, current.c.leaf, current.c.payload)
    prev = GENESIS_HASH
    for rows in _chunks(conn, query, current.c.idx):
        made = []
        for row in rows:
            fields = {
                k: v
                for k, v in json.loads(row.leaf).items()
                if k not in ("tenant", "erasable", "payload_sha256")
            }
            payload = json.loads(row.payload)
            document = chain_document(row.idx, prev, {**fields, "payload": payload})
            prev = document["entry_hash"]
            made.append(
                {
                    "idx": row.idx,
                    "session_id": uuid.UUID(fields["session_id"]) if fields["session_id"] else None,
                    "entry_hash": prev,
                    "document": document,
                }
            )
        conn.execute(old.insert(), made)
    size = conn.scalar(sa.text("SELECT count(*) FROM limit_ledger"))
    op.drop_table("limit_checkpoints")
    op.drop_table("limit_ledger_nodes")
    op.drop_index("ix_limit_ledger_session", table_name="limit_ledger")
    op.drop_index("ix_limit_ledger_tenant", table_name="limit_ledger")
    op.drop_table("limit_ledger")
    op.rename_table("limit_ledger_v1", "limit_ledger")
    op.create_index("ix_limit_ledger_session", "limit_ledger", ["session_id", "idx"])
    op.drop_table("limit_ledger_head")
    old_head = op.create_table(
        "limit_ledger_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    conn.execute(old_head.insert(), [{"id": 1, "size": size, "last_hash": prev}])


_SAME_ROW = (
    "NEW.idx = OLD.idx AND NEW.leaf_hash = OLD.leaf_hash AND NEW.erasable = OLD.erasable "
    "AND NEW.actor = OLD.actor AND NEW.action = OLD.action AND NEW.ts_us = OLD.ts_us "
    "AND NEW.session_id IS NOT DISTINCT FROM OLD.session_id "
    "AND NEW.tenant IS NOT DISTINCT FROM OLD.tenant AND NEW.leaf = OLD.leaf"
)


def append_only_triggers(dialect: str) -> list[str]:
    """The statements that make the ledger's tables append-only on ``dialect``."""
    if dialect == "postgresql":
        return [
            f"""
            CREATE FUNCTION limit_ledger_guard() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    IF OLD.erasable AND NEW.payload IS NULL AND NEW.salt IS NULL
                       AND {_SAME_ROW} THEN
                        RETURN NEW;
                    END IF;
                END IF;
                RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'integrity_constraint_violation';
            END
            $$
            """,
            """
            CREATE FUNCTION limit_ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'integrity_constraint_violation';
            END
            $$
            """,
            *(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION "
                + ("limit_ledger_guard()" if table == "limit_ledger" else "limit_ledger_refuse()")
                for table in LEDGER_TABLES
            ),
            *(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION limit_ledger_refuse()"
                for table in LEDGER_TABLES
            ),
        ]
    same = _SAME_ROW.replace("IS NOT DISTINCT FROM", "IS")
    statements = [
        "CREATE TRIGGER limit_ledger_no_update BEFORE UPDATE ON limit_ledger "
        f"WHEN NOT (OLD.erasable AND NEW.payload IS NULL AND NEW.salt IS NULL AND {same}) "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: UPDATE on limit_ledger "
        "refused'); END"
    ]
    for table in LEDGER_TABLES:
        if table != "limit_ledger":
            statements.append(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN SELECT "
                f"RAISE(ABORT, 'the ledger is append-only: UPDATE on {table} refused'); END"
            )
        statements.append(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN SELECT "
            f"RAISE(ABORT, 'the ledger is append-only: DELETE on {table} refused'); END"
        )
    return statements


def drop_triggers(dialect: str) -> list[str]:
    """The statements that undo :func:`append_only_triggers`."""
    if dialect == "postgresql":
        return [
            *(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t}" for t in LEDGER_TABLES),
            *(f"DROP TRIGGER IF EXISTS {t}_no_truncate ON {t}" for t in LEDGER_TABLES),
            "DROP FUNCTION IF EXISTS limit_ledger_guard()",
            "DROP FUNCTION IF EXISTS limit_ledger_refuse()",
        ]
    return [
        f"DROP TRIGGER IF EXISTS {t}_{what}"
        for t in LEDGER_TABLES
        for what in ("no_update", "no_delete")
    ]
