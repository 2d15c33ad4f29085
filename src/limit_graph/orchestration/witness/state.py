"""The witness's state folder: its own key, the log it trusts, the last checkpoint it
cosigned, and the evidence of what it refused.

::

    <state>/
      witness.key       its cosigner key, mode 0600: PRIVATE+KEY+<name>+<key id>+<base64>
      log.json          the log it trusts, pinned on the first run: {"origin", "verifier_key"}
      checkpoint.note   the last checkpoint it cosigned: the log's signature and its own
      evidence/         one JSON file per refused checkpoint (see :mod:`.cosigning`)
      lock              held (``flock``) by the witness that runs, so two never share it

Every file is written whole or not at all: a temporary file in the same folder, fsync,
rename (or link, for a file that must not exist yet), fsync of the folder.  What is read
back is checked: a key file others may read, or a checkpoint whose signatures do not
verify, stops the witness with a :class:`StateError` naming the file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limit_graph.core import notes
from limit_graph.core.durable import create_durably, replace_durably

__all__ = [
    "CHECKPOINT_FILE",
    "DEFAULT_NAME",
    "EVIDENCE_DIR",
    "KEY_FILE",
    "LOG_FILE",
    "Cosigned",
    "StateError",
    "StateLock",
    "TrustedLog",
    "WitnessError",
    "load_or_make_key",
    "open_cosigned",
    "pin_log",
    "read_checkpoint",
    "read_key",
    "read_log",
    "write_atomic",
    "write_new",
]

KEY_FILE = "witness.key"
LOG_FILE = "log.json"
CHECKPOINT_FILE = "checkpoint.note"
EVIDENCE_DIR = "evidence"
LOCK_FILE = "lock"
DEFAULT_NAME = "witness.limit-graph.local"
"""The key name of a witness made without ``--name`` (C2SP: a schema-less URL)."""
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class WitnessError(Exception):
    """Root of what the witness raises on purpose."""


class StateError(WitnessError):
    """The state folder cannot be used as it is: unreadable, damaged, or at odds with
    what the witness was told (another key name, another log key)."""


def write_atomic(path: Path, data: str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` whole: a reader sees the old text or the new."""
    replace_durably(path, data.encode("utf-8"), mode=mode)


def write_new(path: Path, data: str, mode: int = 0o600) -> None:
    """Write ``data`` whole to ``path``, which must not exist (:class:`FileExistsError`)."""
    create_durably(path, data.encode("utf-8"), mode=mode)


def ensure_folder(folder: Path) -> Path:
    """The state folder, made (mode 0700) if it is not there yet."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StateError(f"the witness state {folder} is not a folder") from None
    except OSError as exc:
        raise StateError(f"cannot make the witness state folder {folder}: {exc}") from None
    return folder


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None


def _encode_key(cosigner: notes.Cosigner) -> str:
    raw = bytes([notes.COSIGNATURE_V1]) + cosigner.private_bytes()
    encoded = base64.b64encode(raw).decode("ascii")
    return f"{_PRIVATE_PREFIX}{cosigner.name}+{cosigner.key_id.hex()}+{encoded}\n"


def read_key(path: Path) -> notes.Cosigner:
    """The cosigner key kept in ``path``; refused if others may read the file."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise StateError(f"cannot read the witness key {path}: {exc}") from None
    if mode & 0o077:
        raise StateError(
            f"the witness key {path} may be read by others (mode {mode:04o}): "
            f"`chmod 600 {path.name}` it, and make a new key if others did read it"
        )
    text = (_read(path) or "").strip()
    parts = text[len(_PRIVATE_PREFIX) :].split("+", 2) if text.startswith(_PRIVATE_PREFIX) else []
    damaged = f"the witness key {path} is damaged"
    if len(parts) != 3:
        raise StateError(f"{damaged}: not PRIVATE+KEY+<name>+<key id>+<base64 key>")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise StateError(f"{damaged}: its key is not base64") from None
    if len(raw) != 33 or raw[0] != notes.COSIGNATURE_V1:
        raise StateError(f"{damaged}: not a cosignature/v1 (0x04) Ed25519 key")
    try:
        cosigner = notes.Cosigner.from_private_bytes(name, raw[1:])
    except notes.NoteError as exc:
        raise StateError(f"{damaged}: {exc}") from None
    if cosigner.key_id.hex() != hex_id:
        raise StateError(f"{damaged}: its key id {hex_id} is not its key's")
    return cosigner


