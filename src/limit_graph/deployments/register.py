"""Register the platform with a Prefect API: block types, blocks, work pools, deployments.

``limit prefect register`` and ``limit up`` call :func:`register_platform`; the platform
calls :func:`load_backend_blocks` to see backend instances added or edited in the
Prefect UI.  Which copy of an instance wins:

- an instance named in the TOML file (``[backends.<name>]``) is saved to its block on
  every registration, so the file wins on a name clash;
- a default instance (``local``, ``remote``, ``aer`` for quantum: one for each kind the
  file leaves without an instance) is saved only when its block is missing, so edits
  made in the UI stick;
- an instance created in the UI is kept and used as it is.

An instance with an IBM Quantum API key (``provider = "ibm"``) also gets an
``IBMQuantumCredentials`` block named by
:func:`~limit_graph.blocks.backends.ibm_credentials_block`, which its runners sign in
with: the file's key wins, the block's other fields (instance CRN, URLs) edited in the
UI are kept.  The key is in that block only, never logged.

>>> # asyncio.run(register_platform(settings, "http://127.0.0.1:4200/api",
>>> #                               platform_url="http://127.0.0.1:8080", runner_key=key))
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr, ValidationError

from limit_graph.blocks.backends import (
    RUNNER_CREDENTIALS_BLOCK,
    BackendInstanceBlock,
    RunnerCredentials,
    block_document_name,
    block_from_instance,
    ibm_credentials_block,
    instance_from_block,
)
from limit_graph.blocks.quantum import AerTarget, FakeDeviceTarget
from limit_graph.blocks.quantum.ibm import IBMQuantumCredentials, IBMRuntimeTarget
from limit_graph.core.errors import ConfigError
from limit_graph.core.models import BackendKind
from limit_graph.core.settings import BackendInstance, Settings
from limit_graph.deployments.apply import (
    WORK_POOLS,
    apply_deployments,
    check_work_pool_types,
    ensure_work_pools,
)
from limit_graph.deployments.kubernetes import KubernetesJobOptions
from limit_graph.deployments.pools import PoolType

__all__ = [
    "DEFAULT_INSTANCES",
    "Registration",
    "load_backend_blocks",
    "merge_backend_instances",
    "prefect_api",
    "register_platform",
]

log = logging.getLogger("limit_graph.deployments")

DEFAULT_INSTANCES: Mapping[str, BackendInstance] = {
    "local": BackendInstance(type=BackendKind.LOCAL),
    "remote": BackendInstance(type=BackendKind.REMOTE),
    "aer": BackendInstance(type=BackendKind.QUANTUM),
}


@dataclass(frozen=True)
class Registration:
    """The platform's block documents, work pools and deployments after a registration."""

    blocks: list[str]
    work_pools: list[str]
    deployments: list[str]


@asynccontextmanager
async def prefect_api(api_url: str) -> AsyncIterator[PrefectClient]:
    """A Prefect client for ``api_url``, which Prefect helpers in the block also use.

    An API that does not answer its health check is a :class:`ConfigError` saying so.
    """
    url = api_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=5.0) as probe:
            (await probe.get(f"{url}/health")).raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"cannot reach the Prefect API at {url} ({type(exc).__name__}: {exc}); "
            "start it (`limit up` does, or `prefect server start`) or set PREFECT_API_URL"
        ) from None
    with temporary_settings(updates={PREFECT_API_URL: url}):
        async with get_client() as client:
            yield client


def _instances_to_save(settings: Settings) -> tuple[dict[str, BackendInstance], list[str]]:
    """The file's instances (always saved) and the defaults' names (saved when missing)."""
    configured = dict(settings.backends.instances)
    kinds = {instance.type for instance in configured.values()}
    defaults = [
        name
        for name, instance in DEFAULT_INSTANCES.items()
        if instance.type not in kinds and name not in configured
    ]
    return configured, defaults


async def _block_documents(client: PrefectClient, slug: str) -> dict[str, object]:
    """Named block documents of a type, by name (the server answers all of them at once);
    none when the type is not registered yet."""
    try:
        documents = await client.read_block_documents_by_type(slug)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return {}
        raise
    return {d.name: d.data for d in documents if d.name and not d.is_anonymous}


