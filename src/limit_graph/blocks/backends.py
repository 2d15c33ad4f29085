"""Blocks for backend instances and runner credentials, editable in the Prefect UI.

A :class:`BackendInstanceBlock` is one named instance of a backend kind (federation),
the block form of :class:`~limit_graph.core.settings.BackendInstance`; ``limit prefect
register`` saves one per configured instance, and the platform reads them back to
merge instances added in the UI with its TOML file.  An instance's IBM Quantum API key
is not in that block: registration saves it in an ``IBMQuantumCredentials`` block of its
own, named by :func:`ibm_credentials_block`, which the instance's runners sign in with.
:class:`RunnerCredentials` tells runners and maintenance flows where the platform's REST
API is and which key to send.

>>> block = block_from_instance("sim", BackendInstance(type="quantum", provider="fake"))
>>> instance_from_block(block)[1].provider
'fake'
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

import httpx
from prefect.blocks.abstract import CredentialsBlock
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from limit_graph.core.errors import ConfigError
from limit_graph.core.models import BackendKind
from limit_graph.core.settings import BackendInstance, TargetFamily, read_variable

__all__ = [
    "RUNNER_CREDENTIALS_BLOCK",
    "BackendInstanceBlock",
    "RunnerCredentials",
    "block_document_name",
    "block_from_instance",
    "ibm_credentials_block",
    "instance_from_block",
    "runner_endpoint",
]

RUNNER_CREDENTIALS_BLOCK = "limit-runner"


class BackendInstanceBlock(Block):
    """A named instance of a LIMIT-Graph backend kind: its runners and what it serves.

    Attributes:
        name: The instance's name as the platform knows it (``[backends.<name>]``).
        kind: The backend kind, which is also the work pool its runners use.
        max_runners: Runners the supervisor starts at most for this instance.
        capabilities: Agents the instance serves; empty means every agent.
        provider: Quantum only: the target family it serves (``aer``, ``fake`` or
            ``ibm``); empty serves every target.
    """

    _block_type_name = "LIMIT Backend Instance"
    _block_type_slug = "limit-backend-instance"
    _description = (
        "One named instance of a LIMIT-Graph backend kind (local, remote or quantum): "
        "how many runners it gets, the agents and the quantum targets it serves."
    )

    name: str = Field(default=..., description="The instance's name in the platform.", min_length=1)
    kind: Literal["local", "remote", "quantum"] = Field(
        default=..., description="Backend kind; also the work pool its runners use."
    )
    max_runners: int = Field(default=4, ge=1, le=256, description="Runners started at most.")
    capabilities: list[str] = Field(
        default_factory=list, description="Agents it serves; empty means every agent."
    )
    provider: TargetFamily | None = Field(
        default=None,
        description="Quantum only: the target family it serves; empty serves every target.",
    )


class RunnerCredentials(CredentialsBlock):
    """Where runners and maintenance flows reach the LIMIT-Graph REST API, and their key.

    Attributes:
        api_url: Base URL of the platform's REST API.
        api_key: The runner API key, sent as ``X-API-Key``.

    Example:
        ```python
        from limit_graph.blocks import RunnerCredentials

        credentials = await RunnerCredentials.aload("limit-runner")
        async with credentials.get_client() as client:
            (await client.get("/health")).raise_for_status()
        ```
    """

    _block_type_name = "LIMIT Runner Credentials"
    _block_type_slug = "limit-runner-credentials"
    _description = "The LIMIT-Graph REST API address and the runner API key that runners use."

    api_url: str = Field(default=..., description="Base URL of the LIMIT-Graph REST API.")
    api_key: SecretStr = Field(default=..., description="Runner API key (sent as X-API-Key).")

    def get_client(self, *_: Any, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client for the platform's API that sends this key; ``kwargs`` go to httpx."""
        return httpx.AsyncClient(
            base_url=self.api_url.rstrip("/"),
            headers={"X-API-Key": self.api_key.get_secret_value()},
            **kwargs,
        )


def block_document_name(instance: str) -> str:
    """The block document name for an instance (Prefect allows ``[a-z0-9-]`` only).

    >>> block_document_name("Remote_A")
    'remote-a'
    """
    slug = re.sub(r"[^a-z0-9-]+", "-", instance.lower()).strip("-")
    if not slug:
        raise ConfigError(f"backend instance name {instance!r} has no letters or digits")
    return slug


def ibm_credentials_block(instance: str) -> str:
    """The ``IBMQuantumCredentials`` block holding an instance's own IBM Quantum key.

    >>> ibm_credentials_block("IBM_East")
    'limit-ibm-instance-ibm-east'
    """
    return f"limit-ibm-instance-{block_document_name(instance)}"


def block_from_instance(name: str, instance: BackendInstance) -> BackendInstanceBlock:
    """The block that holds ``instance`` under ``name`` (its API key stays out of it)."""
    return BackendInstanceBlock(
        name=name,
        kind=instance.type.value,
        max_runners=instance.max_runners,
        capabilities=list(instance.capabilities),
        provider=instance.provider,
    )


def instance_from_block(block: BackendInstanceBlock) -> tuple[str, BackendInstance]:
    """The platform's ``(name, instance)`` for a block (validated like the TOML file)."""
    instance = BackendInstance(
        type=BackendKind(block.kind),
        max_runners=block.max_runners,
        capabilities=list(block.capabilities),
        provider=block.provider,
    )
    return block.name, instance


async def runner_endpoint(
    api_url: str | None = None, block_name: str = RUNNER_CREDENTIALS_BLOCK
) -> tuple[str, str]:
    """The platform API URL and runner key: ``api_url`` or ``LIMIT_API_URL`` and
    ``LIMIT_RUNNER_API_KEY`` (or the file ``LIMIT_RUNNER_API_KEY_FILE`` names) when set,
    else the :class:`RunnerCredentials` block.

    Workers started by ``limit up`` carry both variables, so their flow runs never
    need the block; a worker on another machine can rely on the block alone.
    """
    url = api_url or os.environ.get("LIMIT_API_URL")
    given = read_variable(os.environ, "LIMIT_RUNNER_API_KEY")
    key = given[0] if given is not None else None
    if url and key:
        return url, key
    block: object = await RunnerCredentials.aload(block_name)
    if not isinstance(block, RunnerCredentials):
        raise ConfigError(f"block {block_name!r} does not hold runner credentials")
    return url or block.api_url, key or block.api_key.get_secret_value()
