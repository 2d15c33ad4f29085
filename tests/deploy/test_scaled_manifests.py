"""The scaled-out shape of docker/ (compose and Kubernetes) against the code it runs.

Prefect's server as its self-hosted scaling guide has it (API replicas with
``--no-services``, one ``prefect server services start``, Redis through prefect-redis), the
platform's API replicas with an autoscaler and a disruption budget, kubernetes workers with
the RBAC their calls need: every setting these files set is one the installed Prefect (or
its integration) or the platform reads, every command they run exists with the options they
pass, every pool they name is a work pool of ``deployments/apply.py``, every host they reach
is a service they define, and the worker's Role holds exactly what prefect-kubernetes calls.
"""

from __future__ import annotations

import functools
import inspect
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prefect_kubernetes import observer as k8s_observer
from prefect_kubernetes import worker as k8s_worker
from prefect_kubernetes.settings import KubernetesSettings
from prefect_redis.client import RedisMessagingSettings

from limit_graph.core.settings import ENVIRONMENT_VARIABLES, FILE_VARIABLES
from limit_graph.deployments.apply import WORK_POOLS
from limit_graph.deployments.kubernetes import (
    API_SERVICE,
    PREFECT_SERVICE,
    RUNNER_SERVICE_ACCOUNT,
    KubernetesJobOptions,
)
from limit_graph.deployments.pools import PoolType
from tests.fixtures.manifests import K8S, k8s_objects

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
KUSTOMIZATION = DOCKER / "kustomization.yaml"
LIMIT_TOML = DOCKER / "limit-graph.toml"
NAMESPACE = "limit-graph"
BIN = Path(sys.executable).parent

RUNNER_VARIABLES = {"LIMIT_API_URL"}
"""Read by the runners and the CLI (``cli/runner_cmd.py``, ``flows/``), not by the settings."""
IMAGE_VARIABLES = {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD", "PGDATA"}
"""The postgres image's own variables."""
OTHER_TOOLS = {
    "GX_ANALYTICS_ENABLED",
    "DO_NOT_TRACK",
    # Grafana's own (its configuration's [analytics] section as GF_ variables)
    "GF_ANALYTICS_REPORTING_ENABLED",
    "GF_ANALYTICS_CHECK_FOR_UPDATES",
}


OBJECTS = k8s_objects()
SERVICES: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))[
    "services"
]


def _pods() -> Iterator[tuple[str, dict[str, Any]]]:
    for (kind, name), document in OBJECTS.items():
        if kind in ("Deployment", "StatefulSet", "Job"):
            yield name, document["spec"]["template"]["spec"]


def _containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, pod in _pods():
        for container in (*pod.get("initContainers", []), *pod["containers"]):
            yield f"{name}/{container['name']}", container


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def _k8s_variables() -> dict[str, str]:
    """Every variable a manifest sets (a Secret's value is a placeholder: ``secret``)."""
    found: dict[str, str] = {}
    for where, container in _containers():
        for source in container.get("envFrom", []):
            config = OBJECTS[("ConfigMap", source["configMapRef"]["name"])]
            found.update(config["data"])
        for variable in container.get("env", []):
            found[variable["name"]] = variable.get("value", f"secret ({where})")
    return found


def _compose_variables() -> dict[str, str]:
    found: dict[str, str] = {}
    for service in SERVICES.values():
        found.update(_env(service))
    return found


def _set_leaves(settings: Any) -> set[str]:
    def leaves(tree: dict[str, Any], prefix: str) -> Iterator[str]:
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    return set(leaves(settings.model_dump(exclude_unset=True), ""))


PREFECT_SETTINGS = (
    ("prefect", lambda: __import__("prefect.settings").settings.Settings()),
    ("prefect-redis", RedisMessagingSettings),
    ("prefect-kubernetes", KubernetesSettings),
)


