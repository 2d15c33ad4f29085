"""Who is calling (:class:`Principal`), and the keys of the settings: the platform
admin's and the runners', made on first start in dev mode.

The plain keys exist only in the operator's environment or in ``.limit/admin.key`` and
``.limit/runner.key`` (mode 0600); the authenticator (:mod:`.authn`) holds them as
HMAC digests under the server secret.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from limit_graph.core.settings import Settings
from limit_graph.governance.secrets import ensure_secret_file

__all__ = [
    "AdminKey",
    "Principal",
    "ensure_admin_key",
    "ensure_runner_key",
]


@dataclass(frozen=True)
class Principal:
    """Who is calling, as authenticated: a name for the ledger, a tenant for isolation,
    roles and groups for the policies (what they allow is the policy engine's to decide).

    ``id`` is the principal record's (``None`` for a key of the settings that no record
    holds); ``scopes`` narrow what an API key may do (empty: whatever its principal may);
    ``pools`` are a runner's work pools (``None``: every pool); ``via`` says how the
    caller signed in (``key``, ``token``, ``oidc``, ``internal``).
    """

    name: str
    tenant: str
    roles: frozenset[str] = field(default_factory=frozenset)
    id: uuid.UUID | None = None
    kind: str = "user"
    groups: frozenset[str] = field(default_factory=frozenset)
    platform_admin: bool = False
    pools: frozenset[str] | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    via: str = "key"
    credential_id: str | None = field(default=None, compare=False)
    """The key id or token ``jti`` it signed in with, for logs and the ledger."""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True)
class AdminKey:
    key: str
    created: bool
    path: Path | None


_ADMIN_VARIABLES = "LIMIT_ADMIN_API_KEY or LIMIT_ADMIN_API_KEY_FILE"
_RUNNER_VARIABLES = "LIMIT_RUNNER_API_KEY or LIMIT_RUNNER_API_KEY_FILE"


def ensure_admin_key(settings: Settings) -> AdminKey:
    """The admin API key: from settings, else ``.limit/admin.key``, else made (dev only)."""
    secret = settings.admin_api_key
    given = secret.get_secret_value() if secret is not None else None
    return _ensure_key(given, settings.admin_key_path, settings, "admin", _ADMIN_VARIABLES)


def ensure_runner_key(settings: Settings) -> AdminKey | None:
    """The runners' API key: from settings, else ``.limit/runner.key``, else made in dev
    mode; outside dev mode without one, runners use the admin key (``None``)."""
    secret = settings.dispatch.runner_api_key
    given = secret.get_secret_value() if secret is not None else None
    if given is None and settings.mode != "dev" and not settings.runner_key_path.exists():
        return None
    return _ensure_key(given, settings.runner_key_path, settings, "runner", _RUNNER_VARIABLES)


def _ensure_key(
    given: str | None, path: Path, settings: Settings, what: str, variable: str
) -> AdminKey:
    prefix = "lgk_" if what == "admin" else "lgr_"
    found = ensure_secret_file(
        given,
        path,
        mode=settings.mode,
        what=f"{what} API key",
        variable=variable,
        make=lambda: prefix + secrets.token_urlsafe(32),
    )
    return AdminKey(*found)
