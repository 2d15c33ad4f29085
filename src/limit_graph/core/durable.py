"""Files that survive a crash: written, flushed to the disk, then renamed into place.

A reader sees the old file or the new one, never a part of either: the bytes go to a
temporary beside the target (named for this process and write, so that concurrent
writers never share one), are fsynced, replace the target by ``os.replace`` (atomic on
POSIX) -- or, for a file that must not exist yet, are linked to it, which fails if it
does -- and the folder is fsynced so that the rename itself is on the disk.  A write
that fails (a full disk, say) leaves the target as it was and no temporary behind.
Logs grow instead (:func:`append_durably`): a record appended and fsynced, the folder too
when the append made the file; an append that fails is cut off again, so a full disk
never leaves part of a record for the next one to follow.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> replace_durably(folder / "head.note", b"size 3\\n")
>>> create_durably(folder / "head.note", b"size 4\\n")
Traceback (most recent call last):
...
FileExistsError: [Errno 17] File exists: ...
>>> (folder / "head.note").read_bytes(), sorted(p.name for p in folder.iterdir())
(b'size 3\\n', ['head.note'])
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

__all__ = [
    "TMP_SUFFIX",
    "append_durably",
    "create_durably",
    "fsync_dir",
    "replace_durably",
    "write_durably",
]

TMP_SUFFIX = ".tmp"
"""Every temporary ends so; a store may remove those it finds at start."""

_writes = itertools.count()


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename, a new file) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_durably(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Append ``data`` to ``path`` (made with ``mode`` less the umask if it is not there)
    and flush it, and a new file's entry in its folder, to the disk.

    All of ``data`` or none of it: a write that fails part-way (the disk filled up after
    some of it) is truncated back to where the file ended, so the next append does not
    follow a torn record.  One writer appends to a file at a time.
    """
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        end = os.fstat(fd).st_size
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):  # the append's own error is the one to see
                os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


def write_durably(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` (made with ``mode`` less the umask, or truncated) and
    flush it to the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(path: Path, data: bytes, mode: int) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_writes)}{TMP_SUFFIX}")
    try:
        write_durably(tmp, data, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def replace_durably(
    path: Path, data: bytes, *, mode: int = 0o666, make_parents: bool = False
) -> None:
    """Replace ``path`` by a file of ``data`` atomically and durably (module docstring)."""
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_durably(path: Path, data: bytes, *, mode: int = 0o666) -> None:
    """Make ``path`` a file of ``data``, whole, durably; :class:`FileExistsError` if it
    exists already (then nothing is changed)."""
    tmp = _temporary(path, data, mode)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