async def _save_backend_blocks(client: PrefectClient, settings: Settings) -> list[str]:
    configured, defaults = _instances_to_save(settings)
    slug = BackendInstanceBlock.get_block_type_slug()
    existing = await _block_documents(client, slug)
    names = []
    for name, instance in configured.items():
        document = block_document_name(name)
        await block_from_instance(name, instance).asave(document, overwrite=True, client=client)
        names.append(document)
    for name in defaults:
        if name not in existing:
            await block_from_instance(name, DEFAULT_INSTANCES[name]).asave(name, client=client)
        names.append(name)
    return names


async def _save_ibm_credentials(client: PrefectClient, settings: Settings) -> list[str]:
    """An ``IBMQuantumCredentials`` block per instance with an API key; its key is the
    file's, anything else already in the block stays."""
    keyed = {n: i for n, i in settings.backends.instances.items() if i.api_key is not None}
    if not keyed:
        return []
    existing = await _block_documents(client, IBMQuantumCredentials.get_block_type_slug())
    names = []
    for name, instance in keyed.items():
        document = ibm_credentials_block(name)
        saved = existing.get(document)
        block = (
            IBMQuantumCredentials.model_validate(saved).model_copy(
                update={"api_key": instance.api_key}
            )
            if isinstance(saved, dict)
            else IBMQuantumCredentials(api_key=instance.api_key)
        )
        await block.asave(document, overwrite=True, client=client)
        names.append(document)
    return names


async def register_platform(
    settings: Settings,
    api_url: str,
    *,
    platform_url: str,
    runner_key: str,
    pool_type: PoolType = PoolType.PROCESS,
    kubernetes: KubernetesJobOptions | None = None,
) -> Registration:
    """Register block types, save the backend and runner-credential blocks, create the
    work pools (``pool_type`` pools; ``kubernetes``: their Jobs' image and namespace) and
    apply the deployments, all idempotently.

    A pool that cannot become a ``pool_type`` pool is a :class:`ConfigError` raised before
    anything is written.
    """
    async with prefect_api(api_url) as client:
        await check_work_pool_types(client, pool_type)
        await BackendInstanceBlock.aregister_type_and_schema(client=client)
        await RunnerCredentials.aregister_type_and_schema(client=client)
        for target_block in (AerTarget, FakeDeviceTarget, IBMQuantumCredentials, IBMRuntimeTarget):
            await target_block.aregister_type_and_schema(client=client)
        blocks = await _save_backend_blocks(client, settings)
        blocks += await _save_ibm_credentials(client, settings)
        credentials = RunnerCredentials(api_url=platform_url, api_key=SecretStr(runner_key))
        await credentials.asave(RUNNER_CREDENTIALS_BLOCK, overwrite=True, client=client)
        blocks.append(RUNNER_CREDENTIALS_BLOCK)
        await ensure_work_pools(client, pool_type=pool_type, kubernetes=kubernetes)
        deployments = await apply_deployments()
    return Registration(blocks, list(WORK_POOLS), deployments)


async def load_backend_blocks(api_url: str) -> dict[str, BackendInstance]:
    """Every saved :class:`BackendInstanceBlock`, by instance name.

    A block that no longer validates (edited by hand into nonsense) is skipped with a
    warning, and so are fields a block holds that have no effect; an API where the block
    type is not registered yet has none.
    """
    found: dict[str, BackendInstance] = {}
    async with prefect_api(api_url) as client:
        documents = await _block_documents(client, BackendInstanceBlock.get_block_type_slug())
    for document, data in documents.items():
        try:
            block = BackendInstanceBlock.model_validate(data)
            name, instance = instance_from_block(block)
        except ValidationError as exc:
            log.warning("backend instance block %r is invalid, skipped: %s", document, exc)
            continue
        if block.model_extra:  # saved before those fields were dropped (workers, url, ...)
            log.warning(
                "backend instance block %r: %s has no effect and is ignored",
                document,
                ", ".join(sorted(block.model_extra)),
            )
        found[name] = instance
    return found


def merge_backend_instances(
    configured: Mapping[str, BackendInstance], from_blocks: Mapping[str, BackendInstance]
) -> dict[str, BackendInstance]:
    """Instances from blocks and from the file; the file wins on a name clash."""
    return {**from_blocks, **configured}
