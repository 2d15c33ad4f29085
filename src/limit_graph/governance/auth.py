"""Authentication by API key, and the admin key made on first start in dev mode.

Keys are compared as SHA-256 digests in constant time; the plain admin key exists
only in the operator's environment or in ``.limit/admin.key`` (mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from limit_graph.core.errors import AuthenticationRequired, ConfigError
from limit_graph.core.settings import Settings

__all__ = [
    "AdminKey",
    "ApiKeyAuthenticator",
    "Principal",
    "ensure_admin_key",
    "ensure_runner_key",
]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a name for the ledger, a tenant for isolation, and roles (what
    each role may do is :mod:`limit_graph.governance.authorizer`'s to decide)."""

    name: str
    tenant: str
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True)
class AdminKey:
    key: str
    created: bool
    path: Path | None


def ensure_admin_key(settings: Settings) -> AdminKey:
    """The admin API key: from settings, else ``.limit/admin.key``, else made (dev only)."""
    secret = settings.admin_api_key
    given = secret.get_secret_value() if secret is not None else None
    return _ensure_key(given, settings.admin_key_path, settings, "admin", "LIMIT_ADMIN_API_KEY")


def ensure_runner_key(settings: Settings) -> AdminKey | None:
    """The runners' API key: from settings, else ``.limit/runner.key``, else made in dev
    mode; outside dev mode without one, runners use the admin key (``None``)."""
    secret = settings.dispatch.runner_api_key
    given = secret.get_secret_value() if secret is not None else None
    if given is None and settings.mode != "dev" and not settings.runner_key_path.exists():
        return None
    return _ensure_key(given, settings.runner_key_path, settings, "runner", "LIMIT_RUNNER_API_KEY")


def _ensure_key(
    given: str | None, path: Path, settings: Settings, what: str, variable: str
) -> AdminKey:
    if given is not None:
        return AdminKey(given, False, None)
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if not key:
            raise ConfigError(f"{what} key file {path} is empty; delete it to make a new key")
        return AdminKey(key, False, path)
    if settings.mode != "dev":
        raise ConfigError(f"no {what} API key: set {variable} (outside dev mode none is generated)")
    key = ("lgk_" if what == "admin" else "lgr_") + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return AdminKey(key, True, path)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeyAuthenticator:
    """Maps API keys to principals."""

    def __init__(self) -> None:
        self._keys: list[tuple[bytes, Principal]] = []

    def add(self, key: str, principal: Principal) -> None:
        self._keys.append((_digest(key), principal))

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise AuthenticationRequired(
                "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        digest = _digest(key)
        found: Principal | None = None
        for known, principal in self._keys:
            if hmac.compare_digest(known, digest):
                found = principal
        if found is None:
            raise AuthenticationRequired("unknown API key")
        return found
