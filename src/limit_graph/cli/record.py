"""Where the running ``limit up`` serves, so that the CLI finds it from any folder.

``limit up`` writes its REST address and its state folder (absolute) to
``$XDG_STATE_HOME/limit-graph/up.json`` (``~/.local/state`` when unset) as it starts and
removes the file as it stops.  The CLI reads it, if the process that wrote it is still
alive, and calls that server with the admin key of its state folder, unless it is told
a home (``LIMIT_HOME``, ``home`` in the file) or another server's address.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["UpRecord", "read_record", "record_path", "remove_record", "write_record"]


@dataclass(frozen=True)
class UpRecord:
    url: str
    home: Path
    pid: int
    certfile: Path | None = None


def record_path(environ: Mapping[str, str] | None = None) -> Path:
    """The record's file: under ``XDG_STATE_HOME``, else ``~/.local/state``.

    >>> record_path({"XDG_STATE_HOME": "/srv/state"}).as_posix()
    '/srv/state/limit-graph/up.json'
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "limit-graph" / "up.json"


def write_record(
    url: str,
    home: Path,
    certfile: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """Record this process as the running ``limit up``; ``None`` if the folder is not
    writable (the CLI then needs the address and key told to it, as before)."""
    path = record_path(environ)
    document = {
        "url": url,
        "home": str(home.resolve()),
        "pid": os.getpid(),
        "certfile": str(certfile.resolve()) if certfile else None,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(document), encoding="utf-8")
        partial.replace(path)
    except OSError:
        return None
    return path


def remove_record(environ: Mapping[str, str] | None = None) -> None:
    """Remove the record if this process wrote it (another ``limit up`` may have since)."""
    record = read_record(environ, live_only=False)
    if record is not None and record.pid == os.getpid():
        with contextlib.suppress(OSError):
            record_path(environ).unlink()


def read_record(
    environ: Mapping[str, str] | None = None, *, live_only: bool = True
) -> UpRecord | None:
    """The recorded ``limit up``, or ``None`` when there is none, it cannot be read, or
    (``live_only``) its process has exited."""
    try:
        document = json.loads(record_path(environ).read_text(encoding="utf-8"))
        certfile = document.get("certfile")
        record = UpRecord(
            str(document["url"]),
            Path(document["home"]),
            int(document["pid"]),
            Path(certfile) if certfile else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if live_only and not _alive(record.pid):
        return None
    return record


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
