"""Settings of lineage: the ``[lineage]`` section.

The lineage graph is derived from the ledger in the background, a batch of up to
``batch`` entries at a time, woken by this process's writes and otherwise every
``poll_s``; a read of a graph waits up to ``read_wait_s`` for it to cover the ledger as
it stood when the read came in.  Each execution's state changes are also sent as
OpenLineage run events, to a file (one JSON event a line; default
``<home>/lineage/openlineage.jsonl``) or over HTTP (Marquez, or any OpenLineage
endpoint; its bearer token, if it wants one, in ``LIMIT_OPENLINEAGE_API_KEY`` or the file
``LIMIT_OPENLINEAGE_API_KEY_FILE`` names, never in the file)::

    [lineage]
    openlineage = "http"                      # file | http | off
    url = "http://marquez.example.org:5000"   # POSTed to <url>/<endpoint>
    endpoint = "api/v1/lineage"
    namespace = "limit-graph"                 # the OpenLineage namespace of jobs, datasets
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["LineageSettings"]


class LineageSettings(BaseModel):
    """How lineage is derived and where its OpenLineage events go."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Derive the lineage graph from the ledger.")
    poll_s: float = Field(
        default=1.0, gt=0, le=3600, description="How often the ledger is read for new entries."
    )
    batch: int = Field(default=500, ge=1, le=100_000, description="Ledger entries per batch.")
    read_wait_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long a lineage read waits for the graph to cover the ledger.",
    )
    openlineage: Literal["file", "http", "off"] = Field(
        default="file", description="Where OpenLineage run events go."
    )
    path: Path | None = Field(
        default=None,
        description="The events file (default <home>/lineage/openlineage.jsonl).",
    )
    url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="Base URL of the OpenLineage HTTP endpoint (openlineage = http).",
    )
    endpoint: str = Field(
        default="api/v1/lineage",
        min_length=1,
        max_length=200,
        description="Path under url that events are POSTed to.",
    )
    api_key: SecretStr | None = Field(default=None, description="Bearer token for the endpoint.")
    timeout_s: float = Field(default=5.0, gt=0, le=300, description="HTTP timeout per event.")
    namespace: str = Field(
        default="limit-graph",
        min_length=1,
        max_length=200,
        description="The OpenLineage namespace of the jobs and datasets.",
    )

    @model_validator(mode="after")
    def _http_needs_a_url(self) -> LineageSettings:
        if self.openlineage == "http" and self.url is None:
            raise ValueError("openlineage = 'http' needs a url")
        return self