def _reads(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The settings models (Prefect's, its integrations') that take ``name=value``."""
    readers = []
    for owner, model in PREFECT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
        before = _set_leaves(model())
        monkeypatch.setenv(name, value)
        if _set_leaves(model()) - before:
            readers.append(owner)
    monkeypatch.delenv(name, raising=False)
    return readers


@pytest.mark.parametrize(
    "name", sorted({*_compose_variables(), *_k8s_variables()} - RUNNER_VARIABLES)
)
def test_every_variable_is_a_setting_someone_reads(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {**_compose_variables(), **_k8s_variables()}
    if name.startswith("PREFECT_"):
        value = values[name]
        if value.startswith(("secret", "${")):  # the database URLs, secret or interpolated
            value = "postgresql+asyncpg://u:p@postgres:5432/prefect"
        readers = _reads(name, value, monkeypatch)
        assert readers, f"{name}: no setting of prefect, prefect-redis or prefect-kubernetes"
        return
    documented = {*ENVIRONMENT_VARIABLES, *(f"{v}_FILE" for v in FILE_VARIABLES), "LIMIT_CONFIG"}
    assert name in documented | IMAGE_VARIABLES | OTHER_TOOLS, f"{name}: not a documented variable"


def test_the_setting_check_fails_on_a_misspelt_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _reads("PREFECT_MESSAGING_BROKER", "prefect_redis.messaging", monkeypatch)
    assert not _reads("PREFECT_MESSAGIN_BROKER", "prefect_redis.messaging", monkeypatch)


SCALING = {
    "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
    "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
    "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
}
"""Prefect's self-hosted scaling guide: Redis for messaging, ordering and leases."""


def test_prefect_server_is_configured_as_the_scaling_guide_says() -> None:
    import importlib

    k8s = OBJECTS[("ConfigMap", "limit-graph-prefect-config")]["data"]
    for name in ("prefect-server", "prefect-services", "prefect-server-migrate"):
        env = _env(SERVICES[name])
        assert SCALING.items() <= env.items(), name
        assert env["PREFECT_REDIS_MESSAGING_HOST"] == "prefect-redis"
        assert urlsplit(env["PREFECT_SERVER_DOCKET_URL"]).hostname == "prefect-redis"
    assert SCALING.items() <= k8s.items()
    for module in set(SCALING.values()) - {"false"}:
        importlib.import_module(module)  # the image carries prefect-redis (the scale extra)
    assert k8s["PREFECT_REDIS_MESSAGING_HOST"].split(".")[0] == "prefect-redis"
    assert ("Service", "prefect-redis") in OBJECTS
    docket = urlsplit(k8s["PREFECT_SERVER_DOCKET_URL"])
    assert docket.hostname is not None and ("Service", docket.hostname.split(".")[0]) in OBJECTS
    assert docket.path != "/" + k8s["PREFECT_REDIS_MESSAGING_DB"], "Docket in its own database"


def _replicas(name: str) -> int:
    for kind in ("Deployment", "StatefulSet"):
        if (kind, name) in OBJECTS:
            replicas: int = OBJECTS[(kind, name)]["spec"]["replicas"]
            return replicas
    raise KeyError(name)


def _command(name: str) -> list[str]:
    (container,) = OBJECTS[("Deployment", name)]["spec"]["template"]["spec"]["containers"]
    command: list[str] = container["command"]
    return command


def test_k8s_prefect_api_replicas_apart_from_one_services_process() -> None:
    assert _replicas("limit-graph-prefect-server") == 2
    assert "--no-services" in _command("limit-graph-prefect-server")
    assert _replicas("limit-graph-prefect-services") == 1
    assert _command("limit-graph-prefect-services") == ["prefect", "server", "services", "start"]
    migrate = OBJECTS[("Job", "limit-graph-prefect-migrate")]["spec"]["template"]["spec"]
    assert migrate["containers"][0]["command"] == ["prefect", "server", "database", "upgrade", "-y"]
    assert _replicas("limit-graph-api") == 3


def _selects(selector: dict[str, str]) -> list[str]:
    return [
        name
        for (kind, name), document in OBJECTS.items()
        if kind in ("Deployment", "StatefulSet")
        and selector.items() <= document["spec"]["template"]["metadata"]["labels"].items()
    ]


def test_the_api_autoscales_from_three_and_keeps_two_through_a_drain() -> None:
    hpa = OBJECTS[("HorizontalPodAutoscaler", "limit-graph-api")]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    assert target["name"] == "limit-graph-api"
    assert hpa["minReplicas"] == _replicas("limit-graph-api") < hpa["maxReplicas"]
    (api,) = OBJECTS[("Deployment", "limit-graph-api")]["spec"]["template"]["spec"]["containers"]
    assert "cpu" in api["resources"]["requests"], "CPU utilization needs a CPU request"
    for name in ("limit-graph-api", "limit-graph-prefect-server"):
        pdb = OBJECTS[("PodDisruptionBudget", name)]["spec"]
        assert _selects(pdb["selector"]["matchLabels"]) == [name]
        assert 1 <= pdb["minAvailable"] < _replicas(name), f"{name}: a drain can proceed"


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def _service_port(host: str) -> int:
    service = OBJECTS[("Service", host.removesuffix(f".{NAMESPACE}.svc"))]
    (port,) = service["spec"]["ports"]
    target = port["targetPort"]
    selected = _selects(service["spec"]["selector"])
    assert selected, host
    for name, pod in _pods():
        if name in selected:
            ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
            assert target in ports or target in ports.values(), f"{host}: no port {target}"
    return int(port["port"])


def test_every_host_and_port_is_a_service_of_the_same_file() -> None:
    config = OBJECTS[("ConfigMap", "limit-graph-config")]["data"]
    prefect = OBJECTS[("ConfigMap", "limit-graph-prefect-config")]["data"]
    secret = OBJECTS[("Secret", "limit-graph-secrets")]["stringData"]
    for url in (
        config["PREFECT_API_URL"],
        config["LIMIT_API_URL"],
        prefect["PREFECT_SERVER_DOCKET_URL"],
        secret["DATABASE_URL"],
        secret["PREFECT_SERVER_DATABASE_CONNECTION_URL"],
    ):
        host, port = _host_port(url)
        assert host.endswith(f".{NAMESPACE}.svc"), url
        assert _service_port(host) == port, url
    assert _service_port(prefect["PREFECT_REDIS_MESSAGING_HOST"]) == int(
        prefect["PREFECT_REDIS_MESSAGING_PORT"]
    )
    server = _command("limit-graph-prefect-server")
    assert _host_port(config["PREFECT_API_URL"])[1] == int(server[server.index("--port") + 1])
    options = KubernetesJobOptions()
    assert options.prefect_api_url == config["PREFECT_API_URL"]
    assert options.platform_api_url == config["LIMIT_API_URL"]
    assert (("Service", API_SERVICE[0])) in OBJECTS and ("Service", PREFECT_SERVICE[0]) in OBJECTS


def test_compose_hosts_are_its_services_and_ports_their_commands() -> None:
    env = _compose_variables()
    for name in ("PREFECT_API_URL", "LIMIT_API_URL", "PREFECT_SERVER_DOCKET_URL"):
        host, _ = _host_port(env[name])
        assert host in SERVICES, name
    server = SERVICES["prefect-server"]["command"]
    assert _host_port(env["PREFECT_API_URL"])[1] == int(server[server.index("--port") + 1])
    assert env["PREFECT_REDIS_MESSAGING_HOST"] in SERVICES
    assert SERVICES["prefect-server"]["ports"] == ["127.0.0.1:4200-4201:4200"], "one per replica"


def test_the_production_toml_reaches_services_both_files_define() -> None:
    """One docker/limit-graph.toml serves compose and Kubernetes: its hosts are compose
    services and Services of the namespace (which resolve by their short names there)."""
    toml = tomllib.loads(LIMIT_TOML.read_text(encoding="utf-8"))
    urls = {
        "governance.redis_url": toml["governance"]["redis_url"],
        "storage.url": toml["storage"]["url"],
        "prefect.api_url": toml["prefect"]["api_url"],
    }
    for key, url in urls.items():
        host = urlsplit(url).hostname
        assert host in SERVICES, f"{key}: {host} is no compose service"
        assert ("Service", host) in OBJECTS, f"{key}: {host} is no Service in docker/k8s"
    assert urlsplit(urls["governance.redis_url"]).hostname == "redis", "the rate limiter's own"


def test_the_pools_named_are_the_work_pools() -> None:
    compose_pools = {
        s["command"][s["command"].index("--pool") + 1]
        for s in SERVICES.values()
        if s.get("command", [])[:3] == ["prefect", "worker", "start"]
    }
    k8s_pools = {
        c["command"][c["command"].index("--pool") + 1]
        for _, c in _containers()
        if c.get("command", [])[:3] == ["prefect", "worker", "start"]
    }
    assert compose_pools == k8s_pools == set(WORK_POOLS)
    labelled = {
        d["metadata"]["labels"]["limit-graph/pool"]
        for (kind, _), d in OBJECTS.items()
        if kind == "Deployment" and "limit-graph/pool" in d["metadata"]["labels"]
    }
    assert labelled == set(WORK_POOLS)


DOCUMENTS = [ROOT / "README.md", ROOT / "docker" / "README.md", ROOT / "docs" / "operations.md"]
"""Where operators read commands to run: each `limit` and `prefect` command of their
shell blocks must exist with its options, like those of the manifests."""


COMMAND_LINE = re.compile(r"\s*(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:limit|prefect)\s")


def _documented_commands() -> list[list[str]]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S):
            lines = iter(block.replace("\\\n", " ").splitlines())
            for first in lines:
                if not COMMAND_LINE.match(first):
                    continue
                line = first
                while True:  # a quoted argument may span lines
                    try:
                        words = shlex.split(line, comments=True)
                        break
                    except ValueError:
                        line += "\n" + next(lines)
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    words = words[1:]  # VARIABLE=value before the command
                if words and words[0] in ("prefect", "limit"):
                    found.append(words)
    return found


