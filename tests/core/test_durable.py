"""Durable appends (``core.durable.append_durably``): each record whole after the last,
a new file made with the mode asked for, an existing one's mode and bytes kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from limit_graph.core.durable import append_durably


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
