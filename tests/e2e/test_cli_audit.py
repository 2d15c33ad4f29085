"""``limit audit verify``, ``prove`` and ``key`` as an operator runs them on the
embedded platform: a clean ledger verifies, an inclusion proof checks against the signed
checkpoint, one byte changed in SQLite (past the triggers) is named, and a database
rewritten from scratch -- its checkpoints signed by another key -- fails against the
exported public key and against a checkpoint copy kept outside it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from tests.fixtures.cli import Server, start


def _ok_json(server: Server, *args: str) -> dict[str, object]:
    done = server.limit(*args)
    assert done.returncode == 0, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def _run_some(server: Server) -> None:
    sid = str(_ok_json(server, "session", "create", "--tag", "audit")["id"])
    for n in range(3):
        _ok_json(server, "exec", sid, "echo", "--inputs", json.dumps({"n": n}))


def _database(folder: Path) -> Path:
    [found] = (folder / ".limit").glob("*.db")
    return found


def test_verify_and_prove_then_a_changed_byte_is_named(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        _run_some(server)
        proven = _ok_json(server, "audit", "prove", "2", "--json")
        proof, checkpoint = proven["proof"], proven["checkpoint"]
        assert isinstance(proof, dict) and isinstance(checkpoint, dict)
        assert proof["index"] == 2 and proof["tree_size"] == checkpoint["tree_size"]
        shown = server.limit("audit", "prove", "1")
        assert shown.returncode == 0, shown.stderr
        assert "verified against the signed checkpoint:" in shown.stdout
        clean = server.limit("audit", "verify")
        assert clean.returncode == 0, clean.stderr
        assert clean.stdout.startswith("the ledger verifies: ")
        assert "signatures checked against the key the database holds" in clean.stdout
    finally:
        server.stop()

    with sqlite3.connect(_database(tmp_path)) as db:
        [(index,)] = db.execute(
            "SELECT max(idx) FROM limit_ledger WHERE action = 'execution.started'"
        ).fetchall()
        db.execute("DROP TRIGGER limit_ledger_no_update")  # as the file's owner can
        db.execute(
            "UPDATE limit_ledger SET leaf = replace(leaf, 'execution.started', "
            "'execution.startee') WHERE idx = ?",
            (index,),
        )
    tampered = server.limit("audit", "verify", "--json")
    assert tampered.returncode == 1, tampered.stderr
    report = json.loads(tampered.stdout)
    assert (report["ok"], report["first_bad"]) == (False, index)
    assert report["detail"].startswith(f"entry {index}: its leaf_hash does not match")


def test_a_rewritten_database_fails_against_the_exported_key_and_copy(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        _run_some(server)
        checkpoint = _ok_json(server, "audit", "prove", "0", "--json")["checkpoint"]
        assert isinstance(checkpoint, dict)
        exported = tmp_path / "ledger.pub"
        saved = server.limit("audit", "key", "--output", str(exported))
        assert saved.returncode == 0, saved.stderr
    finally:
        server.stop()
    assert exported.read_text(encoding="utf-8") == f"{checkpoint['public_key']}\n"
    offline = server.limit("audit", "key", "--local")
    assert (offline.returncode, offline.stdout) == (0, f"{checkpoint['public_key']}\n")
    kept = tmp_path / "kept.note"
    shutil.copy(tmp_path / ".limit" / "checkpoints" / "latest.note", kept)

    # The database rewritten from scratch, with a history of its own and a new key.
    for stale in (tmp_path / ".limit").glob("*.db*"):
        stale.unlink()
    none_yet = server.limit("audit", "key", "--local")
    assert none_yet.returncode == 1 and "holds no ledger key yet" in none_yet.stderr
    server = start(tmp_path)
    try:
        _run_some(server)
        _ok_json(server, "audit", "prove", "0", "--json")
    finally:
        server.stop()
    alone = server.limit("audit", "verify")
    assert alone.returncode == 0, alone.stderr  # consistent with itself and its own key

    with_key = server.limit("audit", "verify", "--public-key", str(exported))
    assert with_key.returncode == 1
    assert "signed by no known key" in with_key.stdout

    with_copy = server.limit("audit", "verify", "--checkpoint", str(kept))
    assert with_copy.returncode == 1
    assert "kept.note" in with_copy.stdout and "signed by no known key" in with_copy.stdout
