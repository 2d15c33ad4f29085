"""What ``limit config check`` finds in loaded settings beyond what loading refuses: the
secrets ``limit up`` would need and not find, placeholder secrets in prod mode, a bad
key-encryption key, and a database it could not reach.

Nothing here writes: a secret ``limit up`` would make in dev mode is reported as made at
first start, not made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from sqlalchemy.engine import make_url

from limit_graph.core.errors import ConfigError
from limit_graph.core.instances import PLACEHOLDER_SECRETS
from limit_graph.core.kek import KEK_FILE_NAME, parse_kek
from limit_graph.core.settings import LoadedSettings, Settings

__all__ = ["DATABASE_TIMEOUT_S", "Finding", "check_database", "check_secrets"]

DATABASE_TIMEOUT_S = 3
"""How long the check waits for the database to answer."""


@dataclass(frozen=True)
class Finding:
    """One result of a check: ``error`` fails the check, ``warning`` and ``ok`` do not."""

    level: Literal["ok", "warning", "error"]
    message: str


@dataclass(frozen=True)
class _Secret:
    key: str
    what: str
    variable: str
    home_file: Path | None
    missing_in_prod: str


def _secrets(settings: Settings) -> list[_Secret]:
    return [
        _Secret(
            "admin_api_key",
            "admin API key",
            "LIMIT_ADMIN_API_KEY",
            settings.admin_key_path,
            "outside dev mode none is made",
        ),
        _Secret(
            "auth.secret",
            "auth secret",
            "LIMIT_AUTH_SECRET",
            settings.auth_secret_path,
            "outside dev mode none is made",
        ),
        _Secret(
            "dispatch.runner_api_key",
            "runner API key",
            "LIMIT_RUNNER_API_KEY",
            settings.runner_key_path,
            "without one, runners would sign in with the admin key",
        ),
    ]


def check_secrets(loaded: LoadedSettings) -> tuple[list[Finding], dict[str, str]]:
    """What is wrong with the secrets, and where each one ``limit up`` would use comes
    from when the settings do not hold it (a file under home, or made at first start)."""
    settings = loaded.settings
    prod = settings.mode == "prod"
    findings: list[Finding] = []
    origins: dict[str, str] = {}
    values = {
        "admin_api_key": settings.admin_api_key,
        "auth.secret": settings.auth.secret,
        "dispatch.runner_api_key": settings.dispatch.runner_api_key,
    }
    for secret in _secrets(settings):
        if values[secret.key] is not None:
            continue  # loading refused it already if it was a placeholder in prod
        home_file = secret.home_file
        if home_file is not None and home_file.exists():
            origins[secret.key] = f"file {home_file}"
            findings.extend(_check_home_file(home_file, secret, prod=prod))
        elif prod:
            findings.append(
                Finding(
                    "error",
                    f"no {secret.what} ({secret.key}): set {secret.variable} or "
                    f"{secret.variable}_FILE ({secret.missing_in_prod})",
                )
            )
        else:
            origins[secret.key] = f"made at first start in {home_file}"
    findings.extend(_check_keks(settings, origins))
    for name, instance in settings.backends.instances.items():
        if instance.provider == "ibm" and instance.api_key is None:
            findings.append(
                Finding(
                    "warning",
                    f"backends.{name}: no IBM Quantum API key given (its variable, or "
                    f"backends.{name}.api_key_file): IBM jobs of it need an "
                    "IBMQuantumCredentials block saved in Prefect",
                )
            )
    return findings, origins


def _check_home_file(path: Path, secret: _Secret, *, prod: bool) -> list[Finding]:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return [Finding("error", f"the {secret.what} file {path} cannot be read: {exc.strerror}")]
    if not value:
        return [Finding("error", f"the {secret.what} file {path} is empty")]
    if prod and (value.lower() in PLACEHOLDER_SECRETS or len(value) < 24):
        return [
            Finding(
                "error",
                f"the {secret.what} in {path} is a placeholder or shorter than 24 "
                "characters; set a real secret outside dev mode",
            )
        ]
    return []


def _check_keks(settings: Settings, origins: dict[str, str]) -> list[Finding]:
    encryption = settings.encryption
    findings: list[Finding] = []
    try:
        if encryption.kek is not None:
            parse_kek(encryption.kek.get_secret_value(), "LIMIT_DATA_KEK")
        for number, previous in enumerate(encryption.previous_keks, start=1):
            parse_kek(previous.get_secret_value(), f"LIMIT_DATA_KEK_PREVIOUS item {number}")
    except ConfigError as exc:
        findings.append(Finding("error", exc.detail))
    if encryption.kek is not None or settings.storage.type == "memory":
        return findings
    dev_key = settings.home / KEK_FILE_NAME
    if settings.mode == "prod":
        findings.append(
            Finding(
                "error",
                "no key-encryption key (encryption.kek): set LIMIT_DATA_KEK or "
                "LIMIT_DATA_KEK_FILE (outside dev mode none is made); records at rest are "
                "sealed under it",
            )
        )
    elif dev_key.exists():
        origins["encryption.kek"] = f"file {dev_key}"
    else:
        origins["encryption.kek"] = f"made at first start in {dev_key}"
    return findings


def check_database(settings: Settings) -> Finding:
    """Whether the store ``limit up`` would open is there: a Postgres server that answers
    within :data:`DATABASE_TIMEOUT_S`, or a folder an SQLite file or file store can be
    made in."""
    kind = settings.storage.type
    if kind == "memory":
        return Finding("ok", "storage: memory (nothing is kept after exit)")
    if kind == "file":
        return _check_folder(settings.file_storage_path, "file storage")
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _check_folder(Path(url.database or "").parent, f"SQLite at {url.database}")
    shown = url.render_as_string(hide_password=True)
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(libpq, connect_timeout=DATABASE_TIMEOUT_S) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return Finding("error", f"the database at {shown} is unreachable: {reason}")
    return Finding("ok", f"database: {shown} answers")


def _check_folder(folder: Path, what: str) -> Finding:
    """``what`` can live in ``folder``: it is there and writable, or can be made."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Finding(
            "error", f"{what}: {folder} cannot be written ({existing} is not a writable folder)"
        )
    return Finding("ok", f"{what}: {folder} is writable")
