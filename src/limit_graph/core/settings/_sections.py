"""The sections of the settings that have no module of their own: ``[server]``,
``[storage]``, ``[backends]``, ``[telemetry]``, ``[prefect]``, ``[dispatch]``,
``[workflows]`` and ``[agents]``.

Each is a plain pydantic model that refuses unknown keys; the sources that fill them
are :mod:`._sources`'.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from limit_graph.core.instances import BackendInstance
from limit_graph.core.models import BackendKind

__all__ = [
    "AgentsSettings",
    "BackendsSettings",
    "DispatchSettings",
    "PrefectSettings",
    "ServerSettings",
    "StorageSettings",
    "TelemetrySettings",
    "WorkflowsSettings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    bind_address: str = Field(
        default="127.0.0.1:8080",
        pattern=r"^[^\s:]+:\d{1,5}$",
        description="host:port the REST API listens on.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes `limit up` serves the REST API from, on the one "
        "bind_address; more than one needs storage type = database (SQLite or Postgres).",
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024, description="Larger request bodies are refused with 413."
    )
    max_streams_per_principal: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Event streams one principal may hold open on each API process.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty turns CORS off."
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Serve TLS with this certificate (PEM); with ssl_keyfile."
    )
    ssl_keyfile: Path | None = Field(
        default=None, description="The certificate's private key (PEM); with ssl_certfile."
    )

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
    type: Literal["memory", "file", "database"] = Field(
        default="database", description="Where records live: memory, file or database."
    )
    url: str | None = Field(
        default=None,
        description="Database URL (type = database): postgresql://… or sqlite:///…; "
        "default SQLite at <home>/limit.db. Keep a password out of the file.",
    )
    path: Path | None = Field(
        default=None, description="Folder for type = file (default <home>/data)."
    )
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
    default: BackendKind = Field(
        default=BackendKind.LOCAL,
        description="The backend kind an execution runs on when it names none.",
    )
    instances: dict[str, BackendInstance] = Field(
        default_factory=dict,
        description="Named instances of a kind (federation): each table under [backends].",
    )

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
    json_logs: bool = Field(default=True, description="Log one JSON object a line.")
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

    lease_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A runner silent this long loses its executions to another.",
    )
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts of a retryable failure, in all."
    )
    retry_backoff_s: float = Field(
        default=0.5, ge=0, le=3600, description="Wait before the first retry; doubles after."
    )
    runner_api_key: SecretStr | None = Field(
        default=None,
        description="The runners' API key; made under home in dev mode (outside it, "
        "without one, runners use the admin key).",
    )
    idle_exit_s: float = Field(
        default=60.0, gt=0, description="A runner with no work this long exits."
    )
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
