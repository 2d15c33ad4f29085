"""The file store on a disk too full for a write: :class:`StorageFull`, nothing changed.

The disk is a real 2 MiB tmpfs (``tests/fixtures/small_disk.py``), filled by a filler
file: the commit, the lineage append and the key-value write each fail with the 507 of
the error tree, leave no temporary, torn record or half-applied state behind, and
succeed once the filler is gone; the store then reopens with everything it held.
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

import pytest

from limit_graph.core.errors import StorageFull
from limit_graph.storage.file import FileStorage
from limit_graph.storage.file_lineage import LOG_NAME, FileLineageStore
from limit_graph.storage.ledger import verify_entries
from limit_graph.storage.lineage import LineageBatch, LineageNode
from tests.fixtures.records import commit_session, make_execution, make_session
from tests.fixtures.small_disk import fill, small_disk

__all__ = ["small_disk"]


def leftovers(root: Path) -> list[Path]:
    return sorted([*root.rglob("*.tmp"), *root.glob("journal.json")])


async def test_a_commit_the_disk_cannot_hold_is_storage_full_and_changes_nothing(
    small_disk: Path,
) -> None:
    root = small_disk / "store"
    store = FileStorage(root)
    await store.start()
    kept = await commit_session(store, make_session())
    session = make_session()
    filler = fill(small_disk, leave=8192)  # room for some of the commit's files, not all
    try:
        with pytest.raises(StorageFull) as refused:
            async with store.transaction() as tx:
                await tx.save_session(session, actor="alice", action="session.created")
                await tx.save_execution(
                    make_execution(session, inputs={"text": "x" * 20_000}),
                    actor="alice",
                    action="execution.succeeded",
                )
        assert refused.value.status_code == 507
        cause = refused.value.__cause__
        assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
        assert "nothing of this request was written" in refused.value.detail
        assert await store.get_session(session.id) is None
        assert await store.ledger_size() == 1
        assert leftovers(root) == []
        with pytest.raises(StorageFull):
            await store.put_value("cache", "k", {"v": "x" * 10_000})
        assert await store.get_value("cache", "k") is None
    finally:
        filler.unlink()
    later = await commit_session(store, make_session())
    await store.close()

    reopened = FileStorage(root)
    await reopened.start()
    try:
        assert await reopened.get_session(kept.id) == kept
        assert await reopened.get_session(later.id) == later
        assert await reopened.get_session(session.id) is None
        entries = await reopened.list_entries()
        assert [e.resource_id for e in entries] == [str(kept.id), str(later.id)]
        assert verify_entries(entries) is None
    finally:
        await reopened.close()


def batch(index: int, label: str = "") -> LineageBatch:
    node = LineageNode(uuid.uuid4(), f"n{index}", "execution", "ab" * 32, "acme", label, {}, index)
    return LineageBatch([node], [], index, "graph")


async def test_a_lineage_append_the_disk_cannot_hold_leaves_the_log_whole(
    small_disk: Path,
) -> None:
    folder = small_disk / "lineage"
    lineage = FileLineageStore(folder)
    await lineage.apply(batch(0))
    before = (folder / LOG_NAME).read_bytes()
    filler = fill(small_disk, leave=4096)  # room for part of the batch: a torn line
    try:
        with pytest.raises(StorageFull):
            await lineage.apply(batch(1, "x" * 100_000))
        assert (folder / LOG_NAME).read_bytes() == before
        assert await lineage.cursor() == 0
    finally:
        filler.unlink()
    await lineage.apply(batch(2))
    await lineage.apply(batch(3))

    reread = FileLineageStore(folder)  # a log with a torn line inside would not load
    assert await reread.cursor() == 3
