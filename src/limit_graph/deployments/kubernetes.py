"""Base job templates for the ``kubernetes`` work-pool type: runners as Kubernetes Jobs.

``limit prefect register --pool-type kubernetes`` gives each work pool the template
:func:`kubernetes_job_template` builds, so a Prefect worker started with
``prefect worker start --pool <pool> --type kubernetes`` (``docker/k8s/40-workers.yaml``)
runs each of the pool's flow runs as a Job of the platform's image: as UID 10001, root
filesystem read-only, no privilege escalation, no capabilities, seccomp ``RuntimeDefault``,
under the runner ServiceAccount with no API token mounted, and with the runner's
environment: ``LIMIT_API_URL``, ``PREFECT_API_URL``, and ``LIMIT_RUNNER_API_KEY`` and
``LIMIT_DATA_KEK`` taken from the platform's Secret (neither is ever in the template).

The template has the shape of Prefect's own for that worker type
(``prefect_kubernetes.worker.KubernetesWorker.get_default_base_job_template()``):
``variables`` is a JSON Schema whose defaults are this platform's (each can be changed
per pool in the Prefect UI or per deployment with job variables), and
``job_configuration`` holds the fields of ``KubernetesWorkerJobConfiguration`` with
``{{ variable }}`` placeholders.  ``tests/deploy/test_kubernetes_pools.py`` holds it to
that worker's classes and to the manifests in ``docker/k8s/``.

>>> template = kubernetes_job_template("quantum")
>>> template["variables"]["properties"]["memory_limit"]["default"]
'4Gi'
>>> kubernetes_job_template("local", KubernetesJobOptions(namespace="lab"))[
...     "variables"]["properties"]["platform_api_url"]["default"]
'http://limit-graph-api.lab.svc:80'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from limit_graph import __version__
from limit_graph.core.errors import ConfigError

__all__ = [
    "API_SERVICE",
    "DATA_KEK",
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "IMAGE_UID",
    "PREFECT_SERVICE",
    "RUNNER_KEY",
    "RUNNER_SECRET",
    "RUNNER_SERVICE_ACCOUNT",
    "KubernetesJobOptions",
    "kubernetes_job_template",
]

DEFAULT_NAMESPACE = "limit-graph"
DEFAULT_IMAGE = f"limit-graph:{__version__}"
"""The image ``docker/Dockerfile`` builds, tagged with the package's version."""
IMAGE_UID = 10001
"""The image's numeric user and group (``USER 10001:10001`` in ``docker/Dockerfile``)."""
API_SERVICE = ("limit-graph-api", 80)
"""The platform API's Service and port (``docker/k8s/30-api.yaml``)."""
PREFECT_SERVICE = ("prefect-server", 4200)
"""The Prefect API replicas' Service and port (``docker/k8s/25-prefect-server.yaml``)."""
RUNNER_SECRET = "limit-graph-secrets"
RUNNER_KEY = "LIMIT_RUNNER_API_KEY"
"""The Secret, and its key, that runner Jobs read the runner API key from."""
DATA_KEK = "LIMIT_DATA_KEK"
"""The Secret's key of the KEK, which runners need to open sealed IBM credentials blocks."""
RUNNER_SERVICE_ACCOUNT = "limit-graph-runner"
"""The runners' ServiceAccount (``docker/k8s/35-rbac.yaml``): no Role, no token."""

