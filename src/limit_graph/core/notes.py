"""Signed notes, checkpoints and cosignatures, exactly as the C2SP specifications say.

Three formats, written by hand because no well-kept Python library implements them (Go's
``golang.org/x/mod/sumdb/note`` is the reference the tests reproduce):

- a **signed note** (c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank
  line, then signature lines ``— <key name> <base64(4-byte key id || signature)>``.  An
  Ed25519 (type 0x01) signature is over the text's UTF-8 bytes, final newline included,
  separating blank line not.  A key is published as a *verifier key*,
  ``<name>+<8 hex key id>+<base64(type byte || 32-byte public key)>``;
- a **checkpoint** (c2sp.org/tlog-checkpoint): a note text of the log's origin, its tree
  size in decimal and its RFC 6962 root hash in base64, then optional extension lines;
- a **cosignature** (c2sp.org/tlog-cosignature, type 0x04, ``cosignature/v1``): a
  witness's note signature on a checkpoint, 8-byte big-endian timestamp || Ed25519
  signature over ``"cosignature/v1\\ntime <timestamp>\\n"`` + the checkpoint text.

Where the specifications leave a choice, this module takes the strict one, so that what
it accepts has a single spelling and anything else fails with a :class:`NoteError` that
says what and where (line numbers count from 1 over the whole note):

- base64 must be canonical (padding present, unused bits zero; RFC 4648 §3.5 lets a
  decoder refuse others), so a signature line cannot be re-spelt;
- at most :data:`MAX_SIGNATURES` (100, as Go's reader) signature lines; the spec asks
  readers to accept at least 16 and to set a limit;
- "Unicode spaces" in key names are the Unicode ``White_Space`` code points (Go's
  ``unicode.IsSpace``), listed here so the answer never depends on Python's tables;
  control characters are U+0000-U+001F but newline, as the spec says (so CR-LF is
  refused, DEL is allowed);
- a verifier key's id is eight lowercase hex digits (the spec's hex) and must be the
  key's own id; a key of another type is refused with that type's name: a type 0x01 key
  is not a cosigner's, use ``CosignatureVerifier(v.name, v.public_key)`` to say so;
- every signature line by a known (name, key id) is verified, repeated lines too (Go
  skips repeats), and one that fails rejects the whole note (the spec's SHOULD); lines
  by unknown keys are kept, in order, so :func:`format_note` gives back the same bytes;
- a tree size fits in 64 bits, a root hash is 32 bytes, a cosignature timestamp is at
  most 2**63 - 1; timestamps in the future are the caller's policy, not refused here;
- a cosigner cosigns only a well-formed checkpoint text.

>>> signer = Signer.from_private_bytes("example.com/log", bytes(32))
>>> body = Checkpoint("example.com/log", 1, bytes(32)).text()
>>> note = sign_note(body, signer)
>>> print(note[: note.rindex(" ")])
example.com/log
1
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
<BLANKLINE>
— example.com/log
>>> parse_checkpoint(open_note(note, [signer.verifier()]).text).size
1
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "COSIGNATURE_V1",
    "ED25519",
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "CosignatureVerifier",
    "Cosigner",
    "Note",
    "NoteError",
    "Signature",
    "Signer",
    "Verifier",
    "cosignature_timestamp",
    "format_note",
    "key_id",
    "open_note",
    "parse_checkpoint",
    "parse_note",
    "parse_signature_line",
    "sign_note",
    "verified_signatures",
    "verify_cosignatures",
]

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


@dataclass(frozen=True)
class _PublicKey:
    """A named Ed25519 public key of one signature type, and its key id."""

    ALG: ClassVar[int]
    name: str
    public_key: bytes
    key_id: bytes = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes) or len(self.public_key) != PUBLIC_KEY_SIZE:
            raise NoteError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes")
        object.__setattr__(self, "key_id", key_id(self.name, self.ALG, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    @classmethod
    def from_verifier_key(cls, vkey: str) -> Self:
        """Read ``<name>+<8 hex key id>+<base64(type || public key)>``; refuse any other."""
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3:
            raise NoteError(
                f"a verifier key is <name>+<key id>+<base64 key>, not {_short(str(vkey))}"
            )
        name, hex_id, encoded = parts
        _check_name(name, "the verifier key's name")
        if not _KEY_ID_HEX.fullmatch(hex_id):
            raise NoteError(f"the verifier key's id {_short(hex_id)} is not 8 lowercase hex digits")
        raw = _b64decode(encoded, "the verifier key's key")
        if not raw or raw[0] != cls.ALG:
            found = f"0x{raw[0]:02x} ({_TYPE_NAMES.get(raw[0], 'unknown')})" if raw else "empty"
            raise NoteError(
                f"the verifier key's type is {found}, not 0x{cls.ALG:02x} ({_TYPE_NAMES[cls.ALG]})"
            )
        if len(raw) != 1 + PUBLIC_KEY_SIZE:
            raise NoteError(f"the verifier key's key is {len(raw) - 1} bytes: Ed25519 keys are 32")
        made = cls(name, raw[1:])
        if made.key_id.hex() != hex_id:
            raise NoteError(
                f"the verifier key's id {hex_id} does not match its key (whose id is "
                f"{made.key_id.hex()})"
            )
        return made

    def verifier_key(self) -> str:
        """This key in the note verifier-key format."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([self.ALG]) + self.public_key)}"

    def _check_signer(self, signature: Signature, size: int, kind: str) -> None:
        if (signature.name, signature.key_id) != (self.name, self.key_id):
            raise NoteError(
                f"the signature is by {signature.key}, not {self.name}+{self.key_id.hex()}"
            )
        if len(signature.signature) != size:
            raise NoteError(
                f"the signature by {signature.key} is {len(signature.signature)} bytes: "
                f"{kind} is {size}"
            )


