"""Files that survive a crash: written, flushed to the disk, then renamed into place.

A reader sees the old file or the new one, never a part of either: the bytes go to a
temporary beside the target, are fsynced, replace the target by ``os.replace`` (atomic
on POSIX), and the folder is fsynced so that the rename itself is on the disk.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> replace_durably(folder / "head.note", b"size 3\\n")
>>> (folder / "head.note").read_bytes(), sorted(p.name for p in folder.iterdir())
(b'size 3\\n', ['head.note'])
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TMP_SUFFIX", "fsync_dir", "replace_durably", "write_durably"]

TMP_SUFFIX = ".tmp"


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename, a new file) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (truncating it) and flush it to the disk."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def replace_durably(path: Path, data: bytes, *, make_parents: bool = False) -> None:
    """Replace ``path`` by a file of ``data`` atomically and durably (module docstring).
    If the write fails (a full disk, say), the target is as it was and the temporary is
    removed."""
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        write_durably(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
