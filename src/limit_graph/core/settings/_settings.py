"""The root of the settings: :class:`Settings`, a pydantic-settings ``BaseSettings``.

Built directly (``Settings(...)``) it is a plain model of the values given.  Built by
:func:`~limit_graph.core.settings.load_settings`, it reads the sources that call
chose (:func:`._sources.reading`): explicit overrides, then the environment (and
``*_FILE`` secrets), then the TOML file, then the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from limit_graph.core.auth_settings import AuthSettings
from limit_graph.core.encryption_settings import EncryptionSettings
from limit_graph.core.errors import ConfigError
from limit_graph.core.governance_settings import GovernanceSettings
from limit_graph.core.instances import PLACEHOLDER_SECRETS
from limit_graph.core.ledger_settings import LedgerSettings
from limit_graph.core.lineage_settings import LineageSettings
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
from limit_graph.core.settings._sources import active_sources
from limit_graph.core.settings._variables import SECRET_VARIABLES

__all__ = ["Settings", "normalize_database_url"]


class Settings(BaseSettings):
    """Everything the platform needs to start; passed down, never read from a global."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=False)

    mode: Literal["dev", "prod"] = Field(
        default="dev",
        description="dev makes missing keys under home; prod refuses to start without "
        "them and refuses placeholder secrets.",
    )
    home: Path = Field(
        default=Path(".limit"),
        description="State folder (keys, SQLite, checkpoints); relative to the folder "
        "`limit up` runs in.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Lowest level logged (the variable's case is ignored)."
    )
    admin_api_key: SecretStr | None = Field(
        default=None, description="The platform admin's API key; made under home in dev mode."
    )
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The values given first, then the sources :func:`load_settings` chose; none
        of pydantic-settings' own (the variables share no prefix)."""
        del settings_cls, env_settings, dotenv_settings, file_secret_settings
        return (init_settings, *active_sources())

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
                    variable = SECRET_VARIABLES[name]
                    raise ValueError(
                        f"{name} is a placeholder or shorter than 24 characters; set a "
                        f"real secret in {variable} or {variable}_FILE outside dev mode"
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
