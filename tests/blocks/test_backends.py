"""Backend-instance and runner-credential blocks: conversion, and a round trip through a
real Prefect server, including how registration merges UI edits with the TOML file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.schemas.actions import BlockDocumentCreate
from pydantic import SecretStr

from limit_graph.blocks import (
    BackendInstanceBlock,
    RunnerCredentials,
    block_document_name,
    block_from_instance,
    instance_from_block,
    runner_endpoint,
)
from limit_graph.blocks.backends import ibm_credentials_block
from limit_graph.blocks.quantum.ibm import IBMQuantumCredentials
from limit_graph.core.errors import ConfigError
from limit_graph.core.models import BackendKind
from limit_graph.core.sealing import is_sealed
from limit_graph.core.settings import BackendInstance, load_settings
from limit_graph.deployments.register import (
    load_backend_blocks,
    merge_backend_instances,
    prefect_api,
    register_platform,
)
from limit_graph.deployments.server import PrefectServer

SIM = BackendInstance(
    type=BackendKind.QUANTUM, max_runners=3, capabilities=["sample"], provider="fake"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A server of this module's own, not the shared one: registration merges with every
    backend block on the server and these tests check all that it finds, from a server
    with none; and the instances they save (an IBM one, a remote ``gpu_box``) would be
    taken up by any platform registered on the same server after them."""
    with PrefectServer(home=tmp_path_factory.mktemp("prefect"), ui=False) as running:
        yield running


def test_instance_to_block_and_back_is_lossless() -> None:
    block = block_from_instance("sim_1", SIM)
    assert block.kind == "quantum" and block.name == "sim_1"
    assert instance_from_block(block) == ("sim_1", SIM)


def test_the_provider_round_trips_and_the_api_key_stays_out_of_the_block() -> None:
    keyed = BackendInstance(type=BackendKind.QUANTUM, provider="ibm", api_key=SecretStr("k-1"))
    block = block_from_instance("east", keyed)
    assert block.provider == "ibm"
    assert not {"api_key", "api_key_file"} & set(BackendInstanceBlock.model_fields)
    assert "k-1" not in block.model_dump_json()
    assert instance_from_block(block) == ("east", keyed.model_copy(update={"api_key": None}))
    assert ibm_credentials_block("East_1") == "limit-ibm-instance-east-1"


def test_block_document_names_are_prefect_slugs() -> None:
    assert block_document_name("Remote_A.1") == "remote-a-1"
    with pytest.raises(ConfigError, match="no letters or digits"):
        block_document_name("__")


def test_block_types_name_themselves_for_the_ui() -> None:
    assert BackendInstanceBlock.get_block_type_name() == "LIMIT Backend Instance"
    assert RunnerCredentials.get_block_type_name() == "LIMIT Runner Credentials"
    assert BackendInstanceBlock.get_description()
    credentials = RunnerCredentials(api_url="http://api:8080/", api_key=SecretStr("k"))
    client = credentials.get_client()
    assert str(client.base_url) == "http://api:8080" and client.headers["X-API-Key"] == "k"


async def test_backends_before_any_registration_are_none(server: PrefectServer) -> None:
    assert await load_backend_blocks(server.api_url) == {}


async def test_blocks_round_trip_through_a_real_server(server: PrefectServer) -> None:
    async with prefect_api(server.api_url) as client:
        await BackendInstanceBlock.aregister_type_and_schema(client=client)
        await RunnerCredentials.aregister_type_and_schema(client=client)
        await block_from_instance("sim", SIM).asave("round-trip", overwrite=True, client=client)
        loaded = await BackendInstanceBlock.aload("round-trip", client=client)
        secret = RunnerCredentials(api_url="http://10.0.0.5:8080", api_key=SecretStr("lgr_s3"))
        await secret.asave("creds-round-trip", overwrite=True, client=client)
        creds = await RunnerCredentials.aload("creds-round-trip", client=client)
    assert instance_from_block(loaded) == ("sim", SIM)
    assert creds.api_url == "http://10.0.0.5:8080"
    assert creds.api_key.get_secret_value() == "lgr_s3"


async def test_registration_keeps_ui_edits_but_the_file_wins(
    server: PrefectServer, tmp_path: Path
) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(
        '[backends.sim]\ntype = "quantum"\nmax_runners = 2\n'
        '[backends.remote_a]\ntype = "remote"\nmax_runners = 2\n'
    )
    settings = load_settings(config, environ={}, home=str(tmp_path / "home"))
    url, key = "http://127.0.0.1:8080", "lgr_registered"

    first = await register_platform(settings, server.api_url, platform_url=url, runner_key=key)
    # Quantum and remote have instances in the file: only `local` gets a default block.
    assert sorted(first.blocks) == ["limit-runner", "local", "remote-a", "sim"]
    assert first.work_pools == ["local", "remote", "quantum"]

    async with prefect_api(server.api_url) as client:  # edits made "in the UI"
        edited_sim = block_from_instance("sim", SIM.model_copy(update={"max_runners": 9}))
        await edited_sim.asave("sim", overwrite=True, client=client)
        edited_local = BackendInstance(type=BackendKind.LOCAL, max_runners=7)
        await block_from_instance("local", edited_local).asave(
            "local", overwrite=True, client=client
        )
        gpu = BackendInstance(type=BackendKind.REMOTE, capabilities=["train"])
        await block_from_instance("gpu_box", gpu).asave("gpu-box", client=client)

    await register_platform(settings, server.api_url, platform_url=url, runner_key=key)
    from_blocks = await load_backend_blocks(server.api_url)
    assert from_blocks["sim"].max_runners == 2  # the file's value came back
    assert from_blocks["local"].max_runners == 7  # a default edited in the UI stays edited
    assert from_blocks["gpu_box"] == gpu  # added in the UI, named as the block says
    assert from_blocks["remote_a"].max_runners == 2

    merged = merge_backend_instances(settings.backends.instances, from_blocks)
    assert merged["sim"] == settings.backends.instances["sim"]
    assert merged["gpu_box"] == gpu and merged["local"].max_runners == 7


