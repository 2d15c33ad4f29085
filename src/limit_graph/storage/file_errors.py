"""A full disk under the file store is :class:`~limit_graph.core.errors.StorageFull`.

The file store's writes are all or nothing (``storage/file.py``: temporaries, then a
journal, then renames; ``core/durable.py`` removes a temporary or a torn append that
failed), so a write the disk has no room for changes nothing.  What remains is to say
so: the ``OSError`` (``ENOSPC``, or ``EDQUOT`` for a quota) becomes the 507 of the error
tree, whose detail tells the caller that nothing was written and a retry may help once
space is freed; the folder, which is the operator's business and not the caller's, is
logged instead.  Every other ``OSError`` passes through unchanged.

>>> import errno
>>> with writes_under(Path("/srv/limit")):  # doctest: +ELLIPSIS
...     raise OSError(errno.ENOSPC, "No space left on device")
Traceback (most recent call last):
limit_graph.core.errors.StorageFull: the disk the store writes to is full: ...
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from limit_graph.core.errors import StorageFull

__all__ = ["DISK_FULL_ERRNOS", "writes_under"]

log = logging.getLogger(__name__)

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The errors of a write the disk (or the owner's quota on it) has no room for."""


@contextmanager
def writes_under(root: Path) -> Iterator[None]:
    """Writes to the store at ``root``: a full disk raises :class:`StorageFull`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        log.error("the disk under storage folder %s is full: %s", root, exc.strerror)
        raise StorageFull(
            "the disk the store writes to is full: nothing of this request was written; "
            "retry once an operator has freed space"
        ) from exc