# (cpu request, cpu limit, memory request, memory limit) of a pool's runner Jobs; Aer
# simulates circuits in memory, so the quantum pool gets more of it.
_RESOURCES: dict[str, tuple[str, str, str, str]] = {
    "quantum": ("500m", "2", "1Gi", "4Gi"),
}
_DEFAULT_RESOURCES = ("250m", "2", "512Mi", "2Gi")
_NAMESPACE = re.compile(r"(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class KubernetesJobOptions:
    """What differs between clusters: the image reference and the namespace the
    platform runs in (its Services' addresses follow from the namespace)."""

    image: str = DEFAULT_IMAGE
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        if not _NAMESPACE.fullmatch(self.namespace):
            raise ConfigError(
                f"namespace {self.namespace!r} is not a Kubernetes namespace name (up to 63 "
                "lower-case letters, digits and '-', starting and ending with a letter or digit)"
            )
        if not self.image or any(c.isspace() for c in self.image):
            raise ConfigError(f"image {self.image!r} is not an image reference")

    @property
    def platform_api_url(self) -> str:
        name, port = API_SERVICE
        return f"http://{name}.{self.namespace}.svc:{port}"

    @property
    def prefect_api_url(self) -> str:
        name, port = PREFECT_SERVICE
        return f"http://{name}.{self.namespace}.svc:{port}/api"


def _string(title: str, description: str, default: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": title, "description": description, "type": "string"}
    if default is not None:
        schema["default"] = default
    return schema


def _integer(title: str, description: str, default: int) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "type": "integer",
        "minimum": 0,
        "default": default,
    }


def _variables(pool: str, options: KubernetesJobOptions) -> dict[str, Any]:
    cpu_request, cpu_limit, memory_request, memory_limit = _RESOURCES.get(pool, _DEFAULT_RESOURCES)
    quantity = "A Kubernetes resource quantity, e.g. '500m' or '2' CPUs, '512Mi' or '4Gi'."
    properties: dict[str, Any] = {
        "name": _string("Name", "Name given to the Job (its prefix; Prefect adds a suffix)."),
        "labels": {
            "title": "Labels",
            "description": "Labels of the Job and its pod, next to Prefect's own.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "command": _string(
            "Command", "The container's command (default: Prefect's `prefect flow-run execute`)."
        ),
        "image": _string(
            "Image", "The LIMIT-Graph image (docker/Dockerfile) in your registry.", options.image
        ),
        "image_pull_policy": {
            "title": "Image Pull Policy",
            "description": "When the kubelet pulls the image.",
            "type": "string",
            "enum": ["IfNotPresent", "Always", "Never"],
            "default": "IfNotPresent",
        },
        "namespace": _string(
            "Namespace", "Where the Jobs run: the platform's namespace.", options.namespace
        ),
        "service_account_name": _string(
            "Service Account Name",
            "The runners' ServiceAccount; runners need no Kubernetes API access.",
            RUNNER_SERVICE_ACCOUNT,
        ),
        "runner_key_secret": _string(
            "Runner Key Secret",
            f"The Secret whose {RUNNER_KEY} key holds the runners' API key.",
            RUNNER_SECRET,
        ),
        "platform_api_url": _string(
            "Platform API URL",
            "LIMIT_API_URL of the runners: the platform API's Service.",
            options.platform_api_url,
        ),
        "prefect_api_url": _string(
            "Prefect API URL",
            "PREFECT_API_URL of the runners: the Prefect API replicas' Service.",
            options.prefect_api_url,
        ),
        "cpu_request": _string("CPU Request", quantity, cpu_request),
        "cpu_limit": _string("CPU Limit", quantity, cpu_limit),
        "memory_request": _string("Memory Request", quantity, memory_request),
        "memory_limit": _string("Memory Limit", quantity, memory_limit),
        "backoff_limit": _integer(
            "Backoff Limit",
            "Retries of the Job by Kubernetes; 0 lets Prefect reschedule an evicted run "
            "(the platform re-dispatches a lost runner's executions either way).",
            0,
        ),
        "finished_job_ttl": _integer(
            "Finished Job TTL", "Seconds a finished Job is kept before Kubernetes deletes it.", 3600
        ),
        "pod_watch_timeout_seconds": _integer(
            "Pod Watch Timeout Seconds",
            "Seconds the worker waits for the Job's pod to start (an image pull included).",
            300,
        ),
        "stream_output": {
            "title": "Stream Output",
            "description": "Stream the Job's output to the worker's log.",
            "type": "boolean",
            "default": True,
        },
    }
    return {"type": "object", "properties": properties}


def _environment() -> list[dict[str, Any]]:
    """The runner's environment, with placeholders; Prefect adds its own settings and the
    flow run's id, and these win over the worker's on a name clash."""
    return [
        {"name": "LIMIT_API_URL", "value": "{{ platform_api_url }}"},
        {"name": "PREFECT_API_URL", "value": "{{ prefect_api_url }}"},
        {
            "name": RUNNER_KEY,
            "valueFrom": {"secretKeyRef": {"name": "{{ runner_key_secret }}", "key": RUNNER_KEY}},
        },
        {
            "name": DATA_KEK,
            "valueFrom": {"secretKeyRef": {"name": "{{ runner_key_secret }}", "key": DATA_KEK}},
        },
        {"name": "LIMIT_HOME", "value": "/data"},
        {"name": "PREFECT_HOME", "value": "/data/.prefect"},
        {"name": "PREFECT_SERVER_ANALYTICS_ENABLED", "value": "false"},
        {"name": "GX_ANALYTICS_ENABLED", "value": "false"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]


def _job_manifest(pool: str) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/name": f"limit-graph-runner-{pool}",
        "app.kubernetes.io/component": "runner",
        "app.kubernetes.io/part-of": "limit-graph",
        "limit-graph/pool": pool,
    }
    container = {
        "name": "prefect-job",  # the name the worker looks the container up by
        "image": "{{ image }}",
        "imagePullPolicy": "{{ image_pull_policy }}",
        "args": "{{ command }}",
        "env": [],  # the worker writes the job configuration's env here
        "resources": {
            "requests": {"cpu": "{{ cpu_request }}", "memory": "{{ memory_request }}"},
            "limits": {"cpu": "{{ cpu_limit }}", "memory": "{{ memory_limit }}"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec = {
        # The worker's manifest check requires these two here (where the Job API has
        # no such fields; the API server drops them): prefect-kubernetes' base manifest.
        "parallelism": 1,
        "completions": 1,
        "restartPolicy": "Never",
        "serviceAccountName": "{{ service_account_name }}",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": IMAGE_UID,
            "runAsGroup": IMAGE_UID,
            "fsGroup": IMAGE_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": "{{ name }}-",
            "namespace": "{{ namespace }}",
            "labels": labels,
        },
        "spec": {
            "backoffLimit": "{{ backoff_limit }}",
            "ttlSecondsAfterFinished": "{{ finished_job_ttl }}",
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def kubernetes_job_template(
    pool: str, options: KubernetesJobOptions | None = None
) -> dict[str, Any]:
    """The base job template of work pool ``pool`` (a fresh dict on every call)."""
    options = options or KubernetesJobOptions()
    return {
        "job_configuration": {
            "command": "{{ command }}",
            "env": _environment(),
            "labels": "{{ labels }}",
            "name": "{{ name }}",
            "namespace": "{{ namespace }}",
            "job_manifest": _job_manifest(pool),
            "pod_watch_timeout_seconds": "{{ pod_watch_timeout_seconds }}",
            "stream_output": "{{ stream_output }}",
        },
        "variables": _variables(pool, options),
    }
