"""Ed25519 keys over notes: verifiers and signers of notes (type 0x01) and of checkpoint
cosignatures (c2sp.org/tlog-cosignature, type 0x04), and signing and opening a note."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from limit_graph.core.notes.checkpoint import (
    parse_checkpoint,
)
from limit_graph.core.notes.text import (
    _KEY_ID_HEX,
    _TYPE_NAMES,
    COSIGNATURE_SIZE,
    COSIGNATURE_V1,
    ED25519,
    ED25519_SIGNATURE_SIZE,
    MAX_TIMESTAMP,
    PUBLIC_KEY_SIZE,
    Note,
    NoteError,
    Signature,
    _b64,
    _b64decode,
    _check_name,
    _check_text,
    _short,
    format_note,
    key_id,
    parse_note,
)


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
