"""The server secret: digests of API keys and client secrets, encryption of signing keys.

One secret serves several purposes, and each purpose gets keys of its own, derived with
HKDF-SHA256 (``info`` names the use and the purpose), so a digest made as an
``api-key`` never matches as a ``client-secret`` and a ciphertext of one purpose never
decrypts as another.  Digests are HMAC-SHA256; encryption is AES-256-GCM with a random
96-bit nonce, in the text form ``lgs1.<fingerprint>.<base64url(nonce | ciphertext)>``:
the fingerprint (of the secret, not of the data) tells "encrypted under another server
secret" apart from "altered".  Every primitive comes from ``cryptography`` and ``hmac``.

The secret comes from the settings (``LIMIT_AUTH_SECRET`` or ``LIMIT_AUTH_SECRET_FILE``);
in dev mode, without one, it is made on first start in ``<home>/auth.secret`` (mode 0600)
by :func:`ensure_secret_file`, which makes the dev-mode admin and runner keys too.

>>> secret = ServerSecret("correct horse battery staple, twice over")
>>> digest = secret.digest("lgk_abc_123", purpose="api-key")
>>> secret.matches("lgk_abc_123", digest, purpose="api-key")
True
>>> secret.matches("lgk_abc_123", digest, purpose="client-secret")
False
>>> secret.decrypt(secret.encrypt(b"private", purpose="signing-key"), purpose="signing-key")
b'private'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import Settings

__all__ = ["SecretFile", "ServerSecret", "ensure_secret_file"]

_PURPOSE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
_PREFIX = "lgs1"
_NONCE_BYTES = 12
_SALT = b"limit-graph server secret"


class SecretFile(NamedTuple):
    """A secret and where it came from: ``path`` is ``None`` when the settings gave it."""

    value: str
    created: bool
    path: Path | None


def ensure_secret_file(
    given: str | None,
    path: Path,
    *,
    mode: Literal["dev", "prod"],
    what: str,
    variable: str,
    make: Callable[[], str],
) -> SecretFile:
    """The secret the settings give, else the one in ``path``, else (dev mode only) a new
    one from ``make`` written to ``path`` with mode 0600.

    The file appears whole or not at all (written aside, then hard-linked into place), so
    two processes starting at once agree on one secret: the one that loses reads the
    winner's.  ``what`` and ``variable`` name the secret in errors.
    """
    if given is not None:
        return SecretFile(given, False, None)
    if path.exists():
        return SecretFile(_read_secret_file(path, what), False, path)
    if mode != "dev":
        raise ConfigError(f"no {what}: set {variable} (outside dev mode none is generated)")
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.link(aside, path)
    except FileExistsError:
        return SecretFile(_read_secret_file(path, what), False, path)
    finally:
        os.unlink(aside)
    return SecretFile(value, True, path)


def _read_secret_file(path: Path, what: str) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ConfigError(f"{what} file {path} is empty; delete it to make a new one")
    return value


class ServerSecret:
    """HMAC digests and AES-256-GCM encryption under one secret, per purpose.

    ``purpose`` is a short lower-case name (``api-key``, ``client-secret``,
    ``signing-key``); it separates the domains, so pick one per kind of value and keep it.
    """

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigError("the auth secret is empty")
        self._material = secret.encode("utf-8")
        self._keys: dict[tuple[str, str], bytes] = {}
        self.fingerprint = self._key("fingerprint", "secret")[:6].hex()
        """Names the secret (not the data) in ciphertexts; reveals nothing of it."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerSecret:
        """The secret of ``[auth] secret`` (``LIMIT_AUTH_SECRET(_FILE)``), else of
        ``<home>/auth.secret``, else, in dev mode only, a new one made there."""
        return cls(cls.load(settings).value)

    @staticmethod
    def load(settings: Settings) -> SecretFile:
        """Where :meth:`from_settings` finds the secret, for a start-up banner to tell."""
        given = settings.auth.secret.get_secret_value() if settings.auth.secret else None
        return ensure_secret_file(
            given,
            settings.auth_secret_path,
            mode=settings.mode,
            what="auth secret",
            variable="LIMIT_AUTH_SECRET or LIMIT_AUTH_SECRET_FILE",
            make=lambda: secrets.token_urlsafe(32),
        )

    def __repr__(self) -> str:
        return f"ServerSecret(fingerprint={self.fingerprint!r})"

    def _key(self, use: str, purpose: str) -> bytes:
        if not _PURPOSE.fullmatch(purpose):
            raise ValueError(f"purpose {purpose!r} must be a short lower-case name")
        key = self._keys.get((use, purpose))
        if key is None:
            hkdf = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=_SALT,
                info=f"limit-graph/{use}/{purpose}".encode(),
            )
            key = self._keys[(use, purpose)] = hkdf.derive(self._material)
        return key

    def digest(self, value: str, *, purpose: str) -> str:
        """HMAC-SHA256 of ``value`` under the purpose's key, as hex."""
        key = self._key("hmac-sha256", purpose)
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, value: str, digest: str, *, purpose: str) -> bool:
        """Whether ``value`` has this ``digest``, compared in constant time."""
        mine = self.digest(value, purpose=purpose).encode("ascii")
        return hmac.compare_digest(mine, digest.encode("utf-8"))

    def encrypt(self, data: bytes, *, purpose: str) -> str:
        """``data`` sealed with AES-256-GCM under the purpose's key, as text."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._key("aes-256-gcm", purpose)).encrypt(
            nonce, data, purpose.encode("ascii")
        )
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{_PREFIX}.{self.fingerprint}.{body}"

    def decrypt(self, token: str, *, purpose: str) -> bytes:
        """What :meth:`encrypt` sealed; a :class:`ConfigError` if ``token`` was sealed
        under another secret or for another purpose, or was altered."""
        key = self._key("aes-256-gcm", purpose)
        prefix, fingerprint, body = (token.split(".") + ["", ""])[:3]
        if prefix != _PREFIX or token.count(".") != 2:
            raise ConfigError(f"{purpose} ciphertext is not of the form {_PREFIX}.<id>.<data>")
        if fingerprint != self.fingerprint:
            raise ConfigError(
                f"{purpose} ciphertext was sealed under another server secret "
                f"(its fingerprint {fingerprint!r}, this one {self.fingerprint!r}): "
                "start with the secret it was made with"
            )
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{purpose} ciphertext is not base64url") from None
        if len(raw) < _NONCE_BYTES + 16:
            raise ConfigError(f"{purpose} ciphertext is truncated")
        try:
            return AESGCM(key).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose.encode("ascii")
            )
        except InvalidTag:
            raise ConfigError(
                f"{purpose} ciphertext does not decrypt: it was altered, or sealed for "
                "another purpose"
            ) from None
