"""FileStorage crash safety: a crash at any point leaves the whole transaction or none of it.

Crashes are real: a child process commits through the real code and dies with
``os._exit`` at the chosen point (no ``except`` or ``finally`` runs).  Failed renames
are injected into ``os.replace`` in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from limit_graph.core.errors import Conflict
from limit_graph.core.models import Execution, Session
from limit_graph.storage.file import JOURNAL, FileStorage
from limit_graph.storage.ledger import verify_entries
from tests.fixtures.file_crash import CRASHED, crashing_script
from tests.fixtures.records import make_execution, make_session

# Commits ``argv[3]`` (a session) to the store at ``argv[1]``, dying at ``argv[2]``.
CRASHING_COMMIT = crashing_script(
    """
from limit_graph.core.models import Session

async def main():
    store = file.FileStorage(root)
    await store.start()
    async with store.transaction() as tx:
        session = Session.model_validate_json(argv[0])
        await tx.save_session(session, actor="alice", action="session.created")
""",
    write_at=2,
    replace_at=2,
)


def leftovers(root: Path) -> list[Path]:
    return sorted([*root.rglob("*.tmp"), *root.glob(JOURNAL)])


async def open_store(root: Path) -> FileStorage:
    store = FileStorage(root)
    await store.start()
    return store


async def seed(root: Path) -> Session:
    store = await open_store(root)
    session = make_session()
    async with store.transaction() as tx:
        await tx.save_session(session, actor="alice", action="session.created")
    await store.close()
    return session


@pytest.mark.parametrize(
    ("point", "survives"),
    [("writing-temporaries", False), ("before-journal", False), ("after-journal", True)],
)
async def test_a_crashed_commit_is_all_or_nothing(
    tmp_path: Path, point: str, survives: bool
) -> None:
    root = tmp_path / "store"
    kept = await seed(root)
    session = make_session()

    child = subprocess.run(
        [sys.executable, "-c", CRASHING_COMMIT, str(root), point, session.model_dump_json()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == CRASHED, child.stderr
    assert any(p.suffix == ".tmp" for p in leftovers(root))
    assert (root / JOURNAL).exists() is survives

    store = await open_store(root)
    try:
        assert leftovers(root) == []
        assert await store.get_session(kept.id) == kept
        entries = await store.list_entries()
        if survives:
            assert await store.get_session(session.id) == session
            assert [e.resource_id for e in entries] == [str(kept.id), str(session.id)]
        else:
            assert await store.get_session(session.id) is None
            assert await store.ledger_size() == 1

        later = make_session()
        async with store.transaction() as tx:
            await tx.save_session(later, actor="alice", action="session.created")
        after = await store.list_entries()
        assert after[:-1] == entries
        assert verify_entries(after) is None
    finally:
        await store.close()

    reopened = await open_store(root)
    try:
        assert await reopened.get_session(later.id) == later
        assert (await reopened.get_session(session.id) is not None) is survives
    finally:
        await reopened.close()


def fail_replace_on_call(monkeypatch: pytest.MonkeyPatch, failing_call: int) -> None:
    """Make the ``failing_call``-th ``os.replace`` from now on raise, as a full disk might."""
    replace = os.replace
    calls = 0

    def flaky_replace(source: os.PathLike[str] | str, target: os.PathLike[str] | str) -> None:
        nonlocal calls
        calls += 1
        if calls == failing_call:
            raise OSError(5, "injected I/O error")
        replace(source, target)

    monkeypatch.setattr("limit_graph.storage.file.os.replace", flaky_replace)


# A commit of five files renames the journal into place first (call 1), then each file.
@pytest.mark.parametrize("failing_call", [2, 4, 6], ids=["no-rename", "some-renamed", "last"])
async def test_a_journal_left_by_failed_renames_is_rolled_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: int
) -> None:
    root = tmp_path / "store"
    store = await open_store(root)
    session = make_session()
    execution = make_execution(session)
    stored: Execution | None = None
    fail_replace_on_call(monkeypatch, failing_call)
    try:
        with pytest.raises(OSError, match="injected"):
            async with store.transaction() as tx:
                await tx.save_session(session, actor="alice", action="session.created")
                stored = await tx.save_execution(execution, actor="alice", action="run")
                await tx.save_archive(session.id, {"bundle": 1})
    finally:
        monkeypatch.undo()
        await store.close()
    assert (root / JOURNAL).exists()
    assert any(p.suffix == ".tmp" for p in leftovers(root))

    recovered = await open_store(root)
    try:
        assert leftovers(root) == []
        assert await recovered.get_session(session.id) == session
        assert await recovered.get_execution(execution.id) == stored
        assert await recovered.get_archive(session.id) == {"bundle": 1}
        entries = await recovered.list_entries()
        assert [e.index for e in entries] == [0, 1]
        assert verify_entries(entries) is None
    finally:
        await recovered.close()


async def test_a_store_whose_commit_failed_after_its_journal_refuses_more_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed commit is decided but not applied: writing on would reuse its ledger index."""
    root = tmp_path / "store"
    store = await open_store(root)
    first, second = make_session(), make_session()
    fail_replace_on_call(monkeypatch, 3)
    try:
        with pytest.raises(OSError, match="injected"):
            async with store.transaction() as tx:
                await tx.save_session(first, actor="alice", action="session.created")
        monkeypatch.undo()
        with pytest.raises(OSError, match="restart"):
            async with store.transaction() as tx:
                await tx.save_session(second, actor="alice", action="session.created")
        with pytest.raises(OSError, match="restart"):
            await store.ping()
    finally:
        await store.close()

    recovered = await open_store(root)
    try:
        assert await recovered.get_session(first.id) == first
        assert await recovered.get_session(second.id) is None
        assert verify_entries(await recovered.list_entries()) is None
        assert await recovered.ledger_size() == 1
    finally:
        await recovered.close()


async def test_a_second_store_on_an_open_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first = await open_store(root)
    try:
        session = make_session()
        async with first.transaction() as tx:
            await tx.save_session(session, actor="alice", action="session.created")
        with pytest.raises(Conflict, match="in use"):
            await open_store(root)
        async with first.transaction() as tx:
            await tx.save_session(make_session(), actor="alice", action="session.created")
        assert await first.ledger_size() == 2
    finally:
        await first.close()

    second = await open_store(root)
    try:
        assert await second.get_session(session.id) == session
        assert await second.ledger_size() == 2
    finally:
        await second.close()


async def test_torn_temporary_files_are_removed_on_start(tmp_path: Path) -> None:
    root = tmp_path / "store"
    kept = await seed(root)
    (root / "sessions" / f"{uuid.uuid4()}.json.tmp").write_text("{half a record")
    (root / "ledger" / "000000000001.json.tmp").write_text("{")
    store = await open_store(root)
    try:
        assert leftovers(root) == []
        assert await store.get_session(kept.id) == kept
        assert await store.ledger_size() == 1
    finally:
        await store.close()
