"""The kubernetes work pools' base job template against prefect-kubernetes' worker, the
Kubernetes schemas and the manifests, and its registration on a real Prefect server."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from prefect.client.schemas.actions import WorkPoolUpdate
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.templating import find_placeholders
from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

from limit_graph.core.errors import ConfigError
from limit_graph.deployments.apply import WORK_POOLS, base_job_template, ensure_work_pools
from limit_graph.deployments.kubernetes import (
    IMAGE_UID,
    RUNNER_KEY,
    KubernetesJobOptions,
    kubernetes_job_template,
)
from limit_graph.deployments.pools import PoolType
from limit_graph.deployments.register import prefect_api
from limit_graph.deployments.server import PrefectServer
from tests.fixtures.cli import clean_env, run_limit
from tests.fixtures.manifests import k8s_objects
from tests.fixtures.prefect import block_documents, unique_name

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.31.0"
OURS = {"runner_key_secret", "platform_api_url", "prefect_api_url"}
"""Variables of ours that Prefect's default template does not have."""


OBJECTS = k8s_objects()


@pytest.mark.parametrize("pool", WORK_POOLS)
def test_the_variables_are_a_json_schema_our_defaults_satisfy(pool: str) -> None:
    variables = kubernetes_job_template(pool)["variables"]
    validator = jsonschema.validators.validator_for(variables)
    validator.check_schema(variables)
    defaults = {k: v["default"] for k, v in variables["properties"].items() if "default" in v}
    assert not list(validator(variables).iter_errors(defaults))
    broken = {**defaults, "image_pull_policy": "Sometimes", "backoff_limit": -1}
    assert len(list(validator(variables).iter_errors(broken))) == 2


def test_the_variables_are_prefects_with_ours_beside_them() -> None:
    prefect = KubernetesWorker.get_default_base_job_template()["variables"]["properties"]
    ours = kubernetes_job_template("local")["variables"]["properties"]
    assert set(ours) - set(prefect) == OURS
    for name in set(ours) & set(prefect):
        schema = prefect[name]
        kinds = {schema.get("type")} | {a.get("type") for a in schema.get("anyOf", [])}
        assert ours[name]["type"] in kinds, f"{name}: {ours[name]['type']} is not {kinds}"


@pytest.mark.parametrize("pool", WORK_POOLS)
def test_every_placeholder_names_a_declared_variable(pool: str) -> None:
    template = kubernetes_job_template(pool)
    names = {p.name for p in find_placeholders(template["job_configuration"])}
    declared = set(template["variables"]["properties"])
    assert names <= declared, f"undeclared: {names - declared}"
    assert declared <= names, f"declared but unused: {declared - names}"


def test_the_quantum_pool_gets_more_memory() -> None:
    def limit(pool: str) -> str:
        default: str = kubernetes_job_template(pool)["variables"]["properties"]["memory_limit"][
            "default"
        ]
        return default

    assert limit("quantum") == "4Gi" and limit("local") == limit("remote") == "2Gi"


def test_bad_options_are_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match="not a Kubernetes namespace name"):
        KubernetesJobOptions(namespace="Limit_Graph")
    with pytest.raises(ConfigError, match="not an image reference"):
        KubernetesJobOptions(image="limit graph")


@pytest.fixture
def on_server(prefect_server: PrefectServer) -> Iterator[str]:
    """The shared server: resolving a template's values reads blocks through a client."""
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server.api_url


async def _prepared(
    template: dict[str, Any], values: dict[str, Any] | None = None
) -> KubernetesWorkerJobConfiguration:
    configuration = await KubernetesWorkerJobConfiguration.from_template_and_values(
        template, values or {}
    )
    configuration.prepare_for_flow_run(FlowRun(flow_id=uuid.uuid4(), name="brave-fox"))
    return configuration


def _strictly_valid(manifest: dict[str, Any]) -> None:
    """The Job validates strictly, but for the two fields the worker's manifest check
    requires in the pod spec (the API server drops them)."""
    manifest = copy.deepcopy(manifest)
    pod = manifest["spec"]["template"]["spec"]
    assert (pod.pop("parallelism"), pod.pop("completions")) == (1, 1)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


