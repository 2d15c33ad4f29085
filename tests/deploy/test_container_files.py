"""The container files (docker/), checked without a Docker engine or a cluster.

The Dockerfile is linted with hadolint, the Compose file is validated against the Compose
spec's JSON schema (vendored by check-jsonschema), and the Kubernetes manifests against the
API schemas of a pinned Kubernetes version in strict mode (kubernetes-validate). On top of
the schemas, the files are checked against each other and against the application: the
ports, paths, users and settings they name must be the ones the code uses.

The linters are dev dependencies: a missing one fails (run `make test`), it never skips.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import http.server
import importlib
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from limit_graph.cli.config_check import check_secrets
from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import load_settings, load_settings_explained

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DOCKER / "compose.yaml"
K8S = DOCKER / "k8s"
README = DOCKER / "README.md"
LIMIT_TOML = DOCKER / "limit-graph.toml"
CONFIG_MOUNT = "/etc/limit-graph"

K8S_VERSION = "1.31.0"
NAMESPACE = "limit-graph"
HEALTH_PATH = "/health"
API_PORT = 8080
PREFECT_PORT = 4200
POOLS = ("local", "remote", "quantum")
SECRET_VARS = (
    "LIMIT_ADMIN_API_KEY",
    "LIMIT_RUNNER_API_KEY",
    "LIMIT_AUTH_SECRET",
    "LIMIT_DATA_KEK",
    "POSTGRES_PASSWORD",
)
A_REAL_KEY = "k" * 32
A_REAL_KEK = base64.b64encode(bytes(range(32))).decode()
INSTALL_HINT = "run `make test`, which installs the dev dependencies (pyproject's `dev` extra)"


def need(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"Python module {module!r} is not installed: {INSTALL_HINT}")


def tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}")
    return found


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage, continuation lines joined and comments dropped."""
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), number)
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif instruction.keyword not in ("ARG",) or stages:
            assert stages, f"line {number}: {keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for token in shlex.split(instruction.args):
            assert "=" in token, f"line {instruction.line}: use ENV KEY=value, not {token!r}"
            key, value = token.split("=", 1)
            env[key] = value
    return env


def exec_form(instruction: Instruction) -> list[str]:
    args = instruction.args
    if instruction.keyword == "HEALTHCHECK":
        args = args[args.index("CMD") + len("CMD") :]
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(
            f"line {instruction.line}: {instruction.keyword} should use the exec (JSON) form"
        )
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_hadolint_reports_nothing() -> None:
    hadolint = tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", f"hadolint:\n{output}"


