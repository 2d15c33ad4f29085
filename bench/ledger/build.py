"""A ledger of a million entries, made by the platform's own leaf and tree code and
loaded by the database's bulk path.

Writing a million entries through the group-commit writer takes minutes here (see the
append bench), so the big ledger is made the way a restore would.  Each row is what the
writer inserts: the payload's canonical JSON (``canonical_json``), its hash after the
salt of an erasable entry (``text_digest``), the leaf as the canonical JSON of the ten
fields it covers, and its RFC 6962 leaf hash (``merkle.leaf_hash``).  Made through the
models (``make_entry``, then ``ledger_row``) a row takes ~0.2 ms here, several minutes
for a million, so rows are made from those parts, and one in :data:`CHECKED` is also
made through the models and must come out the same, byte for byte.  Every perfect
subtree comes from the tree's ``CompactRange`` (what ``LedgerHead`` extends), a
checkpoint is signed every 256 entries as the platform's default ``checkpoint_entries``
does, and the head is moved to the end.  Postgres gets them by ``COPY``, SQLite by one
``executemany`` per table through the writer's own prepared statements (its two
secondary indexes made after the rows), both into a schema the platform's migrations
made.

The entries are what a busy platform writes: sessions created, executions submitted,
started and finished (their whole documents as payloads, ~0.5 kB), a denial now and
then, and one erasable entry in 500 (a principal's change, salted), half of those
erased.  Entries are made in two processes (the machine's cores); the tree, in order,
in this one.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import psycopg
from pydantic import TypeAdapter
from sqlalchemy import insert
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

from bench.ledger.databases import libpq
from limit_graph.core import merkle, notes
from limit_graph.core.canonical import canonical_json
from limit_graph.core.models import (
    BackendKind,
    Execution,
    ExecutionState,
    Session,
    SessionConfig,
    SessionState,
)
from limit_graph.storage import schema as t
from limit_graph.storage.base import execution_draft, session_draft
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.database.statements import Prepared
from limit_graph.storage.ledger import EntryDraft, make_entry, text_digest

__all__ = ["BuiltLedger", "Rows", "load_postgres", "load_sqlite", "make_rows", "schema"]

ORIGIN = "bench.limit-graph.local/ledger"
CHECKPOINT_EVERY = 256
CHUNK = 20_000
CHECKED = 97
"""One row in this many is also made through the model, and compared."""
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_TEMPLATES: list[tuple[EntryDraft, str]] = []
_MOMENT = TypeAdapter(datetime)


def _templates() -> list[tuple[EntryDraft, str]]:
    """The drafts a session's life writes, from real records, with their payloads'
    canonical JSON."""
    if _TEMPLATES:
        return _TEMPLATES
    config = SessionConfig(tags=["bench"], quotas={"shots": 1000.0})
    session = Session(
        id=uuid.UUID(int=1),
        name="experiment",
        state=SessionState.ACTIVE,
        config=config,
        config_sha256=config.sha256(),
        owner="alice",
        tenant="acme",
        created_at=T0,
        updated_at=T0,
    )
    submitted = Execution(
        id=uuid.UUID(int=2),
        session_id=session.id,
        agent="echo",
        agent_version="1.0.0",
        backend=BackendKind.LOCAL,
        instance="local-1",
        state=ExecutionState.QUEUED,
        inputs={"n": 1, "message": "hello"},
        submitted_at=T0,
        timeout_s=30.5,
        actor="alice",
    )
    running = submitted.model_copy(update={"state": ExecutionState.RUNNING, "started_at": T0})
    done = running.model_copy(
        update={
            "state": ExecutionState.SUCCEEDED,
            "finished_at": T0,
            "attempts": 1,
            "result": {"n": 1, "message": "hello", "echoed_at": T0.isoformat()},
        }
    )
    denial = EntryDraft(
        "bob",
        "execution.denied",
        "execution",
        "quantum.sample",
        session.id,
        {"agent": "quantum.sample", "backend": "quantum", "policy_ids": ["circuit-limits"]},
    )
    principal = EntryDraft(
        "admin",
        "principal.updated",
        "principal",
        "p-1",
        None,
        {"name": "Alice Example", "email": "alice@example.org", "tenant": "acme"},
        erasable=True,
    )
    drafts = [
        session_draft(session, actor="alice", action="session.created"),
        execution_draft(submitted, actor="alice", action="execution.submitted"),
        execution_draft(running, actor="alice", action="execution.started"),
        execution_draft(done, actor="alice", action="execution.succeeded"),
        denial,
        principal,
    ]
    _TEMPLATES.extend((draft, canonical_json(draft.payload)) for draft in drafts)
    return _TEMPLATES


def _draft(index: int) -> tuple[EntryDraft, str, bool]:
    """Entry ``index``'s draft, its payload's canonical JSON and whether the payload is
    erased: sessions of nine entries (created, two executions of three, a denial, one
    more submission), and one erasable entry in 500.  Entries of one kind share their
    payload (hashing it costs the same whatever it says), so its canonical JSON is made
    once; their resources, sessions, tenants and times are their own."""
    templates = _templates()
    if index % 500 == 499:
        principal, text = templates[5]
        return principal, text, index % 1000 == 999
    kind = (0, 1, 2, 3, 1, 2, 3, 4, 1)[index % 9]
    template, text = templates[kind]
    session_id = uuid.UUID(int=(index // 9) + 1)
    if kind in (1, 2, 3):
        resource_id = str(uuid.UUID(int=(index // 3) + (1 << 64)))
    elif kind == 0:
        resource_id = str(session_id)
    else:
        resource_id = template.resource_id
    tenant = ("acme", "globex", "initech", "umbrella")[(index // 9) % 4]
    draft = EntryDraft(
        template.actor,
        template.action,
        template.resource_type,
        resource_id,
        session_id,
        template.payload,
        tenant=tenant,
    )
    return draft, text, False


def _stamp(index: int) -> datetime:
    return T0 + timedelta(milliseconds=index)


def _row(index: int) -> dict[str, Any]:
    """Entry ``index``'s row from its parts: the leaf is the canonical JSON of the ten
    fields it covers (``docs/provenance.md``), hashed by the tree's leaf hash.
    :func:`_chunk` checks this against :func:`make_entry` and
    :func:`~limit_graph.storage.schema.rows.ledger_row`."""
    draft, payload, erased = _draft(index)
    salt = (
        base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        if draft.erasable
        else None
    )
    stamp = _stamp(index)
    leaf = canonical_json(
        {
            "index": index,
            "timestamp": _MOMENT.dump_python(stamp, mode="json"),
            "actor": draft.actor,
            "tenant": draft.tenant,
            "action": draft.action,
            "resource_type": draft.resource_type,
            "resource_id": draft.resource_id,
            "session_id": str(draft.session_id) if draft.session_id else None,
            "payload_sha256": text_digest(payload.encode("utf-8"), salt),
            "erasable": draft.erasable,
        }
    )
    return {
        "idx": index,
        "session_id": draft.session_id,
        "tenant": draft.tenant,
        "actor": draft.actor,
        "action": draft.action,
        "ts_us": t.to_micros(stamp),
        "leaf_hash": merkle.leaf_hash(leaf.encode("utf-8")),
        "leaf": leaf,
        "erasable": draft.erasable,
        "payload": None if erased else payload,
        "salt": None if erased else salt,
    }


def _chunk(start: int, count: int) -> list[dict[str, Any]]:
    """The rows of entries ``start .. start + count - 1``, as the writer inserts them;
    one in :data:`CHECKED` (but erasable ones, whose salt is random) also made through
    the models, and compared."""
    rows = [_row(index) for index in range(start, start + count)]
    for row in rows[::CHECKED]:
        draft, _, _ = _draft(row["idx"])
        if draft.erasable:
            continue
        made = t.ledger_row(make_entry(row["idx"], draft, timestamp=_stamp(row["idx"])))
        if made != row:
            raise AssertionError(f"entry {row['idx']} is not the row the platform makes")
    return rows


@dataclass
class Rows:
    """Everything a ledger of ``size`` entries stores."""

    size: int
    entries: list[dict[str, Any]]
    nodes: list[tuple[int, int, bytes]]
    checkpoints: list[dict[str, Any]]
    head: dict[str, Any]
    verifier_key: str
    seconds: dict[str, float] = field(default_factory=dict)


def _chunks(size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, size, CHUNK):
        yield start, min(CHUNK, size - start)


def make_rows(size: int, workers: int = 2) -> Rows:
    """The rows of a ledger of ``size`` entries (module docstring)."""
    started = time.perf_counter()
    entries: list[dict[str, Any]] = []
    if workers > 1 and size > CHUNK:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            starts, counts = zip(*_chunks(size), strict=True)
            for chunk in pool.map(_chunk, starts, counts):
                entries.extend(chunk)
    else:
        for start, count in _chunks(size):
            entries.extend(_chunk(start, count))
    made = time.perf_counter()
    signer = notes.Signer.generate(ORIGIN)
    edge = merkle.CompactRange.empty()
    nodes: list[tuple[int, int, bytes]] = []
    checkpoints: list[dict[str, Any]] = []
    for row in entries:
        for (level, idx), digest in edge.append(row["leaf_hash"]):
            if level:
                nodes.append((level, idx, digest))
        if edge.size % CHECKPOINT_EVERY == 0 or edge.size == size:
            root = edge.root()
            body = notes.Checkpoint(ORIGIN, edge.size, root).text()
            checkpoints.append(
                {
                    "tree_size": edge.size,
                    "root_hash": root,
                    "ts_us": t.to_micros(T0 + timedelta(milliseconds=edge.size)),
                    "key_id": signer.key_id.hex(),
                    "note": notes.sign_note(body, signer),
                }
            )
    return Rows(
        size,
        entries,
        nodes,
        checkpoints,
        {"size": edge.size, "edge": edge.to_bytes()},
        signer.verifier_key(),
        {"entries": made - started, "tree": time.perf_counter() - made},
    )


@dataclass(frozen=True)
class BuiltLedger:
    """A ledger stored in a database, and how long loading it took."""

    url: str
    size: int
    verifier_key: str
    load_s: float


def schema(url: str) -> None:
    """Make the platform's schema in an empty database (its migrations, on start)."""

    async def migrate() -> None:
        store = DatabaseStorage(url)
        await store.start()
        await store.close()

    asyncio.run(migrate())


