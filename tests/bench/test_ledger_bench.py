"""The ledger's benches (``bench/ledger``) run end to end at their tiny size, so that
``make bench`` cannot rot: every table comes out, the ledgers they write and load
verify, and the bench's Postgres databases are gone afterwards."""

from __future__ import annotations

from pathlib import Path

import psycopg
from bench.ledger import SIZES, run
from bench.ledger.databases import MADE, libpq, postgres_reachable, server_url


def _existing(names: list[str]) -> list[str]:
    with psycopg.connect(libpq(server_url()), autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", [names])
        return [name for (name,) in rows.fetchall()]


def test_the_ledger_benches_run_at_their_tiny_size(tmp_path: Path) -> None:
    postgres = postgres_reachable() is None
    made = len(MADE)
    lines: list[str] = []
    run(tmp_path, SIZES["tiny"], say=lines.append)
    text = "\n".join(lines)

    assert "`verify_ledger`, SQLite (ok, 8 checkpoints) | 2,000 |" in text, text
    assert "| SQLite |" in text and "The ledger adds to an execute: SQLite" in text, text
    assert "| inclusion proof at 2,000 entries, SQLite |" in text, text
    assert "SQLite: in process" in text, text
    assert "The ledger's benches took" in lines[-1]
    if not postgres:
        assert "Postgres does not answer" in text
        return
    assert "`verify_ledger`, Postgres (ok, 8 checkpoints) | 2,000 |" in text, text
    assert "entries written verifies." in text, text
    for row in (
        "| platform: `write_entry` through the group-commit writer |",
        "| the store's nodes read + `merkle.inclusion_proof` |",
        "| `GET /audit/proof/inclusion`, `limit up` under uvicorn",
        "| Postgres |",
    ):
        assert row in text, text
    ours = MADE[made:]
    assert len(ours) == 3, ours  # the append bench's, the big ledger's, the execute bench's
    assert _existing(ours) == [], "the bench left its databases behind"