def test_dockerfile_is_multistage_on_pinned_python_311_slim(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "builder and runtime stages"
    for stage in stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?", stage.image), stage.image
    assert stages[0].name == "builder"


def test_builder_installs_the_repo_and_runtime_copies_only_the_venv(stages: list[Stage]) -> None:
    builder, runtime = stages[0], stages[-1]
    runs = " ".join(i.args for i in builder.all("RUN"))
    made = re.search(r"python -m venv (\S+)", runs)
    assert made, "the builder makes a venv"
    venv = made.group(1)
    installed = re.search(r'pip install (--\S+ )*"?\./?(\[(\w+)\])?"?(\s|$)', runs)
    assert installed, "`pip install .` of the repo"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert installed.group(3) == "scale", "the image carries the scale extra"
    scale = " ".join(extras["scale"])
    assert "prefect-redis" in scale and "prefect-kubernetes" in scale
    assert f"PATH={venv}/bin" in " ".join(i.args for i in builder.all("ENV"))
    copies = runtime.all("COPY")
    assert [c.args for c in copies] == [f"--from=builder {venv} {venv}"], (
        "the runtime stage copies the built venv and nothing else"
    )
    assert env_of(runtime)["PATH"].startswith(f"{venv}/bin:")


def test_build_inputs_exist_and_pyproject_names_them(stages: list[Stage]) -> None:
    sources = []
    for copy_ in stages[0].all("COPY"):
        parts = [p for p in copy_.args.split() if not p.startswith("--")]
        sources += parts[:-1]
    assert {"pyproject.toml", "src"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository root"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    if isinstance(project.get("readme"), str):
        assert project["readme"] in sources, "the build reads the readme pyproject names"


def test_runtime_user_is_not_root(runtime: Stage) -> None:
    users = runtime.all("USER")
    assert users, "the runtime stage sets USER"
    user, _, group = users[-1].args.partition(":")
    assert user not in ("root", "0") and group not in ("root", "0"), users[-1].args
    assert user.isdigit() and int(user) >= 1000, "a numeric non-system UID (for runAsNonRoot)"
    after = runtime.instructions[runtime.instructions.index(users[-1]) + 1 :]
    assert not [i for i in after if i.keyword == "RUN"], "nothing runs as root after USER"


def test_runtime_environment_volume_and_port(runtime: Stage) -> None:
    env = env_of(runtime)
    assert env["BIND_ADDRESS"] == f"0.0.0.0:{API_PORT}"
    assert env["LIMIT_HOME"] == "/data"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["GX_ANALYTICS_ENABLED"] == "false"
    assert env.get("LIMIT_MODE", "dev") in ("dev", "prod")
    volumes = " ".join(i.args for i in runtime.all("VOLUME"))
    assert "/data" in volumes
    assert [i.args for i in runtime.all("EXPOSE")] == [str(API_PORT)]


def test_image_environment_loads_as_settings(runtime: Stage) -> None:
    env = {k: v for k, v in env_of(runtime).items() if "$" not in v}
    settings = load_settings(environ={**env, "LIMIT_ADMIN_API_KEY": A_REAL_KEY})
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", API_PORT)
    assert settings.home == Path("/data")


def test_command_is_limit_up(runtime: Stage) -> None:
    assert not runtime.all("ENTRYPOINT"), "CMD alone, so workers can run `prefect worker`"
    assert exec_form(runtime.all("CMD")[-1]) == ["limit", "up"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert "limit" in scripts


def test_healthcheck_calls_health_with_python(runtime: Stage) -> None:
    checks = runtime.all("HEALTHCHECK")
    assert len(checks) == 1
    command = exec_form(checks[0])
    assert command[:2] == ["python", "-c"], "slim has no curl: use python"
    assert f"http://127.0.0.1:{API_PORT}{HEALTH_PATH}" in command[2]


def test_the_app_serves_the_health_path() -> None:
    from limit_graph.api.routes import health

    assert HEALTH_PATH in {getattr(r, "path", None) for r in health.router.routes}


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == HEALTH_PATH else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_healthcheck_command_passes_on_200_and_fails_otherwise(
    runtime: Stage, health_server: tuple[int, type[_Health]]
) -> None:
    port, handler = health_server
    command = exec_form(runtime.all("HEALTHCHECK")[0])

    def run(target_port: int) -> int:
        code = command[2].replace(f"127.0.0.1:{API_PORT}", f"127.0.0.1:{target_port}")
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30
        ).returncode

    assert run(port) == 0
    handler.status = 503  # /health answers 503 when the database is down
    assert run(port) != 0
    assert run(_free_port()) != 0


def _ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        bare = pattern.removeprefix("**/")
        hit = any(
            fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], bare)
            for p in prefixes
        )
        if hit:
            ignored = not negate
    return ignored


def test_dockerignore_at_the_context_root_keeps_build_inputs(stages: list[Stage]) -> None:
    assert DOCKERIGNORE.exists(), "the build context is the repo root: .dockerignore lives there"
    patterns = _ignore_patterns()
    for copy_ in stages[0].all("COPY"):
        for source in [p for p in copy_.args.split() if not p.startswith("--")][:-1]:
            assert not _ignored(source, patterns), f".dockerignore drops {source}, which is copied"
    for module in (ROOT / "src").rglob("*.py"):
        relative = module.relative_to(ROOT).as_posix()
        assert not _ignored(relative, patterns), f".dockerignore drops {relative}"
    for local in (".git", ".venv", ".limit", "src/limit_graph/__pycache__", ".env", "tests"):
        assert _ignored(local, patterns), f".dockerignore should drop {local}"


