"""Platform settings: defaults, then a TOML file, then environment variables, then
explicit overrides -- read through pydantic-settings.

The environment variables are the ones the platform has always documented:
``BIND_ADDRESS``, ``DATABASE_URL``, ``BACKEND_TYPE`` and ``LOG_LEVEL``, plus the
``LIMIT_*`` family (``LIMIT_CONFIG``, ``LIMIT_HOME``, ``LIMIT_MODE``,
``LIMIT_ADMIN_API_KEY``, ``LIMIT_AUTH_SECRET``, ``LIMIT_BACKEND_<NAME>_API_KEY`` per
backend instance, …: :data:`ENVIRONMENT_VARIABLES`).  Secrets come only from the
environment or from files: each secret's variable may instead name a file holding it
(``LIMIT_AUTH_SECRET_FILE``, for secrets mounted as files), and a secret written in the
config file is an error naming the variable to use.
The file (``--config`` or ``LIMIT_CONFIG``) has the sections ``[server]``,
``[storage]``, ``[backends]``, ``[agents]``, ``[auth]`` and ``[governance]`` (and more;
``docs/configuration.md`` lists every key, its variable and its default)::

    [server]
    bind_address = "127.0.0.1:8080"
    cors_origins = ["https://app.example.org"]

    [storage]
    type = "database"            # memory | file | database
    url = "postgresql://postgres@127.0.0.1:5432/limit"   # a password: DATABASE_URL

    [backends]
    default = "local"
    [backends.quantum]
    type = "quantum"
    provider = "ibm"             # aer | fake | ibm: the target family it serves
    api_key_file = "ibm.key"     # or LIMIT_BACKEND_QUANTUM_API_KEY(_FILE)

    [agents]
    paths = ["agents"]           # folders of @agent files; or LIMIT_AGENT_PATHS (os.pathsep)

    [auth]
    token_ttl_s = 900            # the platform's own JWTs; the secret: LIMIT_AUTH_SECRET(_FILE)
    [auth.oidc]                  # optional: accept tokens of an external OIDC issuer
    issuer = "https://login.example.org/realms/lab"
    audience = "limit-graph"
    claims = { tenant = "org", roles = "roles" }

Relative paths in the file (``api_key_file``, ``[agents] paths``) are relative to the
file's folder; those of variables and overrides, to the working directory.

An unknown key or a bad value is a :class:`ConfigError` naming the key and the file.
A key that needs care but still works (a placeholder API key in dev mode) is a
:class:`ConfigWarning`.

The modules: ``_sections`` (the section models), ``_settings`` (the root),
``_variables`` (the environment variables and the secrets), ``_sources`` (the
pydantic-settings sources), ``_backend_keys`` (the instances' API keys), ``_loading``
(:func:`load_settings`) and ``_reference`` (the table of every key).
"""

from __future__ import annotations

from limit_graph.core.auth_settings import AuthSettings, OidcClaims, OidcSettings
from limit_graph.core.errors import ConfigError
from limit_graph.core.governance_settings import GovernanceSettings
from limit_graph.core.instances import (
    BackendInstance,
    ConfigWarning,
    TargetFamily,
    api_key_variable,
)
from limit_graph.core.settings._loading import (
    LoadedSettings,
    load_settings,
    load_settings_explained,
)
from limit_graph.core.settings._reference import ReferenceRow, render_reference, settings_reference
from limit_graph.core.settings._sections import (
    AgentsSettings,
    BackendsSettings,
    DispatchSettings,
    PrefectSettings,
    ServerSettings,
    StorageSettings,
    TelemetrySettings,
    WorkflowsSettings,
)
from limit_graph.core.settings._settings import Settings, normalize_database_url
from limit_graph.core.settings._variables import (
    ENVIRONMENT_VARIABLES,
    FILE_VARIABLES,
    SECRET_VARIABLES,
    read_variable,
)

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "FILE_VARIABLES",
    "SECRET_VARIABLES",
    "AgentsSettings",
    "AuthSettings",
    "BackendInstance",
    "BackendsSettings",
    "ConfigError",
    "ConfigWarning",
    "DispatchSettings",
    "GovernanceSettings",
    "LoadedSettings",
    "OidcClaims",
    "OidcSettings",
    "PrefectSettings",
    "ReferenceRow",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "TargetFamily",
    "TelemetrySettings",
    "WorkflowsSettings",
    "api_key_variable",
    "load_settings",
    "load_settings_explained",
    "normalize_database_url",
    "read_variable",
    "render_reference",
    "settings_reference",
]
