"""The environment variables the settings read, and which settings are secrets.

The variable names are the ones the platform has always documented; they share no
prefix, so the table maps each one to the key it sets.  Every secret's variable may
instead name a file holding the secret (``<VARIABLE>_FILE``), for secrets mounted as
files; so may ``DATABASE_URL``, whose URL may carry a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from limit_graph.core.errors import ConfigError

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "FILE_VARIABLES",
    "SECRET_VARIABLES",
    "read_variable",
]

ENVIRONMENT_VARIABLES: dict[str, tuple[str, ...]] = {
    "BIND_ADDRESS": ("server", "bind_address"),
    "DATABASE_URL": ("storage", "url"),
    "BACKEND_TYPE": ("backends", "default"),
    "LOG_LEVEL": ("log_level",),
    "LIMIT_HOME": ("home",),
    "LIMIT_MODE": ("mode",),
    "LIMIT_ADMIN_API_KEY": ("admin_api_key",),
    "LIMIT_RUNNER_API_KEY": ("dispatch", "runner_api_key"),
    "LIMIT_AUTH_SECRET": ("auth", "secret"),
    "LIMIT_DATA_KEK": ("encryption", "kek"),
    "LIMIT_DATA_KEK_PREVIOUS": ("encryption", "previous_keks"),
    "LIMIT_OPENLINEAGE_API_KEY": ("lineage", "api_key"),
    "LIMIT_PREFECT_WORKERS": ("prefect", "workers"),
    "LIMIT_STORAGE": ("storage", "type"),
    "LIMIT_CORS_ORIGINS": ("server", "cors_origins"),
    "LIMIT_AGENT_PATHS": ("agents", "paths"),
    "PREFECT_API_URL": ("prefect", "api_url"),
}
"""Each documented variable and the key (section, name) it overrides."""

SECRET_VARIABLES: dict[str, str] = {
    "admin_api_key": "LIMIT_ADMIN_API_KEY",
    "dispatch.runner_api_key": "LIMIT_RUNNER_API_KEY",
    "auth.secret": "LIMIT_AUTH_SECRET",
    "encryption.kek": "LIMIT_DATA_KEK",
    "encryption.previous_keks": "LIMIT_DATA_KEK_PREVIOUS",
    "lineage.api_key": "LIMIT_OPENLINEAGE_API_KEY",
}
"""The secrets (besides each backend instance's ``api_key``) and their variables: read
from the environment or a file, never from the config file."""

FILE_VARIABLES = frozenset({*SECRET_VARIABLES.values(), "DATABASE_URL"})
"""Variables whose value may come from the file ``<VARIABLE>_FILE`` names instead."""


def read_variable(
    env: Mapping[str, str], var: str, *, file_allowed: bool = False
) -> tuple[str, str] | None:
    """The value of ``var`` and where it came from (``env VAR`` or ``file PATH
    (VAR_FILE)``), or None when unset or empty.

    ``<var>_FILE`` is read when ``var`` accepts one (or ``file_allowed``); a path in it
    is relative to the working directory.  Setting both is an error, as is a file that
    is missing or empty.

    >>> read_variable({"LOG_LEVEL": "debug"}, "LOG_LEVEL")
    ('debug', 'env LOG_LEVEL')
    """
    named = env.get(f"{var}_FILE") if file_allowed or var in FILE_VARIABLES else None
    if not named:
        value = env.get(var)
        return (value, f"env {var}") if value else None
    if env.get(var):
        raise ConfigError(f"set {var} or {var}_FILE, not both")
    try:
        value = Path(named).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"{var}_FILE names {named}, which cannot be read: {exc.strerror}"
        ) from None
    if not value:
        raise ConfigError(f"{var}_FILE names {named}, which is empty")
    return value, f"file {named} ({var}_FILE)"