# --------------------------------------------------------------------------- Compose

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if op == ":?" and not current:
            raise KeyError(f"{name}: {arg}")
        if op == ":-" and not current:
            return arg
        return current or ""

    return INTERPOLATION.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def compose_configs() -> dict[str, Any]:
    configs: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["configs"]
    return configs


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def test_compose_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    jsonschema = need("jsonschema")
    need("check_jsonschema")
    from importlib.resources import files

    resource = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(resource.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors
    )


def test_compose_schema_check_rejects_a_bad_file(compose: dict[str, Any]) -> None:
    jsonschema = need("jsonschema")
    need("check_jsonschema")
    from importlib.resources import files

    resource = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(resource.read_text(encoding="utf-8"))
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["helthcheck"] = {"test": ["NONE"]}
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_compose_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "postgres",
        "prefect-redis",
        "redis",
        "prefect-server-migrate",
        "prefect-server",
        "prefect-services",
        "api",
        *(f"worker-{p}" for p in POOLS),
        "prometheus",
        "grafana",
    }
    for name in ("prometheus", "grafana"):  # only with --profile observability
        assert services[name]["profiles"] == ["observability"], name
        for mounted in services[name]["configs"]:
            source = COMPOSE.parent / compose_configs()[mounted["source"]]["file"]
            assert source.is_file(), f"{name} mounts {source}, which does not exist"
    scraped = (COMPOSE.parent / "prometheus" / "prometheus.yaml").read_text(encoding="utf-8")
    assert f"names: [api]\n        type: A\n        port: {API_PORT}" in scraped
    assert services["postgres"]["image"] == "postgres:15"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("prefect-server-migrate", "prefect-server", "prefect-services"):
        # the platform's image: it carries prefect-redis (the scale extra)
        assert services[name]["image"] == services["api"]["image"], name
    assert services["prefect-server"]["command"] == [
        "prefect", "server", "start", "--host", "0.0.0.0", "--port", str(PREFECT_PORT),
        "--no-services",
    ]  # fmt: skip
    assert services["prefect-services"]["command"] == ["prefect", "server", "services", "start"]
    assert services["prefect-server-migrate"]["command"] == [
        "prefect", "server", "database", "upgrade", "-y",
    ]  # fmt: skip
    assert services["prefect-server"]["deploy"]["replicas"] == 2
    assert services["api"]["deploy"]["replicas"] == 2
    assert "replicas" not in services["prefect-services"].get("deploy", {}), "exactly one"


