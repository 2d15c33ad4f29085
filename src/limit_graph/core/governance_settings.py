"""The ``[governance]`` section: rate limits, platform-wide compliance checks, data
classes' clearances and the data folder checks read files from.

::

    [governance]
    redis_url = "redis://127.0.0.1:6379/0"   # share rate limits across API processes
    fail_open = true                          # when Redis is unreachable: allow (true) or 429
    checks = [{ check = "circuit-limits", targets = ["ibm:*"], max_shots = 20000 }]
    stale_reservation_s = 600                 # quota held by a dead process: given back after

    [governance.rates.execute]                # route class: execute | read | write | auth
    per_principal = { rate = 20, burst = 40 } # tokens per second, bucket size
    per_tenant = { rate = 100, burst = 200 }

    [governance.clearances]                   # where inputs of each data class may run
    pii = ["local", "remote:eu-*"]            # backend kinds, or kind:instance patterns
    restricted = ["local"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from limit_graph.core.compliance import DataClass

__all__ = ["GovernanceSettings", "RateRule", "RouteClass", "RouteRates"]

RouteClass = Literal["execute", "read", "write", "auth"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateRule(_Section):
    """A token bucket: ``rate`` tokens a second, holding at most ``burst``."""

    rate: float = Field(gt=0, allow_inf_nan=False, description="Tokens added per second.")
    burst: int = Field(ge=1, description="Tokens the bucket holds: the largest burst.")


class RouteRates(_Section):
    """The buckets one route class draws from; a request needs a token from each."""

    per_key: RateRule | None = None
    per_principal: RateRule | None = None
    per_tenant: RateRule | None = None


def _local_only() -> dict[DataClass, list[str]]:
    return {"pii": ["local"], "restricted": ["local"]}


class GovernanceSettings(_Section):
    redis_url: str | None = Field(
        default=None,
        description="Redis that rate limits share across API processes (none: per process).",
    )
    fail_open: bool = Field(
        default=True,
        description="When Redis is unreachable: allow requests (true) or refuse them (false).",
    )
    redis_timeout_s: float = Field(
        default=0.5,
        gt=0,
        le=10,
        description="The longest a rate check waits on Redis before it counts as unreachable.",
    )
    rates: dict[RouteClass, RouteRates] = Field(
        default_factory=dict,
        description="Token buckets of each route class (execute, read, write, auth).",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(_REDIS_SCHEMES):
            raise ValueError(f"must start with {', '.join(_REDIS_SCHEMES)}")
        return url

    checks: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Compliance checks every execution passes, declared as in a session's "
        "policies.",
    )
    clearances: dict[DataClass, list[str]] = Field(
        default_factory=_local_only,
        description="Backend kinds (or kind:instance patterns) each data class may run on.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Folder that data-quality checks read CSV and Parquet files from "
        "(default: <home>/datasets).",
    )
    stale_reservation_s: float = Field(
        default=600.0,
        ge=60,
        allow_inf_nan=False,
        description="Age past which a quota reservation of an execution that was never "
        "recorded (its process died) is given back, and one of a finished execution "
        "settled.",
    )
    reservation_sweep_s: float = Field(
        default=60.0,
        gt=0,
        allow_inf_nan=False,
        description="How often each API process looks for stale quota reservations.",
    )
