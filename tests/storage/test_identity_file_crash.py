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
from limit_graph.storage.ledger import EntryDraft, verify_entries
from tests.fixtures.file_crash import CRASHED, crashing_script
from tests.fixtures.records import T0

# Deletes principal ``argv[3]`` in the store at ``argv[1]``, dying at ``argv[2]``.
CRASHING_DELETE = crashing_script(
    """
import uuid
from datetime import datetime
from limit_graph.storage.ledger import EntryDraft

async def main():
    principal_id = uuid.UUID(argv[0])
    store = file.FileStorage(root)
    await store.start()
    entry = EntryDraft("admin", "principal.deleted", "principal", str(principal_id), None, {})
    at = datetime.fromisoformat("2026-03-01T13:00:00+00:00")
    await store.identity.delete_principal(principal_id, at=at, entry=entry)
""",
    write_at=3,
    replace_at=3,
)


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
        [sys.executable, "-c", CRASHING_DELETE, str(root), point, str(alice.id)],
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
        assert verify_entries(entries) is None
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