def _commands() -> list[list[str]]:
    found = [s["command"] for s in SERVICES.values() if "command" in s]
    found += [c["command"] for _, c in _containers() if "command" in c]
    found += _documented_commands()
    return [c for c in found if c[0] in ("prefect", "limit")]


@functools.cache
def _help(program: str, *path: str) -> str:
    result = subprocess.run(
        [str(BIN / program), *path, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": str(BIN), "DO_NOT_TRACK": "1"},
    )
    assert result.returncode == 0, f"{program} {' '.join(path)}: {result.stderr}"
    return result.stdout


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_command_exists_with_its_options(command: list[str]) -> None:
    program, *args = command
    first_option = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    path = tuple(args[:first_option])
    text = _help(program, *path)
    for option in (a for a in args if a.startswith("--")):
        assert option in text, f"{' '.join(command)}: {option} is no option of it"
    if "--type" in args:  # the worker type is an installed one
        from prefect.workers.base import BaseWorker

        worker_type = args[args.index("--type") + 1]
        found = BaseWorker.get_worker_class_from_type(worker_type)
        assert found is not None and found.type == worker_type
    if "--pool-type" in args:
        PoolType(args[args.index("--pool-type") + 1])


def test_the_register_init_container_matches_the_manifests() -> None:
    pod = OBJECTS[("Deployment", "limit-graph-api")]["spec"]["template"]["spec"]
    (register,) = pod["initContainers"]
    command = register["command"]
    assert command[:3] == ["limit", "prefect", "register"]
    assert command[command.index("--pool-type") + 1] == PoolType.KUBERNETES
    assert command[command.index("--image") + 1] == pod["containers"][0]["image"]
    assert command[command.index("--namespace") + 1] == NAMESPACE
    config = OBJECTS[("ConfigMap", "limit-graph-config")]["data"]
    assert command[command.index("--platform-url") + 1] == config["LIMIT_API_URL"]


# --------------------------------------------------------------------------- RBAC

_VERBS = {"create": "create", "read": "get", "list": "list", "delete": "delete"}
_RESOURCES = {"job": ("batch", "jobs"), "pod": ("", "pods"), "secret": ("", "secrets")}


def _calls() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of each Kubernetes call of the worker and its observer."""
    found: set[tuple[str, str, str]] = set()
    for module in (k8s_worker, k8s_observer):
        source = inspect.getsource(module)
        for match in re.finditer(r"\b(create|read|list|delete)_namespaced_(\w+?)\(", source):
            verb, what = match.groups()
            if what.endswith("_log"):
                found.add(("", "pods/log", "get"))
                continue
            group, resource = _RESOURCES[what]
            found.add((group, resource, _VERBS[verb]))
        for match in re.finditer(r"(?:patch|replace)_namespaced_(\w+?)\(", source):
            group, resource = _RESOURCES[match.group(1)]
            found.add((group, resource, "update"))
    # kopf watches what the observer's handlers are registered for: a list, then a watch.
    for group, resource in (("", "pods"), ("batch", "jobs")):
        found |= {(group, resource, "list"), (group, resource, "watch")}
    return found


def _granted() -> set[tuple[str, str, str]]:
    role = OBJECTS[("Role", "limit-graph-worker")]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_worker_role_grants_what_prefect_kubernetes_calls_and_no_more() -> None:
    calls = _calls()
    # Secrets: only with create_secret_for_api_key / store_env_as_secret, which stay off
    # (the runner key reaches the Jobs by a secretKeyRef of the template).
    worker_settings = KubernetesSettings().worker
    assert not worker_settings.create_secret_for_api_key
    assert not worker_settings.store_env_as_secret
    variables = _k8s_variables()
    assert not any(k.startswith("PREFECT_INTEGRATIONS_KUBERNETES_WORKER_") for k in variables)
    needed = {call for call in calls if call[1] != "secrets"}
    assert ("batch", "jobs", "create") in needed and ("", "pods/log", "get") in needed
    assert _granted() == needed


def test_the_observer_watches_the_namespace_only() -> None:
    """A cluster-wide watch (list_pod_for_all_namespaces) would need a ClusterRole."""
    source = inspect.getsource(k8s_observer)
    assert "list_pod_for_all_namespaces" in source and "namespaces=namespaces" in source
    for pool in WORK_POOLS:
        pod = OBJECTS[("Deployment", f"limit-graph-worker-{pool}")]["spec"]["template"]["spec"]
        env = {v["name"]: v.get("value") for v in pod["containers"][0]["env"]}
        assert env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"] == NAMESPACE
        assert pod["serviceAccountName"] == "limit-graph-worker"
        assert pod["automountServiceAccountToken"] is True, "its token calls the API"


def test_the_role_is_bound_to_the_workers_only_and_runners_get_no_token() -> None:
    bindings = [d for (kind, _), d in OBJECTS.items() if kind in ("RoleBinding", "ClusterRole")]
    assert [b["metadata"]["name"] for b in bindings] == ["limit-graph-worker"]
    (binding,) = bindings
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "limit-graph-worker",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "limit-graph-worker", "namespace": NAMESPACE}
    ]
    runner = OBJECTS[("ServiceAccount", RUNNER_SERVICE_ACCOUNT)]
    assert runner["automountServiceAccountToken"] is False
    users = {name for name, pod in _pods() if pod.get("automountServiceAccountToken")}
    assert users == {f"limit-graph-worker-{pool}" for pool in WORK_POOLS}


# --------------------------------------------------------------------------- kustomize


def test_the_kustomization_applies_the_manifests_and_the_production_toml() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["namespace"] == NAMESPACE
    resources = [DOCKER / r for r in kustomization["resources"]]
    expected = [p for p in sorted(K8S.glob("*.yaml")) if p.name != "20-secret.yaml"]
    assert resources == expected, "every manifest but the Secret template, in order"
    (generator,) = kustomization["configMapGenerator"]
    assert [DOCKER / f for f in generator["files"]] == [LIMIT_TOML]
    assert LIMIT_TOML.is_file()
    mounts = [
        volume
        for _, pod in _pods()
        for volume in pod.get("volumes", [])
        if volume.get("configMap", {}).get("name") == generator["name"]
    ]
    assert mounts, "a pod mounts the generated ConfigMap"
    config = OBJECTS[("ConfigMap", "limit-graph-config")]["data"]
    assert Path(config["LIMIT_CONFIG"]).name == LIMIT_TOML.name