def test_compose_services_have_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build is not None:
            context = (COMPOSE.parent / build["context"]).resolve()
            assert context == ROOT, f"{name}: build from the repository root"
            assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def test_compose_depends_on_names_services_with_health_checks(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name
            if condition == "service_healthy":
                other = services[target]
                # a service built from docker/Dockerfile inherits its HEALTHCHECK
                assert "healthcheck" in other or "build" in other, (
                    f"{name} waits for {target} to be healthy, but it has no health check"
                )
    assert depends_on(services["api"]).get("postgres") == "service_healthy"
    assert depends_on(services["prefect-server"]).get("postgres") == "service_healthy"


def test_compose_ports_are_strings(services: dict[str, dict[str, Any]]) -> None:
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            assert isinstance(port, str), f"{name}: port {port!r} must be a quoted string"
            published += 1
    assert published
    assert any(p.endswith(f":{API_PORT}") for p in services["api"]["ports"])


def test_compose_variables_are_required_or_defaulted(compose: dict[str, Any]) -> None:
    seen: set[str] = set()
    for text in walk_strings(compose):
        for match in INTERPOLATION.finditer(text):
            name, op = match.group(1), match.group(2)
            seen.add(name)
            assert op in (":?", ":-"), f"${{{name}}}: give it a default (:-) or require it (:?)"
            if name in SECRET_VARS:
                assert op == ":?" and match.group(3), f"secret {name} must use ${{{name}:?msg}}"
    assert set(SECRET_VARS) <= seen
    assert environment(compose["services"]["api"])["LIMIT_ADMIN_API_KEY"].startswith(
        "${LIMIT_ADMIN_API_KEY:?"
    )


def test_compose_refuses_to_start_without_each_secret(services: dict[str, dict[str, Any]]) -> None:
    full = {
        "POSTGRES_PASSWORD": "pw",
        "LIMIT_ADMIN_API_KEY": A_REAL_KEY,
        "LIMIT_RUNNER_API_KEY": A_REAL_KEY + "-runner",
        "LIMIT_AUTH_SECRET": A_REAL_KEY + "-secret",
        "LIMIT_DATA_KEK": A_REAL_KEK,
    }
    for missing in SECRET_VARS:
        env = {k: v for k, v in full.items() if k != missing}
        with pytest.raises(KeyError, match=missing):
            for value in environment(services["api"]).values():
                interpolate(value, env)


def test_compose_api_environment_loads_as_settings(services: dict[str, dict[str, Any]]) -> None:
    outer = {
        "POSTGRES_PASSWORD": "pw",
        "LIMIT_ADMIN_API_KEY": A_REAL_KEY,
        "LIMIT_RUNNER_API_KEY": A_REAL_KEY + "-runner",
        "LIMIT_AUTH_SECRET": A_REAL_KEY + "-secret",
        "LIMIT_DATA_KEK": A_REAL_KEK,
    }
    env = {k: interpolate(v, outer) for k, v in environment(services["api"]).items()}
    mounted = {c["target"]: c["source"] for c in services["api"]["configs"]}
    assert mounted[env["LIMIT_CONFIG"]] == "limit-graph-toml"
    assert (COMPOSE.parent / compose_configs()["limit-graph-toml"]["file"]).resolve() == LIMIT_TOML
    env["LIMIT_CONFIG"] = str(LIMIT_TOML)  # the file the container reads, from the checkout
    assert env["LIMIT_MODE"] == "prod"
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    loaded = load_settings_explained(environ=env)
    settings = loaded.settings
    findings, _ = check_secrets(loaded)
    assert [f.message for f in findings if f.level == "error"] == []
    assert settings.encryption.kek is not None, "a prod database store needs the KEK"
    assert settings.mode == "prod" and settings.storage.type == "database"
    assert settings.prefect.workers is False, "API replicas leave the pools to the workers"
    runner_key = settings.dispatch.runner_api_key
    assert runner_key is not None and runner_key.get_secret_value() == A_REAL_KEY + "-runner"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in settings.database_url
    assert settings.server.port == API_PORT
    assert any(v.endswith(":/data") for v in services["api"]["volumes"])


def test_compose_prefect_server_uses_its_own_postgres_database(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    url = environment(services["prefect-server"])["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    match = re.fullmatch(r"postgresql\+asyncpg://([^:]+):[^@]+@postgres:5432/(\w+)", url)
    assert match, url
    user, database = match.groups()
    postgres_env = environment(services["postgres"])
    assert user == postgres_env["POSTGRES_USER"]
    assert database != postgres_env["POSTGRES_DB"], "Prefect and the platform share no tables"
    mounted = {
        c["source"]: c["target"] for c in services["postgres"].get("configs", [])
    }  # the init script that creates Prefect's database
    scripts = [
        compose["configs"][source]["content"]
        for source, target in mounted.items()
        if target.startswith("/docker-entrypoint-initdb.d/")
    ]
    assert any(f"CREATE DATABASE {database}" in s for s in scripts)


def test_compose_workers_poll_their_pools(services: dict[str, dict[str, Any]]) -> None:
    for pool in POOLS:
        worker = services[f"worker-{pool}"]
        command = worker["command"]
        assert command[:3] == ["prefect", "worker", "start"]
        assert command[command.index("--pool") + 1] == pool
        assert environment(worker)["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert "image" in worker and worker["image"] == services["api"]["image"]


def test_compose_turns_analytics_off(services: dict[str, dict[str, Any]]) -> None:
    names = ("prefect-server", "prefect-services", "prefect-server-migrate", "api")
    for name in (*names, *(f"worker-{p}" for p in POOLS)):
        env = environment(services[name])
        assert env.get("PREFECT_SERVER_ANALYTICS_ENABLED") == "false", name
        assert env.get("GX_ANALYTICS_ENABLED") == "false", name


# --------------------------------------------------------------------------- Kubernetes


def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                documents.append((path.name, document))
    return documents


K8S_DOCUMENTS = _k8s_documents()


def _id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}:{item[1].get('kind')}/{item[1].get('metadata', {}).get('name')}"


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for filename, document in K8S_DOCUMENTS:
        key = (document["kind"], document["metadata"]["name"])
        assert key not in found, f"{filename}: {key} defined twice"
        found[key] = document
    return found


def deployments(objects: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for (kind, _), doc in objects.items() if kind == "Deployment"]


WORKLOADS = ("Deployment", "StatefulSet", "Job")


def workloads(objects: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Everything that makes pods: Deployments, the StatefulSet, the migration Job."""
    return [doc for (kind, _), doc in objects.items() if kind in WORKLOADS]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return result


def all_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    result: list[dict[str, Any]] = [*pod.get("initContainers", []), *pod["containers"]]
    return result


def ours(container: dict[str, Any]) -> bool:
    """A container of the platform's image (docker/Dockerfile)."""
    return bool(container["image"].startswith("limit-graph:"))


def port_exists(container: dict[str, Any], port: int | str) -> bool:
    ports = container.get("ports", [])
    if isinstance(port, int):
        return port in {p["containerPort"] for p in ports}
    return port in {p.get("name") for p in ports}


@pytest.mark.parametrize("item", K8S_DOCUMENTS, ids=_id)
def test_k8s_manifest_validates_strictly(item: tuple[str, dict[str, Any]]) -> None:
    validate = need("kubernetes_validate")
    filename, document = item
    try:
        validate.validate(document, K8S_VERSION, strict=True)
    except validate.utils.ValidationError as exc:
        where = ".".join(map(str, exc.path))
        pytest.fail(f"{filename}: {where}: {exc.message}")
    except (validate.utils.SchemaNotFoundError, validate.utils.VersionNotSupportedError) as exc:
        pytest.fail(f"{filename}: {exc.message}")


def test_k8s_validation_is_strict(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    validate = need("kubernetes_validate")
    broken = copy.deepcopy(objects[("Deployment", "limit-graph-api")])
    containers(broken)[0]["readynessProbe"] = {"httpGet": {"path": HEALTH_PATH, "port": "http"}}
    with pytest.raises(validate.utils.ValidationError):
        validate.validate(broken, K8S_VERSION, strict=True)


def test_k8s_has_the_expected_objects(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert set(objects) == {
        ("Namespace", NAMESPACE),
        ("ConfigMap", "limit-graph-config"),
        ("Secret", "limit-graph-secrets"),
        ("ConfigMap", "limit-graph-postgres-init"),
        ("Service", "postgres"),
        ("StatefulSet", "limit-graph-postgres"),
        *((kind, name) for name in ("prefect-redis", "redis") for kind in ("Service",)),
        ("Deployment", "limit-graph-prefect-redis"),
        ("Deployment", "limit-graph-redis"),
        ("ConfigMap", "limit-graph-prefect-config"),
        ("Job", "limit-graph-prefect-migrate"),
        ("Deployment", "limit-graph-prefect-server"),
        ("Deployment", "limit-graph-prefect-services"),
        ("Service", "prefect-server"),
        ("PodDisruptionBudget", "limit-graph-prefect-server"),
        ("Deployment", "limit-graph-api"),
        ("Service", "limit-graph-api"),
        ("HorizontalPodAutoscaler", "limit-graph-api"),
        ("PodDisruptionBudget", "limit-graph-api"),
        ("ServiceAccount", "limit-graph-worker"),
        ("ServiceAccount", "limit-graph-runner"),
        ("Role", "limit-graph-worker"),
        ("RoleBinding", "limit-graph-worker"),
        *(("Deployment", f"limit-graph-worker-{pool}") for pool in POOLS),
    }
    first = sorted(K8S.glob("*.yaml"))[0]
    assert yaml.safe_load(first.read_text(encoding="utf-8"))["kind"] == "Namespace", (
        "`kubectl apply -f docker/k8s/` goes in file-name order: the namespace comes first"
    )


def test_k8s_objects_live_in_the_namespace(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    for (kind, name), document in objects.items():
        if kind != "Namespace":
            assert document["metadata"].get("namespace") == NAMESPACE, f"{kind}/{name}"


def test_k8s_deployment_selectors_match_their_pods(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for deployment in workloads(objects):
        if deployment["kind"] == "Job":
            continue  # a Job selects its pods itself
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]


def test_k8s_service_selects_the_api_and_targets_a_container_port(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    service = objects[("Service", "limit-graph-api")]
    selector = service["spec"]["selector"]
    selected = [
        d
        for d in deployments(objects)
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert [d["metadata"]["name"] for d in selected] == ["limit-graph-api"]
    (api,) = containers(selected[0])
    for port in service["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        assert port_exists(api, target), f"the Service targets {target!r}: not on the container"
    named = {p.get("name"): p["containerPort"] for p in api["ports"]}
    assert API_PORT in named.values()


NO_HTTP = {"limit-graph-prefect-services": "`prefect server services start` serves no HTTP"}
HEALTH_PATHS = {"limit-graph-prefect-server": "/api/health"}
"""Each long-running workload's health path (HEALTH_PATH, the API's and Prefect workers')."""


def test_k8s_probes_hit_health_on_declared_ports(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for deployment in workloads(objects):
        name = deployment["metadata"]["name"]
        if deployment["kind"] == "Job" or name in NO_HTTP:
            continue
        for container in containers(deployment):
            probes = {k: v for k, v in container.items() if k.endswith("Probe")}
            assert "livenessProbe" in probes, name
            for kind, probe in probes.items():
                where = f"{name} {kind}"
                if "exec" in probe:
                    assert not ours(container), f"{where}: our image answers HTTP"
                    continue
                assert probe["httpGet"]["path"] == HEALTH_PATHS.get(name, HEALTH_PATH), where
                assert port_exists(container, probe["httpGet"]["port"]), where
    (api,) = containers(objects[("Deployment", "limit-graph-api")])
    assert {"readinessProbe", "livenessProbe"} <= set(api)


def test_k8s_pods_meet_the_restricted_pod_security_profile(
    objects: dict[tuple[str, str], dict[str, Any]], runtime: Stage
) -> None:
    image_uid = int(runtime.all("USER")[-1].args.split(":")[0])
    assert (
        objects[("Namespace", NAMESPACE)]["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "restricted"
    )
    for deployment in workloads(objects):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        if all(ours(c) for c in all_containers(deployment)):
            assert pod["securityContext"]["runAsUser"] == image_uid, f"{name}: the image's UID"
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in all_containers(deployment):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context.get("runAsUser", image_uid) != 0, name
            if not ours(container):
                continue
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/data" in mounts, f"{name}: LIMIT_HOME needs a writable /data"
            assert "emptyDir" in volumes[mounts["/data"]], f"{name}: /data is an emptyDir"


def test_k8s_containers_have_resource_requests_and_limits(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for deployment in workloads(objects):
        for container in all_containers(deployment):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (
                    f"{deployment['metadata']['name']}: {bound}"
                )
            assert not container["image"].endswith(":latest") and ":" in container["image"]


def test_k8s_config_and_secret_references_resolve(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for deployment in workloads(objects):
        for container in all_containers(deployment):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in objects
                if "secretRef" in source:
                    assert ("Secret", source["secretRef"]["name"]) in objects
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {})
                for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    if key in ref:
                        target = objects.get((kind, ref[key]["name"]))
                        assert target is not None, f"{variable['name']}: no {kind}"
                        data = target.get("data", {}) | target.get("stringData", {})
                        assert ref[key]["key"] in data, f"{variable['name']}: no such key"


def test_k8s_configmap_is_not_secret_and_matches_the_container(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    data = objects[("ConfigMap", "limit-graph-config")]["data"]
    for key in data:
        assert not re.search(r"KEY|PASSWORD|SECRET|TOKEN|DATABASE_URL", key), (
            f"{key} belongs in the Secret"
        )
    assert data["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert data["GX_ANALYTICS_ENABLED"] == "false"
    assert data["LIMIT_HOME"] == "/data"
    (api,) = containers(objects[("Deployment", "limit-graph-api")])
    bind_port = int(data["BIND_ADDRESS"].rsplit(":", 1)[1])
    assert port_exists(api, bind_port), "the API listens on a port the container declares"
    service_port = objects[("Service", "limit-graph-api")]["spec"]["ports"][0]["port"]
    assert data["LIMIT_API_URL"] == f"http://limit-graph-api.{NAMESPACE}.svc:{service_port}"
    mounts = {m["name"]: m["mountPath"] for m in api["volumeMounts"]}
    assert data["LIMIT_CONFIG"] == f"{mounts['config']}/{LIMIT_TOML.name}"
    from_secret = {e["name"] for e in api["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    real = {
        "LIMIT_ADMIN_API_KEY": A_REAL_KEY,
        "LIMIT_RUNNER_API_KEY": A_REAL_KEY + "-runner",
        "LIMIT_AUTH_SECRET": A_REAL_KEY + "-secret",
        "LIMIT_DATA_KEK": A_REAL_KEK,
        "DATABASE_URL": "postgresql://limit_graph:pw@postgres.limit-graph.svc:5432/limit_graph",
    }
    assert from_secret == set(real), "every secret a prod API process needs, from the Secret"
    environ = {**data, "LIMIT_CONFIG": str(LIMIT_TOML), **real}
    loaded = load_settings_explained(environ=environ)
    findings, _ = check_secrets(loaded)
    assert [f.message for f in findings if f.level == "error"] == []
    assert loaded.settings.mode == "prod" and loaded.settings.server.host == "0.0.0.0"


def test_k8s_secret_template_holds_placeholders_the_app_rejects(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    secret = objects[("Secret", "limit-graph-secrets")]
    assert "data" not in secret, "a template: stringData with placeholders"
    values = secret["stringData"]
    assert set(values) == {
        "LIMIT_ADMIN_API_KEY",
        "LIMIT_RUNNER_API_KEY",
        "LIMIT_AUTH_SECRET",
        "LIMIT_DATA_KEK",
        "POSTGRES_PASSWORD",
        "DATABASE_URL",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    }
    assert all("changeme" in v for v in values.values()), "placeholders the docs say to replace"
    readme = README.read_text(encoding="utf-8")
    assert "changeme" in readme and all(key in readme for key in values)
    # Forgetting to replace the key fails closed: prod mode refuses the placeholder.
    for key in ("LIMIT_ADMIN_API_KEY", "LIMIT_RUNNER_API_KEY", "LIMIT_AUTH_SECRET"):
        with pytest.raises(ConfigError, match="placeholder"):
            load_settings(environ={"LIMIT_MODE": "prod", key: values[key]})


def test_k8s_one_worker_per_pool(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    api_image = containers(objects[("Deployment", "limit-graph-api")])[0]["image"]
    for pool in POOLS:
        (worker,) = containers(objects[("Deployment", f"limit-graph-worker-{pool}")])
        command = worker["command"]
        assert command[:3] == ["prefect", "worker", "start"]
        assert command[command.index("--pool") + 1] == pool
        assert command[command.index("--type") + 1] == "kubernetes", "runners start as Jobs"
        assert "--with-healthcheck" in command, "the liveness probe needs the health server"
        assert worker["image"] == api_image


# --------------------------------------------------------------------------- README


def test_readme_tells_how_to_build_run_deploy_and_what_to_set() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "docker build -f docker/Dockerfile" in readme
    assert "docker compose -f docker/compose.yaml" in readme
    assert "kubectl apply" in readme
    for name in SECRET_VARS:
        assert name in readme
