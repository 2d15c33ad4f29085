"""Checkpoints (c2sp.org/tlog-checkpoint): a log's origin, tree size and root hash, as note text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from limit_graph.core.notes.text import (
    _SIZE,
    MAX_TREE_SIZE,
    ROOT_HASH_SIZE,
    NoteError,
    _b64,
    _b64decode,
    _check_chars,
    _short,
)


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint: the log's origin, tree size, RFC 6962 root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for what, line in [("the origin", self.origin)] + [
            ("an extension line", ext) for ext in self.extensions
        ]:
            if not isinstance(line, str) or not line:
                raise NoteError(f"{what} is empty")
            if "\n" in line:
                raise NoteError(f"{what} holds a newline")
            _check_chars(line, what)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError(f"the tree size is an int, not {self.size!r}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"the tree size is from 0 to 2**64 - 1, not {self.size}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != ROOT_HASH_SIZE:
            raise NoteError(f"the root hash is {ROOT_HASH_SIZE} bytes (RFC 6962 SHA-256)")

    def text(self) -> str:
        """The note text: origin, decimal size, base64 root, extensions, each with "\\n"."""
        lines = [self.origin, str(self.size), _b64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Read a checkpoint from a note's text (see :func:`open_note`), strictly."""
    if not isinstance(text, str):
        raise NoteError(f"a checkpoint is a str, not {type(text).__name__}")
    if not text.endswith("\n"):
        raise NoteError("the checkpoint does not end in a newline")
    _check_chars(text, "the checkpoint")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(
            f"a checkpoint has at least 3 lines (origin, tree size, root hash), not {len(lines)}"
        )
    origin, size, root, *extensions = lines
    if not origin:
        raise NoteError("line 1: the origin is empty")
    if not _SIZE.fullmatch(size):
        if size.startswith("-"):
            problem = "is negative"
        elif re.fullmatch("[0-9]+", size):
            problem = "has a leading zero"
        else:
            problem = "is not a decimal number"
        raise NoteError(f"line 2: the tree size {_short(size)} {problem}")
    if len(size) > 20 or int(size) > MAX_TREE_SIZE:
        raise NoteError(f"line 2: the tree size {_short(size)} does not fit in 64 bits")
    root_hash = _b64decode(root, "line 3: the root hash")
    if len(root_hash) != ROOT_HASH_SIZE:
        raise NoteError(f"line 3: the root hash is {len(root_hash)} bytes, not {ROOT_HASH_SIZE}")
    for number, extension in enumerate(extensions, start=4):
        if not extension:
            raise NoteError(
                f"line {number} is empty: extension lines are not (a whole signed note? "
                "pass its text)"
            )
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))