async def test_registration_saves_each_instances_ibm_key_in_a_credentials_block(
    server: PrefectServer, tmp_path: Path
) -> None:
    """The documented ``[backends.quantum]`` table, with its key from the environment:
    registration saves it where the instance's runners sign in, keeps what the UI added
    to that block, and saves no block for an instance without a key."""
    config = tmp_path / "limit.toml"
    config.write_text(
        '[backends.quantum]\ntype = "quantum"\nprovider = "ibm"\n'
        '[backends.sim]\ntype = "quantum"\nprovider = "aer"\n'
    )
    environ = {"LIMIT_BACKEND_QUANTUM_API_KEY": "ibm-key-one"}
    settings = load_settings(config, environ=environ, home=str(tmp_path / "home"))
    url, key = "http://127.0.0.1:8080", "lgr_registered"

    done = await register_platform(settings, server.api_url, platform_url=url, runner_key=key)
    assert "limit-ibm-instance-quantum" in done.blocks
    assert "limit-ibm-instance-sim" not in done.blocks
    async with prefect_api(server.api_url) as client:
        saved = await IBMQuantumCredentials.aload("limit-ibm-instance-quantum", client=client)
        assert is_sealed(saved.api_key.get_secret_value())  # Prefect holds its ciphertext
        assert saved.plain_api_key() == "ibm-key-one"
        crn = "crn:v1:bluemix:public:quantum-computing:us-east:a/1:2::"
        edited = saved.model_copy(update={"instance": SecretStr(crn)})  # as in the UI
        await edited.asave("limit-ibm-instance-quantum", overwrite=True, client=client)
        instance_block = await BackendInstanceBlock.aload("quantum", client=client)

    environ = {"LIMIT_BACKEND_QUANTUM_API_KEY": "ibm-key-two"}  # the key was rotated
    settings = load_settings(config, environ=environ, home=str(tmp_path / "home"))
    await register_platform(settings, server.api_url, platform_url=url, runner_key=key)
    async with prefect_api(server.api_url) as client:
        again = await IBMQuantumCredentials.aload("limit-ibm-instance-quantum", client=client)
    assert again.plain_api_key() == "ibm-key-two"
    assert again.instance is not None and again.instance.get_secret_value() == crn
    assert instance_block.provider == "ibm"
    assert "ibm-key" not in instance_block.model_dump_json()


async def test_an_old_block_field_without_an_effect_is_named_in_a_warning(
    server: PrefectServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with prefect_api(server.api_url) as client:  # a block saved by an older schema
        await BackendInstanceBlock.aregister_type_and_schema(client=client)
        slug = BackendInstanceBlock.get_block_type_slug()
        block_type = await client.read_block_type_by_slug(slug)
        schema = await client.get_most_recent_block_schema_for_block_type(block_type.id)
        assert schema is not None
        data = {"name": "old_box", "kind": "remote", "workers": 3, "url": "http://x"}
        await client.create_block_document(
            BlockDocumentCreate(
                name="old-box", data=data, block_schema_id=schema.id, block_type_id=block_type.id
            )
        )
    with caplog.at_level("WARNING", logger="limit_graph.deployments"):
        found = await load_backend_blocks(server.api_url)
    assert found["old_box"] == BackendInstance(type=BackendKind.REMOTE)
    assert "backend instance block 'old-box': url, workers has no effect" in caplog.text


async def test_runner_endpoint_prefers_the_environment_then_the_block(
    server: PrefectServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LIMIT_API_URL", raising=False)
    monkeypatch.delenv("LIMIT_RUNNER_API_KEY", raising=False)
    async with prefect_api(server.api_url) as client:
        await RunnerCredentials.aregister_type_and_schema(client=client)
        await RunnerCredentials(api_url="http://block:8080", api_key=SecretStr("from-block")).asave(
            "limit-runner", overwrite=True, client=client
        )
        assert await runner_endpoint() == ("http://block:8080", "from-block")
        monkeypatch.setenv("LIMIT_RUNNER_API_KEY", "from-env")
        assert await runner_endpoint() == ("http://block:8080", "from-env")
        monkeypatch.setenv("LIMIT_API_URL", "http://env:8080")
        assert await runner_endpoint() == ("http://env:8080", "from-env")
        held = tmp_path / "runner.key"
        held.write_text("from-file\n", encoding="utf-8")
        monkeypatch.delenv("LIMIT_RUNNER_API_KEY")
        monkeypatch.setenv("LIMIT_RUNNER_API_KEY_FILE", str(held))
        assert await runner_endpoint() == ("http://env:8080", "from-file")
        monkeypatch.setenv("LIMIT_RUNNER_API_KEY", "from-env")
        with pytest.raises(
            ConfigError, match="set LIMIT_RUNNER_API_KEY or LIMIT_RUNNER_API_KEY_FILE"
        ):
            await runner_endpoint()


async def test_an_unreachable_prefect_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot reach the Prefect API at http://127.0.0.1:9"):
        await load_backend_blocks("http://127.0.0.1:9/api")
