"""The IBM credentials block's API key reaches Prefect sealed under the platform's KEK:
Prefect holds (and serves, secrets included) only its ciphertext; the block opens it
for its client; a key saved before sealing, or typed into the UI, still reads; a sealed
key copied to another block does not open there; a target block never carries unsaved
credentials (their key in the clear) into its own document."""

from __future__ import annotations

import base64
import os
import secrets

import pytest
from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from limit_graph.blocks.quantum.ibm import IBMQuantumCredentials, IBMRuntimeTarget
from limit_graph.core.errors import ConfigError, SealError
from limit_graph.core.sealing import is_sealed
from limit_graph.deployments.register import prefect_api
from limit_graph.deployments.server import PrefectServer
from tests.fixtures.prefect import unique_name

SLUG = IBMQuantumCredentials.get_block_type_slug()


async def test_the_api_key_is_saved_sealed_and_opened_by_the_block(
    scratch_blocks: PrefectServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"ibm-key-{secrets.token_hex(8)}"
    name, other = unique_name("sealed-creds"), unique_name("copied-creds")
    async with prefect_api(scratch_blocks.api_url) as client:
        await IBMQuantumCredentials(api_key=SecretStr(key)).asave(name, client=client)
        stored = await client.read_block_document_by_name(name, SLUG, include_secrets=True)
        held = stored.data["api_key"]
        assert is_sealed(held) and key not in str(stored.data)
        loaded = await IBMQuantumCredentials.aload(name, client=client)
        assert loaded.plain_api_key() == key

        await loaded.asave(other, client=client)  # saved again under another name
        moved = await client.read_block_document_by_name(other, SLUG, include_secrets=True)
        assert moved.data["api_key"] != held
        assert (await IBMQuantumCredentials.aload(other, client=client)).plain_api_key() == key

        # The first block's ciphertext, copied by hand into the second: bound to its name.
        update = BlockDocumentUpdate(data={**moved.data, "api_key": held})
        await client.update_block_document(moved.id, update)
        copied = await IBMQuantumCredentials.aload(other, client=client)
        with pytest.raises(SealError, match="moved there from another record"):
            copied.plain_api_key()

        monkeypatch.setenv("LIMIT_DATA_KEK", base64.b64encode(os.urandom(32)).decode())
        with pytest.raises(SealError, match="does not hold"):
            loaded.plain_api_key()  # a runner given another KEK
        monkeypatch.delenv("LIMIT_DATA_KEK")
        monkeypatch.setenv("LIMIT_MODE", "prod")
        with pytest.raises(ConfigError, match="LIMIT_DATA_KEK or LIMIT_DATA_KEK_FILE"):
            loaded.plain_api_key()  # a runner given none


async def test_a_key_saved_in_the_clear_before_reads_and_is_sealed_when_saved_again(
    scratch_blocks: PrefectServer,
) -> None:
    key = f"ui-key-{secrets.token_hex(8)}"
    name = unique_name("plain-creds")
    async with prefect_api(scratch_blocks.api_url) as client:
        await IBMQuantumCredentials.aregister_type_and_schema(client=client)
        # As a block saved before sealing (or typed into the UI) holds it: in the clear.
        await client.create_block_document(
            BlockDocumentCreate(
                name=name,
                data={"api_key": key, "channel": "ibm_quantum_platform"},
                block_schema_id=IBMQuantumCredentials._block_schema_id,
                block_type_id=IBMQuantumCredentials._block_type_id,
            )
        )
        legacy = await IBMQuantumCredentials.aload(name, client=client)
        assert legacy.plain_api_key() == key
        await legacy.asave(name, overwrite=True, client=client)
        stored = await client.read_block_document_by_name(name, SLUG, include_secrets=True)
        assert is_sealed(stored.data["api_key"])
        again = await IBMQuantumCredentials.aload(name, client=client)
        assert again.plain_api_key() == key


async def test_a_target_with_unsaved_credentials_is_not_saved_and_saved_ones_stay_sealed(
    scratch_blocks: PrefectServer,
) -> None:
    key = f"nested-key-{secrets.token_hex(8)}"
    name = unique_name("target")
    target_slug = IBMRuntimeTarget.get_block_type_slug()
    async with prefect_api(scratch_blocks.api_url) as client:
        inline = IBMQuantumCredentials(api_key=SecretStr(key))
        with pytest.raises(ConfigError, match="save the IBM Quantum credentials"):
            await IBMRuntimeTarget(backend_name="ibm_test", credentials=inline).asave(
                name, client=client
            )
        with pytest.raises(ObjectNotFound):
            await client.read_block_document_by_name(name, target_slug)

        saved = IBMQuantumCredentials(api_key=SecretStr(key))
        await saved.asave(unique_name("target-creds"), client=client)
        await IBMRuntimeTarget(backend_name="ibm_test", credentials=saved).asave(
            name, client=client
        )
        stored = await client.read_block_document_by_name(name, target_slug, include_secrets=True)
        assert key not in str(stored.data) and is_sealed(stored.data["credentials"]["api_key"])
        loaded = await IBMRuntimeTarget.aload(name, client=client)
        assert loaded.credentials is not None and loaded.credentials.plain_api_key() == key