class Verifier(_PublicKey):
    """Verifies Ed25519 note signatures (type 0x01) by one key: read from its verifier
    key, or made as ``Verifier(name, public_key)``."""

    ALG = ED25519

    def check(self, text: str, signature: Signature) -> None:
        """Raise :class:`NoteError` saying why ``signature`` is not this key's on ``text``."""
        _check_text(text)
        self._check_signer(signature, ED25519_SIGNATURE_SIZE, "an Ed25519 signature")
        try:
            self._key.verify(signature.signature, text.encode("utf-8"))
        except InvalidSignature:
            raise NoteError(f"the signature by {signature.key} does not verify") from None

    def verify(self, text: str, signature: Signature) -> bool:
        """Whether ``signature`` is this key's valid signature on ``text``."""
        try:
            self.check(text, signature)
        except NoteError:
            return False
        return True


def _cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature signs: header line, time line, the checkpoint text."""
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise NoteError(f"a timestamp is an int of POSIX seconds, not {timestamp!r}")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"a timestamp is from 0 to 2**63 - 1, not {timestamp}")


def cosignature_timestamp(signature: Signature) -> int:
    """The timestamp a cosignature/v1 carries, *unverified* (see CosignatureVerifier)."""
    if len(signature.signature) != COSIGNATURE_SIZE:
        raise NoteError(
            f"the signature by {signature.key} is {len(signature.signature)} bytes: a "
            f"cosignature/v1 is {COSIGNATURE_SIZE} (timestamp and Ed25519 signature)"
        )
    timestamp = int.from_bytes(signature.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise NoteError(f"the cosignature by {signature.key} has a timestamp above 2**63 - 1")
    return timestamp


class CosignatureVerifier(_PublicKey):
    """Verifies a cosigner's timestamped Ed25519 checkpoint cosignatures (type 0x04): read
    from its verifier key, or made as ``CosignatureVerifier(name, public_key)``."""

    ALG = COSIGNATURE_V1

    def check(self, checkpoint_text: str, signature: Signature) -> int:
        """The cosignature's timestamp, or :class:`NoteError` saying why it is not valid."""
        self._check_signer(signature, COSIGNATURE_SIZE, "a cosignature/v1")
        timestamp = cosignature_timestamp(signature)
        parse_checkpoint(checkpoint_text)
        message = _cosigned_message(checkpoint_text, timestamp)
        try:
            self._key.verify(signature.signature[8:], message)
        except InvalidSignature:
            raise NoteError(f"the cosignature by {signature.key} does not verify") from None
        return timestamp

    def verify(self, checkpoint_text: str, signature: Signature) -> int | None:
        """The timestamp of a valid cosignature on this checkpoint text, else ``None``."""
        try:
            return self.check(checkpoint_text, signature)
        except NoteError:
            return None


