"""The handbook's backup and restore, followed as written: the two shell blocks of
``docs/operations.md`` run as they are, against a platform on Postgres that has done
some work, into a fresh database; the restored platform's ledger verifies against the
public key exported at installation and the checkpoint copy in the backup, and it
carries on (the old session is there, new work lands, the ledger still verifies)."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fixtures.cli import Server, clean_env, launch
from tests.fixtures.live import free_port
from tests.fixtures.postgres import scratch_database
from tests.fixtures.waiting import wait_until

HANDBOOK = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def _block(name: str) -> str:
    found = re.search(
        rf"<!-- ops:{name} -->\n```sh\n(.*?)```", HANDBOOK.read_text(encoding="utf-8"), re.S
    )
    assert found, f"docs/operations.md has no ops:{name} block"
    return found.group(1)


def _follow(name: str, env: dict[str, str], cwd: Path) -> str:
    """Run the handbook's block as a shell runs it; its output, or a failure showing it."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _block(name)],
        cwd=cwd,
        env={**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"{name}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _platform(folder: Path, database_url: str, shared: dict[str, str]) -> Server:
    folder.mkdir(exist_ok=True)
    config = folder / "limit-graph.toml"
    config.write_text("[ledger]\ncheckpoint_interval_s = 0.2\n", encoding="utf-8")
    port = free_port()
    env = clean_env(
        **shared,
        DATABASE_URL=database_url,
        LIMIT_HOME=str(folder / "state"),
        LIMIT_CONFIG=str(config),
        LIMIT_API_URL=f"http://127.0.0.1:{port}",
    )
    return launch(folder, env, env["LIMIT_API_URL"], "--bind", f"127.0.0.1:{port}")


def _ok(server: Server, *args: str) -> dict[str, object]:
    done = server.limit(*args)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def _checkpointed(server: Server) -> int:
    """The tree size once the checkpoint note outside the database covers the whole
    ledger as the platform signs it now."""
    headers = {"X-API-Key": server.env["LIMIT_ADMIN_API_KEY"]}
    note = Path(server.env["LIMIT_HOME"]) / "checkpoints" / "latest.note"

    def covered() -> int | None:
        now = httpx.get(f"{server.url}/audit/checkpoint", headers=headers, timeout=5)
        written = note.read_text(encoding="utf-8").splitlines() if note.is_file() else []
        size = int(now.json()["tree_size"])
        return size if written[1:2] == [str(size)] else None

    return wait_until(covered, 30, what="a checkpoint note of the whole ledger")


def test_the_handbooks_backup_restores_into_a_fresh_database(tmp_path: Path) -> None:
    shared = {
        "LIMIT_AUTH_SECRET": secrets.token_urlsafe(32),
        "LIMIT_DATA_KEK": base64.b64encode(secrets.token_bytes(32)).decode(),
        "LIMIT_ADMIN_API_KEY": secrets.token_urlsafe(32),
    }
    backup, exported = tmp_path / "backup", tmp_path / "kept" / "ledger.pub"
    exported.parent.mkdir()
    with scratch_database("limit_backup") as source, scratch_database("limit_restore") as fresh:
        first = _platform(tmp_path / "first", _libpq(source), shared)
        try:
            session = str(_ok(first, "session", "create", "--tag", "before-backup")["id"])
            for n in range(5):
                _ok(first, "exec", session, "echo", "--inputs", json.dumps({"n": n}))
            done = first.limit("audit", "key", "--output", str(exported))  # at installation
            assert done.returncode == 0, done.stderr
            size = _checkpointed(first)
            said = _follow(
                "backup",
                {**first.env, "BACKUP_DIR": str(backup), "LEDGER_PUBLIC_KEY": str(exported)},
                first.cwd,
            )
        finally:
            first.stop()
        assert said.strip().startswith(f"the ledger verifies: {size:,} entries")
        assert sorted(p.name for p in backup.iterdir()) == [
            "latest.note",
            "ledger.pub",
            "limit-graph.dump",
        ]

        restored_folder = tmp_path / "restored"
        restored_folder.mkdir()
        env = clean_env(
            **shared,
            DATABASE_URL=_libpq(fresh),
            LIMIT_HOME=str(restored_folder / "state"),
            BACKUP_DIR=str(backup),
        )
        said = _follow("restore", env, restored_folder)
        lines = said.strip().splitlines()
        assert lines[0].split(":")[0].endswith("(head)")
        assert lines[-1].startswith("the ledger verifies: ")
        assert "signatures checked against the given key" in lines[-1]

        restored = _platform(restored_folder, _libpq(fresh), shared)
        try:
            again = _ok(restored, "session", "show", session)
            assert again["id"] == session and again["config"]["tags"] == ["before-backup"]
            results = _ok(restored, "session", "results", session, "--json")
            assert len(results["items"]) == 5
            _ok(restored, "exec", session, "echo", "--inputs", '{"n": "after"}')
            later = _checkpointed(restored)
            assert later > size
        finally:
            restored.stop()
        verified = restored.limit(
            "audit",
            "verify",
            "--public-key",
            str(exported),
            "--checkpoint",
            str(backup / "latest.note"),
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.startswith(f"the ledger verifies: {later:,} entries")
