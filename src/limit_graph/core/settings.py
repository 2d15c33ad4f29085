"""Platform settings: defaults, then a TOML file, then environment variables.

The environment variables are the ones the platform has always documented:
``BIND_ADDRESS``, ``DATABASE_URL``, ``BACKEND_TYPE`` and ``LOG_LEVEL``, plus the
``LIMIT_*`` family (``LIMIT_CONFIG``, ``LIMIT_HOME``, ``LIMIT_MODE``,
``LIMIT_ADMIN_API_KEY``, ``LIMIT_AUTH_SECRET``, and ``LIMIT_BACKEND_<NAME>_API_KEY`` per
backend instance).  A secret's variable may instead name a file holding it, for secrets
mounted as files: ``LIMIT_AUTH_SECRET_FILE``.
The file (``--config`` or ``LIMIT_CONFIG``) has the sections ``[server]``,
``[storage]``, ``[backends]``, ``[agents]``, ``[auth]`` and ``[governance]`` (and more, each a
model below or in :mod:`~limit_graph.core.governance_settings`)::

    [server]
    bind_address = "127.0.0.1:8080"

    cors_origins = ["https://app.example.org"]

    [storage]
    type = "database"            # memory | file | database
    url = "postgresql://postgres@127.0.0.1:5432/limit"

    [backends]
    default = "local"
    [backends.quantum]
    type = "quantum"
    provider = "ibm"             # aer | fake | ibm: the target family it serves
    api_key_file = "ibm.key"     # or LIMIT_BACKEND_QUANTUM_API_KEY; api_key = "..." in dev

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
A key that needs care but still works (an API key written in the file, in dev mode) is a
:class:`ConfigWarning`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from limit_graph.core.auth_settings import AuthSettings, OidcClaims, OidcSettings
from limit_graph.core.encryption_settings import EncryptionSettings
from limit_graph.core.errors import ConfigError
from limit_graph.core.governance_settings import GovernanceSettings
from limit_graph.core.instances import (
    PLACEHOLDER_SECRETS,
    BackendInstance,
    ConfigWarning,
    TargetFamily,
    api_key_variable,
    resolve_api_keys,
)
from limit_graph.core.ledger_settings import LedgerSettings
from limit_graph.core.lineage_settings import LineageSettings
from limit_graph.core.models import BackendKind

__all__ = [
    "AuthSettings",
    "BackendInstance",
    "BackendsSettings",
    "ConfigWarning",
    "DispatchSettings",
    "GovernanceSettings",
    "PrefectSettings",
    "OidcClaims",
    "OidcSettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "TargetFamily",
    "TelemetrySettings",
    "WorkflowsSettings",
    "AgentsSettings",
    "api_key_variable",
    "load_settings",
    "normalize_database_url",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    bind_address: str = Field(default="127.0.0.1:8080", pattern=r"^[^\s:]+:\d{1,5}$")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes `limit up` serves the REST API from, on the one "
        "bind_address; more than one needs storage type = database (SQLite or Postgres).",
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_streams_per_principal: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Event streams one principal may hold open on each API process.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty turns CORS off."
    )
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @model_validator(mode="after")
    def _tls_needs_both_files(self) -> ServerSettings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        return self

    @property
    def host(self) -> str:
        return self.bind_address.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.bind_address.rsplit(":", 1)[1])


class StorageSettings(_Section):
    type: Literal["memory", "file", "database"] = "database"
    url: str | None = Field(default=None, description="Database URL (type = database).")
    path: Path | None = Field(default=None, description="Folder for type = file.")
    pool_size: int = Field(
        default=32,
        ge=1,
        description="Database connections each API process keeps open for reads and "
        "short transactions (type = database).",
    )
    max_overflow: int = Field(
        default=8,
        ge=0,
        description="Connections opened above pool_size under a burst, closed when "
        "returned; a pool too small for the load opens and closes them all the time.",
    )


class BackendsSettings(_Section):
    default: BackendKind = BackendKind.LOCAL
    instances: dict[str, BackendInstance] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _tables_are_instances(cls, raw: Any) -> Any:
        """In TOML, every table under ``[backends]`` is a named instance."""
        if isinstance(raw, Mapping) and "instances" not in raw:
            tables = {k: v for k, v in raw.items() if isinstance(v, Mapping)}
            rest = {k: v for k, v in raw.items() if not isinstance(v, Mapping)}
            return {**rest, "instances": tables}
        return raw


class TelemetrySettings(_Section):
    json_logs: bool = True
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector base URL; traces are exported there."
    )
    tracing: bool | None = Field(
        default=None,
        description="Make spans (one per request, one per execution); by default only "
        "when they are exported (otlp_endpoint or OTEL_EXPORTER_OTLP_ENDPOINT).",
    )


class PrefectSettings(_Section):
    api_url: str | None = Field(
        default=None, description="Prefect API, e.g. http://127.0.0.1:4200/api (PREFECT_API_URL)."
    )
    start_server: bool = Field(
        default=True, description="`limit up` starts a Prefect server when api_url is unset."
    )
    port: int = Field(default=4200, ge=1, le=65535, description="Port of that server.")
    database_url: str | None = Field(
        default=None, description="The Prefect server's database; SQLite under home by default."
    )
    workers: bool = Field(default=True, description="`limit up` starts a worker per pool.")
    mirror: bool = Field(default=True, description="Show sessions and executions in Prefect.")
    mirror_task_runs_per_s: float = Field(
        default=50.0,
        gt=0,
        description="Task runs the mirror creates per second before it groups executions.",
    )
    leader_lease_s: float = Field(
        default=5.0,
        ge=0.1,
        le=300,
        description="The mirror's and the runner supervisor's leases: one API process of a "
        "store runs each, renewing every third of this; another takes over this long after "
        "it stops.",
    )


class DispatchSettings(_Section):
    """Leases and retries of executions dispatched to runners."""

    lease_s: float = Field(default=10.0, gt=0, le=3600)
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_backoff_s: float = Field(default=0.5, ge=0, le=3600)
    runner_api_key: SecretStr | None = None
    idle_exit_s: float = Field(default=60.0, gt=0)
    max_claim_wait_s: float = Field(
        default=60.0,
        ge=0,
        le=60,
        description="The longest a runner's claim waits for work, whatever wait_s it asks.",
    )
    queue: Literal["auto", "process", "shared"] = Field(
        default="auto",
        description=(
            "Where the queue of work for runners lives: 'shared' in the database, so that "
            "every API process on it serves any runner; 'process' in this API process's "
            "memory (the records stay durable; faster, for one process alone); 'auto' "
            "is shared on Postgres or with [server] workers above 1, else process."
        ),
    )


class WorkflowsSettings(_Section):
    """Limits of workflows (DAGs of steps)."""

    max_steps: int = Field(default=10_000, ge=1, description="Steps one workflow may have.")
    max_parallel: int = Field(
        default=16, ge=1, le=10_000, description="Steps and map items in flight, by default."
    )
    max_map_items: int = Field(
        default=100_000, ge=1, description="Items one mapped step may fan out to."
    )


class AgentsSettings(_Section):
    """Where agents come from besides the ``limit_graph.agents`` entry points."""

    paths: list[Path] = Field(
        default_factory=list,
        description="Folders whose Python files define agents (``@agent``), loaded at start.",
    )


class Settings(_Section):
    """Everything the platform needs to start; passed down, never read from a global."""

    mode: Literal["dev", "prod"] = "dev"
    home: Path = Path(".limit")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    admin_api_key: SecretStr | None = None
    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    backends: BackendsSettings = Field(default_factory=BackendsSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    workflows: WorkflowsSettings = Field(default_factory=WorkflowsSettings)
    agents: AgentsSettings = Field(default_factory=AgentsSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    lineage: LineageSettings = Field(default_factory=LineageSettings)
    source: str | None = Field(default=None, description="The config file these came from.")

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_prod(self) -> Settings:
        if self.mode == "prod":
            for name, secret in (
                ("admin_api_key", self.admin_api_key),
                ("dispatch.runner_api_key", self.dispatch.runner_api_key),
                ("auth.secret", self.auth.secret),
            ):
                key = secret.get_secret_value() if secret else None
                if key is not None and (key.lower() in PLACEHOLDER_SECRETS or len(key) < 24):
                    raise ValueError(
                        f"{name} is a placeholder or shorter than 24 characters; "
                        "set a real secret outside dev mode"
                    )
        return self

    @property
    def database_url(self) -> str:
        """The async SQLAlchemy URL of the platform database."""
        url = self.storage.url or f"sqlite:///{self.home / 'limit.db'}"
        return normalize_database_url(url)

    @property
    def shared_queue(self) -> bool:
        """Whether the dispatch queue is in the database (``[dispatch] queue``)."""
        queue = self.dispatch.queue
        if queue != "auto":
            return queue == "shared"
        return self.server.workers > 1 or not self.database_url.startswith("sqlite")

    @property
    def file_storage_path(self) -> Path:
        return self.storage.path or self.home / "data"

    @property
    def admin_key_path(self) -> Path:
        return self.home / "admin.key"

    @property
    def runner_key_path(self) -> Path:
        return self.home / "runner.key"

    @property
    def auth_secret_path(self) -> Path:
        return self.home / "auth.secret"

    @property
    def checkpoints_path(self) -> Path:
        """Where each signed checkpoint is also written, outside the database."""
        return self.ledger.checkpoint_dir or self.home / "checkpoints"

    @property
    def openlineage_path(self) -> Path:
        """Where OpenLineage events go with ``[lineage] openlineage = "file"``."""
        return self.lineage.path or self.home / "lineage" / "openlineage.jsonl"

    @property
    def datasets_path(self) -> Path:
        """Where data-quality checks read files from."""
        return self.governance.data_dir or self.home / "datasets"


def normalize_database_url(url: str) -> str:
    """Give a plain ``postgresql://`` or ``sqlite://`` URL the async driver we ship.

    >>> normalize_database_url("postgresql://u@h/db")
    'postgresql+psycopg://u@h/db'
    """
    for plain, driver in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("postgresql+psycopg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError(
        f"unsupported database URL scheme in {url.split('://', 1)[0]!r}: "
        "use postgresql:// or sqlite://"
    )


_ENV_PATHS: dict[str, tuple[str, ...]] = {
    "BIND_ADDRESS": ("server", "bind_address"),
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

_FILE_VARIABLES = frozenset({"LIMIT_AUTH_SECRET", "LIMIT_DATA_KEK"})
"""Variables whose value may come from the file ``<VARIABLE>_FILE`` names instead."""


def _from_file_variable(env: Mapping[str, str], var: str) -> str | None:
    """The value in the file ``<var>_FILE`` names (relative to the working directory)."""
    named = env.get(f"{var}_FILE")
    if not named:
        return None
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
    return value


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        node = tree.get(key)
        if not isinstance(node, dict):
            node = tree[key] = {}
        tree = node
    tree[path[-1]] = value


def _format_location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p != "instances"]
    return ".".join(parts) or "(top level)"


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from the file, the environment and explicit overrides.

    >>> load_settings(environ={"BIND_ADDRESS": "0.0.0.0:9000"}).server.port
    9000
    """
    env = os.environ if environ is None else environ
    path = config_path if config_path is not None else env.get("LIMIT_CONFIG")
    tree: dict[str, Any] = {}
    origin = "environment"
    if path:
        file = Path(path)
        origin = str(file)
        try:
            tree = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        tree["source"] = str(file)
        _anchor_agent_paths(tree, file.parent)
    for var, key_path in _ENV_PATHS.items():
        if var in _FILE_VARIABLES and (held := _from_file_variable(env, var)) is not None:
            _set_path(tree, key_path, held)
        elif env.get(var):
            value: Any = env[var]
            if var == "LOG_LEVEL":
                value = value.upper()
            elif var == "LIMIT_CORS_ORIGINS":
                value = [origin.strip() for origin in value.split(",") if origin.strip()]
            elif var == "LIMIT_AGENT_PATHS":
                value = [part for part in value.split(os.pathsep) if part.strip()]
            _set_path(tree, key_path, value)
    if env.get("DATABASE_URL"):
        _set_path(tree, ("storage", "type"), "database")
        _set_path(tree, ("storage", "url"), env["DATABASE_URL"])
    for key, value in overrides.items():
        if value is not None:
            _set_path(tree, tuple(key.split("__")), value)
    try:
        settings = Settings.model_validate(tree)
    except ValidationError as exc:
        errors = [
            {"loc": _format_location(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        lines = "; ".join(
            f"{e['loc']}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in errors
        )
        raise ConfigError(f"invalid configuration in {origin}: {lines}", errors) from None
    if settings.storage.type == "database":
        normalize_database_url(settings.database_url)
    config_dir = Path(settings.source).parent if settings.source else Path()
    instances = resolve_api_keys(
        settings.backends.instances,
        mode=settings.mode,
        config_dir=config_dir,
        env=env,
        origin=origin,
    )
    backends = settings.backends.model_copy(update={"instances": instances})
    folders = [folder.expanduser().absolute() for folder in settings.agents.paths]
    agents = settings.agents.model_copy(update={"paths": folders})
    return settings.model_copy(update={"backends": backends, "agents": agents})


def _anchor_agent_paths(tree: dict[str, Any], config_dir: Path) -> None:
    """Make the file's relative ``[agents] paths`` relative to its folder, not the
    working directory (anything but a list of strings is left to validation)."""
    section = tree.get("agents")
    paths = section.get("paths") if isinstance(section, dict) else None
    if isinstance(section, dict) and isinstance(paths, list):
        section["paths"] = [
            str(config_dir / Path(p).expanduser()) if isinstance(p, str) else p for p in paths
        ]
