"""Where the key-encryption keys come from: the settings, or the environment alone.

``LIMIT_DATA_KEK`` (or the file ``LIMIT_DATA_KEK_FILE`` names) holds the current KEK,
the base64 of 32 random bytes (``openssl rand -base64 32``); ``LIMIT_DATA_KEK_PREVIOUS``
holds earlier ones, comma-separated (or the file ``LIMIT_DATA_KEK_PREVIOUS_FILE`` names),
while a rotation re-wraps the data keys.  In dev mode, with neither variable set, the
KEK is ``<home>/data.kek``, made (mode 0600) when absent; in prod mode a missing KEK is
a :class:`ConfigError` naming the variables.

Processes that read no platform settings (a Prefect worker opening a credentials block)
call :func:`keks_from_environment`, which follows the same rules.

>>> import base64
>>> given = base64.b64encode(bytes(range(32))).decode()
>>> keks_from_environment({"LIMIT_DATA_KEK": given, "LIMIT_MODE": "prod"}).current.kid
'kek-6cd5bfceff69db25'
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from limit_graph.core.encryption_settings import EncryptionSettings
from limit_graph.core.errors import ConfigError
from limit_graph.core.sealing import KeyEncryptionKeys, SecretKey, kek_id
from limit_graph.core.settings import load_settings

__all__ = ["KEK_FILE_NAME", "keks_from_environment", "load_keks", "parse_kek"]

KEK_FILE_NAME = "data.kek"
"""The dev-mode KEK's file under the platform's home."""

_VARIABLES = "LIMIT_DATA_KEK or LIMIT_DATA_KEK_FILE"
_ENVIRONMENT = (
    "LIMIT_DATA_KEK",
    "LIMIT_DATA_KEK_FILE",
    "LIMIT_DATA_KEK_PREVIOUS",
    "LIMIT_DATA_KEK_PREVIOUS_FILE",
    "LIMIT_HOME",
    "LIMIT_MODE",
)
"""What :func:`keks_from_environment` reads of the environment."""


def parse_kek(text: str, where: str) -> SecretKey:
    """The KEK written as base64 (standard or URL-safe) of exactly 32 bytes."""
    cleaned = text.strip()
    try:
        raw = base64.b64decode(
            cleaned.replace("-", "+").replace("_", "/") + "=" * (-len(cleaned) % 4),
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where} is not base64: give 32 random bytes in base64") from None
    if len(raw) != 32:
        raise ConfigError(
            f"{where} holds {len(raw)} bytes; a key-encryption key is 32 random bytes "
            "in base64 (openssl rand -base64 32)"
        )
    return SecretKey(kek_id(raw), raw)


def load_keks(
    encryption: EncryptionSettings, *, home: Path, mode: Literal["dev", "prod"]
) -> KeyEncryptionKeys:
    """The KEKs of the settings; in dev mode without one, ``<home>/data.kek``."""
    previous = tuple(
        parse_kek(k.get_secret_value(), f"LIMIT_DATA_KEK_PREVIOUS item {n + 1}")
        for n, k in enumerate(encryption.previous_keks)
    )
    if encryption.kek is not None:
        current = parse_kek(encryption.kek.get_secret_value(), _VARIABLES)
    elif mode == "dev":
        current = _dev_kek(home / KEK_FILE_NAME)
    else:
        raise ConfigError(
            f"no key-encryption key: set {_VARIABLES} (outside dev mode none is made); "
            "records at rest are sealed under it"
        )
    return KeyEncryptionKeys(current, tuple(k for k in previous if k.kid != current.kid))


def keks_from_environment(environ: Mapping[str, str] | None = None) -> KeyEncryptionKeys:
    """The KEKs the variables give, for processes that load no platform settings.

    Only the variables of the KEK, the home and the mode are read, by the settings' own
    rules (a ``_FILE`` variable, its refusals, ``LIMIT_MODE``'s values): no config file,
    so a runner needs nothing of the platform's configuration but these."""
    env = os.environ if environ is None else environ
    settings = load_settings(environ={k: env[k] for k in _ENVIRONMENT if k in env})
    return load_keks(settings.encryption, home=settings.home, mode=settings.mode)


def _dev_kek(path: Path) -> SecretKey:
    """The KEK in ``path``, made there first if absent.  The file appears whole or not at
    all (written aside, then hard-linked into place), so two processes starting at once
    agree on one key: the one that loses reads the winner's."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(base64.b64encode(os.urandom(32)).decode("ascii") + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(aside)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"key-encryption key file {path} cannot be read: {exc.strerror}"
        ) from None
    return parse_kek(text, f"key-encryption key file {path}")