@pytest.mark.parametrize("pool", WORK_POOLS)
async def test_the_worker_makes_a_valid_job_of_it(on_server: str, pool: str) -> None:
    del on_server
    configuration = await _prepared(kubernetes_job_template(pool))
    manifest = configuration.job_manifest
    _strictly_valid(manifest)
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    pod = manifest["spec"]["template"]["spec"]
    env = {v["name"]: v for v in container["env"]}
    options = KubernetesJobOptions()
    assert env["LIMIT_API_URL"]["value"] == options.platform_api_url
    assert env["PREFECT_API_URL"]["value"] == options.prefect_api_url, "ours wins the worker's"
    assert env[RUNNER_KEY]["valueFrom"]["secretKeyRef"] == {
        "name": "limit-graph-secrets",
        "key": RUNNER_KEY,
    }
    assert "value" not in env[RUNNER_KEY], "the key is never in the template"
    assert "PREFECT__FLOW_RUN_ID" in env and container["args"][:2] == ["prefect", "flow-run"]
    assert manifest["metadata"]["namespace"] == configuration.namespace == "limit-graph"
    assert manifest["metadata"]["labels"]["limit-graph/pool"] == pool
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert pod["automountServiceAccountToken"] is False


async def test_job_variables_override_the_defaults(on_server: str) -> None:
    del on_server
    values = {"image": "limit-graph:9.9.9", "memory_limit": "8Gi", "namespace": "lab"}
    manifest = (await _prepared(kubernetes_job_template("remote"), values)).job_manifest
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "limit-graph:9.9.9"
    assert container["resources"]["limits"]["memory"] == "8Gi"
    assert manifest["metadata"]["namespace"] == "lab"


async def test_the_worker_refuses_a_template_without_its_container(on_server: str) -> None:
    del on_server
    template = kubernetes_job_template("local")
    template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0][
        "name"
    ] = "runner"
    with pytest.raises(ValueError, match="incompatible values"):
        await _prepared(template)


def test_the_job_agrees_with_the_manifests() -> None:
    """The image, Secret, ServiceAccount and namespace the Jobs use are those of docker/k8s."""
    properties = kubernetes_job_template("local")["variables"]["properties"]
    api = OBJECTS[("Deployment", "limit-graph-api")]["spec"]["template"]["spec"]
    assert properties["image"]["default"] == api["containers"][0]["image"]
    assert (
        properties["namespace"]["default"]
        == OBJECTS[("Namespace", "limit-graph")]["metadata"]["name"]
    )
    secret = OBJECTS[("Secret", properties["runner_key_secret"]["default"])]
    assert RUNNER_KEY in secret["stringData"]
    account = OBJECTS[("ServiceAccount", properties["service_account_name"]["default"])]
    assert account["automountServiceAccountToken"] is False


# --------------------------------------------------------------------------- registration


async def test_kubernetes_pools_are_created_and_get_the_template_again(
    prefect_server: PrefectServer,
) -> None:
    names = (unique_name("k8s-local"), unique_name("k8s-quantum"))
    async with prefect_api(prefect_server.api_url) as client:
        await ensure_work_pools(client, names, PoolType.KUBERNETES)
        for name in names:
            pool = await client.read_work_pool(name)
            assert pool.type == "kubernetes"
            assert pool.base_job_template == kubernetes_job_template(name)
        edited = kubernetes_job_template(names[0], KubernetesJobOptions(image="old:1"))
        await client.update_work_pool(names[0], WorkPoolUpdate(base_job_template=edited))
        await ensure_work_pools(client, names, PoolType.KUBERNETES)
        pool = await client.read_work_pool(names[0])
        assert pool.base_job_template == kubernetes_job_template(names[0])


async def test_a_process_pool_is_not_made_a_kubernetes_pool(prefect_server: PrefectServer) -> None:
    process, fresh = unique_name("process"), unique_name("fresh")
    async with prefect_api(prefect_server.api_url) as client:
        await ensure_work_pools(client, (process,))
        with pytest.raises(ConfigError, match=rf"'{process}' is a process pool"):
            await ensure_work_pools(client, (fresh, process), PoolType.KUBERNETES)
        assert (await client.read_work_pool(process)).type == "process"
        names = {p.name for p in await client.read_work_pools()}
    assert fresh not in names, "nothing was created before the refusal"


