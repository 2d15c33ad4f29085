"""Durable appends (``core.durable.append_durably``): each record whole after the last,
a new file made with the mode asked for, an existing one's mode and bytes kept; and on a
disk too full for a write, the old file as it was (``tests/fixtures/small_disk.py``)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from limit_graph.core.durable import append_durably, replace_durably
from tests.fixtures.small_disk import fill, small_disk

__all__ = ["small_disk"]


def test_appends_follow_each_other_and_a_new_file_gets_its_mode(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    append_durably(log, b'{"n": 1}\n', 0o600)
    append_durably(log, b'{"n": 2}\n' * 3, 0o644)  # the file exists: its mode stays
    assert log.read_bytes() == b'{"n": 1}\n' + b'{"n": 2}\n' * 3
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_an_append_to_a_missing_folder_fails_and_makes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        append_durably(tmp_path / "gone" / "events.jsonl", b"x\n")
    assert list(tmp_path.iterdir()) == []


def test_an_append_a_full_disk_cuts_short_leaves_no_torn_record(small_disk: Path) -> None:
    log = small_disk / "batches.log"
    append_durably(log, b"first\n")
    filler = fill(small_disk, leave=4096)  # room for part of the next record only
    with pytest.raises(OSError) as failed:
        append_durably(log, b"x" * 65536 + b"\n")
    assert failed.value.errno == errno.ENOSPC
    assert log.read_bytes() == b"first\n"  # not followed by the part that fitted
    filler.unlink()
    append_durably(log, b"second\n")
    assert log.read_bytes() == b"first\nsecond\n"


def test_a_replace_a_full_disk_refuses_keeps_the_old_file(small_disk: Path) -> None:
    target = small_disk / "head.json"
    replace_durably(target, b'{"size": 1}')
    filler = fill(small_disk)
    with pytest.raises(OSError) as failed:
        replace_durably(target, b'{"size": 2}' * 1000)
    assert failed.value.errno == errno.ENOSPC
    assert target.read_bytes() == b'{"size": 1}'
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "head.json"]
    filler.unlink()
    replace_durably(target, b'{"size": 2}')
    assert target.read_bytes() == b'{"size": 2}'
