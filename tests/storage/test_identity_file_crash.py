"""The file backend's identity writes survive a crash whole or not at all.

Deleting a principal rewrites several files at once (the principal, each of its keys,
the grants of its sessions, the epoch, a ledger entry).  A child process commits it
through the real code and dies with ``os._exit`` at the chosen point, as in
``test_file_crash.py``; the store reopened on the folder holds all of it or none.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from limit_graph.core.identity import (
    ApiKeyRecord,
    Grant,
    GrantPermission,
    PrincipalKind,
    PrincipalRecord,
    Role,
)
from limit_graph.storage.file import JOURNAL, FileStorage
from limit_graph.storage.ledger import EntryDraft, verify_chain
from tests.fixtures.records import T0

CRASHED = 17

# Deletes principal ``argv[2]`` in the store at ``argv[1]``, dying at ``argv[3]``.
CRASHING_DELETE = f"""
import asyncio, os, sys, uuid
from datetime import datetime
from pathlib import Path
from limit_graph.storage import file
from limit_graph.storage.ledger import EntryDraft

root, principal_id, point = Path(sys.argv[1]), uuid.UUID(sys.argv[2]), sys.argv[3]
write_durably, replace = file._write_durably, os.replace
calls = {{"write": 0, "replace": 0}}

def crashing_write(path, data):
    calls["write"] += 1
    if (point == "writing-temporaries" and calls["write"] == 3) or (
        point == "before-journal" and path.name == "journal.tmp"
    ):
        os._exit({CRASHED})
    write_durably(path, data)

def crashing_replace(source, target):
    calls["replace"] += 1
    if point == "after-journal" and calls["replace"] == 3:
        os._exit({CRASHED})
    replace(source, target)

file._write_durably = crashing_write
os.replace = crashing_replace

async def main():
    store = file.FileStorage(root)
    await store.start()
    entry = EntryDraft("admin", "principal.deleted", "principal", str(principal_id), None, {{}})
    at = datetime.fromisoformat("2026-03-01T13:00:00+00:00")
    await store.identity.delete_principal(principal_id, at=at, entry=entry)

asyncio.run(main())
"""


def _entry(action: str) -> EntryDraft:
    return EntryDraft("admin", action, "identity", "-", None, {"action": action})


async def _seed(root: Path) -> tuple[PrincipalRecord, list[ApiKeyRecord], Grant]:
    store = FileStorage(root)
    await store.start()
    try:
        alice = PrincipalRecord(
            id=uuid.uuid4(),
            name="alice",
            tenant="acme",
            kind=PrincipalKind.USER,
            roles=[Role.AUTHOR],
            created_at=T0,
        )
        await store.identity.create_principal(alice, entry=_entry("principal.created"))
        keys = [
            ApiKeyRecord(
                id=f"k{n}",
                principal_id=alice.id,
                tenant="acme",
                digest="e" * 64,
                created_at=T0,
            )
            for n in range(2)
        ]
        for key in keys:
            await store.identity.create_api_key(key, entry=_entry("key.created"))
        grant = Grant(
            id=uuid.uuid4(),
            session_id=uuid.uuid4(),
            tenant="acme",
            principal_id=alice.id,
            permission=GrantPermission.EXECUTE,
            created_by="admin",
            created_at=T0,
        )
        await store.identity.create_grant(grant, entry=_entry("grant.created"))
        return alice, keys, grant
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("point", "survives"),
    [("writing-temporaries", False), ("before-journal", False), ("after-journal", True)],
)
async def test_a_crashed_principal_deletion_is_all_or_nothing(
    tmp_path: Path, point: str, survives: bool
) -> None:
    root = tmp_path / "store"
    alice, keys, grant = await _seed(root)

    child = subprocess.run(
        [sys.executable, "-c", CRASHING_DELETE, str(root), str(alice.id), point],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == CRASHED, child.stderr
    assert (root / JOURNAL).exists() is survives

    store = FileStorage(root)
    await store.start()
    try:
        ids = store.identity
        assert sorted(p.name for p in root.rglob("*.tmp")) == []
        stored = await ids.get_principal(alice.id)
        assert stored is not None
        stored_keys = [await ids.get_api_key(k.id) for k in keys]
        entries = await store.list_entries()
        assert verify_chain(entries) is None
        if survives:
            assert stored.deleted_at is not None
            assert all(k is not None and k.revoked_at == stored.deleted_at for k in stored_keys)
            assert await ids.list_grants(grant.session_id) == []
            assert await ids.identity_epoch() == 5
            assert [e.action for e in entries][-1] == "principal.deleted"
        else:
            assert stored == alice
            assert stored_keys == keys
            assert await ids.list_grants(grant.session_id) == [grant]
            assert await ids.identity_epoch() == 4
            assert len(entries) == 4
    finally:
        await store.close()