class _PrivateKey:
    """A named Ed25519 private key of one signature type; its repr holds no secret."""

    ALG: ClassVar[int]
    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self._name = name
        self._key = private_key
        self._public = private_key.public_key().public_bytes_raw()
        self._key_id = key_id(name, self.ALG, self._public)

    @classmethod
    def generate(cls, name: str) -> Self:
        """A new random key named ``name``."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, name: str, seed: bytes) -> Self:
        """The key whose 32-byte Ed25519 seed (RFC 8032 private key) is ``seed``."""
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise NoteError("an Ed25519 private key is a 32-byte seed")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    def private_bytes(self) -> bytes:
        """The 32-byte seed: keep it secret."""
        return self._key.private_bytes_raw()

    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public

    def verifier_key(self) -> str:
        """The public half in the note verifier-key format, with this key's type byte."""
        return f"{self._name}+{self._key_id.hex()}+{_b64(bytes([self.ALG]) + self._public)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, key_id={self._key_id.hex()!r})"


class Signer(_PrivateKey):
    """Signs note texts with Ed25519 (type 0x01)."""

    __slots__ = ()
    ALG = ED25519

    def sign(self, text: str) -> Signature:
        """This key's signature on ``text`` (the UTF-8 bytes, final newline included)."""
        _check_text(text)
        return Signature(self._name, self._key_id, self._key.sign(text.encode("utf-8")))

    def verifier(self) -> Verifier:
        return Verifier(self._name, self._public)


class Cosigner(_PrivateKey):
    """Cosigns checkpoints as a witness: timestamped Ed25519 cosignature/v1 (type 0x04)."""

    __slots__ = ()
    ALG = COSIGNATURE_V1

    def cosign(self, checkpoint_text: str, timestamp: int) -> Signature:
        """A cosignature on a checkpoint's text, made at ``timestamp`` (POSIX seconds)."""
        parse_checkpoint(checkpoint_text)
        _check_timestamp(timestamp)
        signed = self._key.sign(_cosigned_message(checkpoint_text, timestamp))
        return Signature(self._name, self._key_id, timestamp.to_bytes(8, "big") + signed)

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self._name, self._public)


_K = TypeVar("_K", bound=_PublicKey)


def _index(keys: Iterable[_K], kind: type[_K]) -> dict[tuple[str, bytes], _K]:
    index: dict[tuple[str, bytes], _K] = {}
    for key in keys:
        if not isinstance(key, kind):
            raise TypeError(f"expected {kind.__name__} objects, got {type(key).__name__}")
        known = index.setdefault((key.name, key.key_id), key)
        if known.public_key != key.public_key:
            raise NoteError(f"two keys share the name and key id {key.name}+{key.key_id.hex()}")
    return index


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note of ``text`` by each signer, in order."""
    if not signers:
        raise NoteError("a note is signed by at least one signer")
    return format_note(Note(text, tuple(signer.sign(text) for signer in signers)))


def verified_signatures(note: Note, verifiers: Sequence[Verifier]) -> tuple[Signature, ...]:
    """The note's signatures by known keys, one per key; every line by a known key must
    verify (else :class:`NoteError`); lines by unknown keys are left out, unjudged."""
    known = _index(verifiers, Verifier)
    trusted: dict[tuple[str, bytes], Signature] = {}
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is not None:
            verifier.check(note.text, signature)
            trusted.setdefault((signature.name, signature.key_id), signature)
    return tuple(trusted.values())


def open_note(data: str | bytes, verifiers: Sequence[Verifier]) -> Note:
    """Parse a note and trust it: at least one known key's signature must verify and none
    may fail; signatures by unknown keys stay in the note, untrusted."""
    note = parse_note(data)
    if not verified_signatures(note, verifiers):
        keys = ", ".join(sorted({sig.key for sig in note.signatures}))
        raise NoteError(f"the note is signed by no known key (it is signed by {keys})")
    return note


def verify_cosignatures(
    note: Note, verifiers: Sequence[CosignatureVerifier]
) -> dict[CosignatureVerifier, int]:
    """Each known cosigner whose cosignature is on the note's checkpoint, with its
    timestamp; a known cosigner's cosignature that fails is a :class:`NoteError`."""
    known = _index(verifiers, CosignatureVerifier)
    found: dict[CosignatureVerifier, int] = {}
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is not None:
            found.setdefault(verifier, verifier.check(note.text, signature))
    return found


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
