"""Signed notes as text (c2sp.org/signed-note): the strict parser and formatter, signature
lines, key ids, and the limits every other part checks against."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

ED25519 = 0x01
"""Signature type of Ed25519 note signatures (c2sp.org/signed-note)."""
COSIGNATURE_V1 = 0x04
"""Signature type of timestamped Ed25519 checkpoint cosignatures (c2sp.org/tlog-cosignature)."""
MAX_SIGNATURES = 100
"""The most signature lines a note may carry here (the spec: at least 16 must be read)."""
MAX_TREE_SIZE = 2**64 - 1
MAX_TIMESTAMP = 2**63 - 1
ROOT_HASH_SIZE = 32
KEY_ID_SIZE = 4
PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
COSIGNATURE_SIZE = 8 + ED25519_SIGNATURE_SIZE

_TYPE_NAMES = {
    0x01: "Ed25519 note signatures",
    0x02: "ECDSA note signatures",
    0x04: "Ed25519 cosignature/v1",
    0x05: "RFC 6962 tree head signatures",
    0x06: "ML-DSA-44 cosignatures",
}
_WHITE_SPACE = frozenset(
    [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)]
    + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile("[0-9a-f]{8}")
_SIZE = re.compile("0|[1-9][0-9]*")
_DASH = "— "


class NoteError(ValueError):
    """A note, checkpoint, key or signature is malformed or does not verify."""

    __module__ = "limit_graph.core.notes"  # where users import it from


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _check_chars(text: str, what: str) -> None:
    """Refuse what no note may hold: control characters but newline, and lone surrogates."""
    bad = _CONTROL.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise NoteError(
            f"{what} holds the control character U+{ord(bad.group()):04X} on line {line}: "
            "a note may hold none but newline"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8: a lone surrogate at {exc.start}") from None


def _check_name(name: str, what: str = "a key name") -> None:
    if not isinstance(name, str) or not name:
        raise NoteError(f"{what} is empty")
    _check_chars(name, what)
    for char in name:
        if ord(char) in _WHITE_SPACE:
            raise NoteError(f"{what} {_short(name)} holds a space (U+{ord(char):04X})")
        if char == "+":
            raise NoteError(f"{what} {_short(name)} holds a plus sign")


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise NoteError(f"a note text is a str, not {type(text).__name__}")
    if not text.endswith("\n"):
        raise NoteError("the note text does not end in a newline")
    _check_chars(text, "the note text")


def _b64decode(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise NoteError(f"{what} is not base64: {_short(value)}") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise NoteError(f"{what} is not canonical base64: {_short(value)}")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || alg || public key)[:4] (signed-note)."""
    _check_name(name)
    if not isinstance(alg, int) or not 0 <= alg <= 0xFF:
        raise NoteError(f"a signature type is one byte, not {alg!r}")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + bytes(public_key))
    return digest.digest()[:KEY_ID_SIZE]


@dataclass(frozen=True)
class Signature:
    """One signature line: its key name, the 4-byte key id, and the bytes after the id."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.key_id, bytes) or len(self.key_id) != KEY_ID_SIZE:
            raise NoteError(f"a key id is {KEY_ID_SIZE} bytes, not {self.key_id!r}")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise NoteError("a signature has at least one byte after its key id")

    @property
    def key(self) -> str:
        """``<name>+<hex key id>``: how messages name the key."""
        return f"{self.name}+{self.key_id.hex()}"

    def encoded(self) -> str:
        """The base64 of key id || signature, as on the signature line."""
        return _b64(self.key_id + self.signature)

    def line(self) -> str:
        """The signature line, without its newline."""
        return f"{_DASH}{self.name} {self.encoded()}"


def parse_signature_line(line: str) -> Signature:
    """One ``— <name> <base64>`` line (no newline) as a :class:`Signature`."""
    if not line.startswith(_DASH):
        raise NoteError(
            f"{_short(line)} is not a signature line: it does not start with an em dash "
            "(U+2014) and a space"
        )
    name, space, encoded = line[len(_DASH) :].partition(" ")
    if not space:
        raise NoteError(f"{_short(line)} is not a signature line: '— <key name> <base64>'")
    _check_name(name)
    raw = _b64decode(encoded, f"the signature by {_short(name)}")
    if len(raw) <= KEY_ID_SIZE:
        raise NoteError(
            f"the signature by {_short(name)} is {len(raw)} bytes: a 4-byte key id and more"
        )
    return Signature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


@dataclass(frozen=True)
class Note:
    """A note text (ending in a newline) and its signatures, one to :data:`MAX_SIGNATURES`."""

    text: str
    signatures: tuple[Signature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text)
        object.__setattr__(self, "signatures", tuple(self.signatures))
        if not 1 <= len(self.signatures) <= MAX_SIGNATURES:
            raise NoteError(
                f"a note has 1 to {MAX_SIGNATURES} signatures, not {len(self.signatures)}"
            )
        if not all(isinstance(sig, Signature) for sig in self.signatures):
            raise NoteError("a note's signatures are Signature objects")


def parse_note(data: str | bytes) -> Note:
    """Read a signed note without trusting it: its text and every signature line.

    The text ends at the note's last blank line (texts may hold blank lines of their own).
    """
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"the note is not valid UTF-8 (byte {exc.start})") from None
    if not isinstance(data, str):
        raise NoteError(f"a note is text or bytes, not {type(data).__name__}")
    _check_chars(data, "the note")
    if not data.endswith("\n"):
        raise NoteError("the note does not end in a newline")
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line between its text and its signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block:
        raise NoteError("the note has no signature lines after its blank line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(
            f"the note has {len(lines)} signature lines: at most {MAX_SIGNATURES} are read"
        )
    first = text.count("\n") + 2
    signatures = []
    for number, line in enumerate(lines, start=first):
        try:
            signatures.append(parse_signature_line(line))
        except NoteError as exc:
            raise NoteError(f"line {number}: {exc}") from None
    return Note(text, tuple(signatures))


def format_note(note: Note) -> str:
    """The note as text: its text, a blank line, one line per signature."""
    return note.text + "\n" + "".join(sig.line() + "\n" for sig in note.signatures)