def load_postgres(url: str, rows: Rows) -> BuiltLedger:
    """``COPY`` the rows into the platform's schema on a fresh Postgres database."""
    schema(url)
    started = time.perf_counter()
    columns = [c.name for c in t.ledger.columns]
    with psycopg.connect(libpq(url)) as conn:
        with conn.cursor() as cursor:
            with cursor.copy(f"COPY {t.ledger.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for entry in rows.entries:
                    copy.write_row([entry[c] for c in columns])
            with cursor.copy(f"COPY {t.ledger_nodes.name} (level, idx, hash) FROM STDIN") as copy:
                for node in rows.nodes:
                    copy.write_row(node)
            names = list(rows.checkpoints[0]) if rows.checkpoints else []
            with cursor.copy(f"COPY {t.checkpoints.name} ({', '.join(names)}) FROM STDIN") as copy:
                for checkpoint in rows.checkpoints:
                    copy.write_row([checkpoint[n] for n in names])
            cursor.execute(
                f"UPDATE {t.ledger_head.name} SET size = %(size)s, edge = %(edge)s WHERE id = 1",
                rows.head,
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return BuiltLedger(url, rows.size, rows.verifier_key, time.perf_counter() - started)


def load_sqlite(url: str, rows: Rows) -> BuiltLedger:
    """Insert the rows into the platform's schema in a new SQLite file, through the
    group-commit writer's prepared statements (one ``executemany`` per table)."""
    schema(url)
    started = time.perf_counter()
    dialect = sqlite_dialect.dialect()
    entries = Prepared(insert(t.ledger), dialect)
    nodes = Prepared(insert(t.ledger_nodes), dialect)
    checkpoints = Prepared(insert(t.checkpoints), dialect)
    path = make_url(url).database
    assert path is not None
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        indexes = conn.execute(  # made again after the rows, which is quicker than kept
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN (?, ?)",
            (t.ledger.name, t.ledger_nodes.name),
        ).fetchall()
        conn.execute("PRAGMA synchronous = OFF")  # one bulk load; the ledger's writes are FULL
        conn.execute("BEGIN IMMEDIATE")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.executemany(entries.sql, (entries.parameters(e) for e in rows.entries))
        conn.executemany(
            nodes.sql,
            (nodes.parameters({"level": n[0], "idx": n[1], "hash": n[2]}) for n in rows.nodes),
        )
        conn.executemany(checkpoints.sql, (checkpoints.parameters(c) for c in rows.checkpoints))
        conn.execute(
            f"UPDATE {t.ledger_head.name} SET size = ?, edge = ? WHERE id = 1",
            (rows.head["size"], rows.head["edge"]),
        )
        for _, made in indexes:
            conn.execute(made)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return BuiltLedger(url, rows.size, rows.verifier_key, time.perf_counter() - started)


def sqlite_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "ledger.db"