def test_process_stays_the_default_template() -> None:
    template = base_job_template(PoolType.PROCESS, "local")
    assert "job_manifest" not in template["job_configuration"]


def _cli_env(home: Path) -> dict[str, str]:
    return clean_env(
        LIMIT_MODE="dev",
        LIMIT_HOME=str(home),
        LIMIT_ADMIN_API_KEY="test-admin-key-0123456789abcdef",
        LIMIT_STORAGE="memory",
    )


async def test_the_cli_refuses_to_retype_the_shared_servers_pools(
    scratch_blocks: PrefectServer, tmp_path: Path
) -> None:
    """On the shared server the platform's pools are process pools (other tests run
    process workers on them): registering them as kubernetes pools fails, writing nothing
    (the blocks it would save are compared while no other test registers any)."""
    url = scratch_blocks.api_url
    async with prefect_api(url) as client:
        await ensure_work_pools(client)
        assert {(await client.read_work_pool(n)).type for n in WORK_POOLS} == {"process"}
    before = block_documents(url)
    done = run_limit(
        "prefect", "register", "--pool-type", "kubernetes", "--prefect-api-url", url,
        cwd=tmp_path, env={**_cli_env(tmp_path / "home"), "COLUMNS": "200"},
    )  # fmt: skip
    message = " ".join(done.stderr.split())
    assert done.returncode != 0
    assert "'local' is a process pool" in message and "prefect work-pool delete" in message
    assert block_documents(url) == before, "no block written"
    async with prefect_api(url) as client:
        assert {(await client.read_work_pool(n)).type for n in WORK_POOLS} == {"process"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pool-type", "docker"], "'docker' is not one of 'process', 'kubernetes'"),
        (["--pool-type", "kubernetes", "--namespace", "Lab_1"], "not a Kubernetes namespace"),
    ],
)
def test_the_cli_names_a_bad_option(
    args: list[str], message: str, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    done = run_limit(
        "prefect", "register", *args, "--prefect-api-url", prefect_server.api_url,
        cwd=tmp_path, env={**_cli_env(tmp_path / "home"), "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode != 0
    assert message in " ".join(done.stderr.split()), done.stderr


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A server of its own: registering the platform's pools as kubernetes pools would
    turn the shared server's local/remote/quantum pools, which other tests run process
    workers on, into kubernetes pools."""
    with PrefectServer(home=tmp_path_factory.mktemp("prefect-k8s"), ui=False) as server:
        yield server


async def test_register_with_pool_type_kubernetes_makes_kubernetes_pools(
    own_server: PrefectServer, tmp_path: Path
) -> None:
    image = "limit-graph:1.2.3"
    done = run_limit(
        "prefect", "register", "--pool-type", "kubernetes", "--image", image,
        "--prefect-api-url", own_server.api_url,
        cwd=tmp_path, env=_cli_env(tmp_path / "home"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(kubernetes)" in done.stdout
    async with prefect_api(own_server.api_url) as client:
        for name in WORK_POOLS:
            pool = await client.read_work_pool(name)
            assert pool.type == "kubernetes", name
            expected = kubernetes_job_template(name, KubernetesJobOptions(image=image))
            assert pool.base_job_template == expected, name
        deployments = {d.name: d.work_pool_name for d in await client.read_deployments()}
    assert {deployments[name] for name in WORK_POOLS} == set(WORK_POOLS)
    again = run_limit(
        "prefect", "register", "--prefect-api-url", own_server.api_url,
        cwd=tmp_path, env=_cli_env(tmp_path / "home"),
    )  # fmt: skip
    assert again.returncode == 0, "a process registration (limit up's) keeps them"
    async with prefect_api(own_server.api_url) as client:
        assert {(await client.read_work_pool(n)).type for n in WORK_POOLS} == {"kubernetes"}