def load_or_make_key(folder: Path, name: str | None) -> tuple[notes.Cosigner, bool]:
    """The witness's key, and whether it was made now (named ``name``, or
    :data:`DEFAULT_NAME`); a key already there must carry ``name`` when one is given."""
    path = folder / KEY_FILE
    made = False
    if not path.exists():
        try:
            cosigner = notes.Cosigner.generate(name or DEFAULT_NAME)
        except notes.NoteError as exc:
            raise StateError(f"{name!r} cannot name a witness key: {exc}") from None
        ensure_folder(folder)
        try:
            write_new(path, _encode_key(cosigner))
            made = True
        except FileExistsError:  # another process made one first: that one is the key
            pass
        except OSError as exc:
            raise StateError(f"cannot write the witness key {path}: {exc}") from None
    cosigner = read_key(path)
    if name is not None and name != cosigner.name:
        raise StateError(
            f"the witness key in {folder} is named {cosigner.name!r}, not {name!r}: a "
            "witness keeps its name (a new name is a new witness, in a new state folder)"
        )
    return cosigner, made


@dataclass(frozen=True)
class TrustedLog:
    """The log a witness checks: its origin line and the key its checkpoints are signed by."""

    origin: str
    verifier: notes.Verifier

    @classmethod
    def of(cls, verifier_key: str, origin: str | None = None) -> TrustedLog:
        """The log whose verifier key is ``verifier_key`` (origin: the key's name)."""
        try:
            verifier = notes.Verifier.from_verifier_key(verifier_key.strip())
        except notes.NoteError as exc:
            raise StateError(f"the log key is not a log's verifier key: {exc}") from None
        return cls(origin or verifier.name, verifier)

    @property
    def verifier_key(self) -> str:
        return self.verifier.verifier_key()


def read_log(folder: Path) -> TrustedLog | None:
    """The log the state folder trusts (``None``: none pinned yet)."""
    path = folder / LOG_FILE
    text = _read(path)
    if text is None:
        return None
    try:
        document: Any = json.loads(text)
        return TrustedLog.of(str(document["verifier_key"]), str(document["origin"]))
    except (ValueError, KeyError, TypeError, StateError) as exc:
        raise StateError(f"{path} is damaged: {exc}") from None


def pin_log(folder: Path, given: TrustedLog | None) -> TrustedLog:
    """The log this state trusts: pinned from ``given`` on the first run; after that a
    different one is refused."""
    path = folder / LOG_FILE
    stored = read_log(folder)
    if stored is None:
        if given is None:
            raise StateError(
                f"the witness state {folder} trusts no log yet: give the log's verifier key "
                "(as GET /audit/checkpoint shows it in public_key) the first time"
            )
        document = {"origin": given.origin, "verifier_key": given.verifier_key}
        ensure_folder(folder)
        try:
            write_new(path, json.dumps(document, indent=2) + "\n", 0o644)
        except FileExistsError:
            return pin_log(folder, given)
        except OSError as exc:
            raise StateError(f"cannot write {path}: {exc}") from None
        return given
    if given is not None and given != stored:
        raise StateError(
            f"this witness trusts the log {stored.origin} signed by {stored.verifier_key} "
            f"(pinned in {path}), not {given.origin} signed by {given.verifier_key}: a witness "
            "does not change the log it checks (use a new state folder for another)"
        )
    return stored


@dataclass(frozen=True)
class Cosigned:
    """A checkpoint this witness cosigned: the note as kept, and what it says."""

    note: str
    checkpoint: notes.Checkpoint
    timestamp: int
    """When the witness cosigned it (POSIX seconds)."""


def open_cosigned(text: str, log: TrustedLog, witness: notes.CosignatureVerifier) -> Cosigned:
    """Check a kept note: the log's signature, its origin, this witness's cosignature."""
    note = notes.open_note(text, [log.verifier])
    checkpoint = notes.parse_checkpoint(note.text)
    if checkpoint.origin != log.origin:
        raise notes.NoteError(f"its origin is {checkpoint.origin!r}, not {log.origin!r}")
    stamps = notes.verify_cosignatures(note, [witness])
    if witness not in stamps:
        raise notes.NoteError(f"it carries no cosignature by {witness.verifier_key()}")
    return Cosigned(text, checkpoint, stamps[witness])


def read_checkpoint(
    folder: Path, log: TrustedLog, witness: notes.CosignatureVerifier
) -> Cosigned | None:
    """The last checkpoint cosigned (``None``: none yet), refused unless it verifies."""
    path = folder / CHECKPOINT_FILE
    text = _read(path)
    if text is None:
        return None
    try:
        return open_cosigned(text, log, witness)
    except notes.NoteError as exc:
        raise StateError(
            f"{path} is damaged: {exc}. It is the witness's memory of the log: restore it "
            "from a copy, or move it away and start again from a pinned checkpoint "
            "(--expect-size and --expect-root)"
        ) from None


class StateLock:
    """The state folder's lock, held while a witness runs on it (``flock``, released by
    the kernel when the process ends)."""

    def __init__(self, folder: Path) -> None:
        self._path = ensure_folder(folder) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open {self._path}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(
                f"another witness is running on {self._path.parent} (it holds {self._path})"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
