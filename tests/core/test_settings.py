"""Settings from defaults, TOML and the environment; bad config is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from limit_graph.core.errors import ConfigError
from limit_graph.core.models import BackendKind
from limit_graph.core.settings import (
    ConfigWarning,
    api_key_variable,
    load_settings,
    normalize_database_url,
)
from tests.fixtures.configs import DOCUMENTED_CONFIG


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limit.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_embedded_platform() -> None:
    settings = load_settings(environ={})
    assert settings.server.bind_address == "127.0.0.1:8080"
    assert settings.storage.type == "database"
    assert settings.database_url == "sqlite+aiosqlite:///.limit/limit.db"
    assert settings.backends.default is BackendKind.LOCAL


def test_file_sections_and_backend_instances(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
bind_address = "0.0.0.0:9000"
workers = 2

[storage]
type = "file"
path = "/tmp/limit-data"

[backends]
default = "quantum"
[backends.aer]
type = "quantum"
provider = "aer"
max_runners = 3
[backends.edge]
type = "remote"
capabilities = ["echo"]
""",
    )
    settings = load_settings(path, environ={})
    assert settings.server.port == 9000 and settings.server.workers == 2
    assert settings.file_storage_path == Path("/tmp/limit-data")
    assert settings.backends.default is BackendKind.QUANTUM
    assert settings.backends.instances["aer"].max_runners == 3
    assert settings.backends.instances["aer"].provider == "aer"
    assert settings.backends.instances["edge"].type is BackendKind.REMOTE
    assert settings.source == str(path)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nbind_address = "127.0.0.1:1"\n')
    settings = load_settings(
        environ={
            "LIMIT_CONFIG": str(path),
            "BIND_ADDRESS": "127.0.0.1:7000",
            "DATABASE_URL": "postgresql://u@db:5432/limit",
            "BACKEND_TYPE": "remote",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.server.port == 7000
    assert settings.database_url == "postgresql+psycopg://u@db:5432/limit"
    assert settings.backends.default is BackendKind.REMOTE
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[server]\nbind_adress = "x:1"\n', "server.bind_adress: unknown key"),
        ('[sever]\nbind_address = "x:1"\n', "sever: unknown key"),
        ("[server]\nworkers = 0\n", "server.workers"),
        ('[storage]\ntype = "cloud"\n', "storage.type"),
        ('[backends.aer]\ntype = "quantum"\nwrokers = 2\n', "backends.aer.wrokers: unknown key"),
        ('[backends]\ndefault = "mainframe"\n', "backends.default"),
        ('[storage]\nurl = "mysql://x/y"\n', "unsupported database URL scheme"),
        ("[storage]\npool_size = 0\n", "storage.pool_size"),
        ("[storage]\nmax_overflow = -1\n", "storage.max_overflow"),
    ],
)
def test_bad_config_names_the_key_and_the_file(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert named in caught.value.detail
    if "unsupported" not in named:
        assert str(path) in caught.value.detail


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[server\n"), environ={})


def test_placeholder_secrets_are_refused_outside_dev_mode() -> None:
    with pytest.raises(ConfigError, match="placeholder"):
        load_settings(environ={"LIMIT_MODE": "prod", "LIMIT_ADMIN_API_KEY": "changeme"})
    dev = load_settings(environ={"LIMIT_ADMIN_API_KEY": "changeme"})
    assert dev.admin_api_key is not None


def test_database_urls_get_async_drivers() -> None:
    assert normalize_database_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_database_url("postgres://a@b/c") == "postgresql+psycopg://a@b/c"
    with pytest.raises(ConfigError):
        normalize_database_url("oracle://x")


# --- backend instances: provider and the IBM Quantum API key ---------------------------


def test_the_documented_config_file_loads_in_dev_mode_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, DOCUMENTED_CONFIG)
    with pytest.warns(ConfigWarning) as caught:
        settings = load_settings(path, environ={})
    quantum = settings.backends.instances["quantum"]
    assert quantum.type is BackendKind.QUANTUM and quantum.provider == "ibm"
    assert quantum.api_key is not None and quantum.api_key.get_secret_value() == "..."
    [message] = [str(w.message) for w in caught]
    assert "placeholder" in message and "fail to sign in" in message
    assert "backends.quantum.api_key_file" in message
    assert "LIMIT_BACKEND_QUANTUM_API_KEY" in message
    assert "unknown key" not in message


def test_the_documented_config_file_is_refused_in_prod_with_the_same_advice(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, DOCUMENTED_CONFIG)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"LIMIT_MODE": "prod"})
    detail = caught.value.detail
    assert "backends.quantum.api_key: prod mode refuses an API key written in the config" in detail
    assert "backends.quantum.api_key_file" in detail
    assert "LIMIT_BACKEND_QUANTUM_API_KEY" in detail
    assert "unknown key" not in detail and str(path) in detail


def test_a_real_key_in_the_file_warns_in_dev_and_names_the_safer_places(tmp_path: Path) -> None:
    path = write(tmp_path, DOCUMENTED_CONFIG.replace('"..."', '"a1b2c3-real-looking-key"'))
    with pytest.warns(ConfigWarning, match="read from the config file") as caught:
        load_settings(path, environ={})
    message = str(caught[0].message)
    assert "api_key_file" in message and "LIMIT_BACKEND_QUANTUM_API_KEY" in message
    assert "a1b2c3-real-looking-key" not in message


def test_the_key_comes_from_the_variable_then_the_key_file_then_the_file(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ibm.key").write_text("from-the-key-file\n")
    inline = DOCUMENTED_CONFIG.replace('"..."', '"from-the-config"')
    both = inline + 'api_key_file = "keys/ibm.key"\n'  # relative to the config file

    def key(text: str, environ: dict[str, str]) -> str | None:
        instance = load_settings(write(tmp_path, text), environ=environ).backends.instances
        secret = instance["quantum"].api_key
        return secret.get_secret_value() if secret else None

    variable = {"LIMIT_BACKEND_QUANTUM_API_KEY": "from-the-environment"}
    assert key(both, variable) == "from-the-environment"
    assert key(both, {}) == "from-the-key-file"
    assert key(inline, {}) == "from-the-config"
    prod = {"LIMIT_MODE": "prod", **variable}
    file_only = DOCUMENTED_CONFIG.replace('api_key = "..."', 'api_key_file = "keys/ibm.key"')
    assert key(file_only, {"LIMIT_MODE": "prod"}) == "from-the-key-file"
    assert key(file_only, prod) == "from-the-environment"
    assert key(DOCUMENTED_CONFIG.replace('api_key = "..."\n', ""), prod) == "from-the-environment"
    overridden = {str(w.message) for w in recwarn if "is not used" in str(w.message)}
    assert (
        f"backends.quantum.api_key in {tmp_path / 'limit.toml'} is not used: the key from "
        f"LIMIT_BACKEND_QUANTUM_API_KEY wins" in overridden
    )


def test_an_api_key_variable_is_named_after_the_instance() -> None:
    assert api_key_variable("quantum") == "LIMIT_BACKEND_QUANTUM_API_KEY"
    assert api_key_variable("ibm-east.2") == "LIMIT_BACKEND_IBM_EAST_2_API_KEY"


@pytest.mark.parametrize(
    ("table", "environ", "named"),
    [
        (
            '[backends.edge]\ntype = "remote"\nprovider = "ibm"\n',
            {},
            'backends.edge: provider = "ibm" is for quantum instances; this one is remote',
        ),
        (
            '[backends.sim]\ntype = "quantum"\nprovider = "aer"\napi_key = "k"\n',
            {},
            'backends.sim: an API key is for IBM Quantum: set provider = "ibm"',
        ),
        (
            '[backends.sim]\ntype = "quantum"\napi_key_file = "k.txt"\n',
            {},
            'backends.sim: an API key is for IBM Quantum: set provider = "ibm"',
        ),
        (
            '[backends.sim]\ntype = "quantum"\nprovider = "fake"\n',
            {"LIMIT_BACKEND_SIM_API_KEY": "k"},
            "LIMIT_BACKEND_SIM_API_KEY is set, but backends.sim is not an IBM Quantum instance",
        ),
        (
            '[backends.q]\ntype = "quantum"\nprovider = "ibm"\napi_key_file = "missing.key"\n',
            {},
            "backends.q.api_key_file: cannot read",
        ),
        (
            '[backends.q]\ntype = "quantum"\nprovider = "ibm"\n',
            {"LIMIT_MODE": "prod", "LIMIT_BACKEND_Q_API_KEY": "changeme"},
            "the API key of backends.q in LIMIT_BACKEND_Q_API_KEY is a placeholder",
        ),
        (
            '[backends.q]\ntype = "quantum"\nprovider = "dwave"\n',
            {},
            "backends.q.provider: Input should be 'aer', 'fake' or 'ibm'",
        ),
    ],
)
def test_bad_backend_instances_are_clear_errors(
    tmp_path: Path, table: str, environ: dict[str, str], named: str
) -> None:
    path = write(tmp_path, table)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ)
    assert named in caught.value.detail
    assert "unknown key" not in caught.value.detail and str(path) in caught.value.detail


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("workers = 2", "starts each pool's runners at 16 executions at a time"),
        ('url = "http://127.0.0.1:9000"', "the platform calls no instance"),
        ('options = { device = "fake_fez" }', "`target` input picks its simulator or device"),
    ],
)
def test_instance_keys_without_an_effect_are_refused_saying_why(
    tmp_path: Path, key: str, why: str
) -> None:
    path = write(tmp_path, f'[backends.sim]\ntype = "quantum"\n{key}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    name = key.split(" ", 1)[0]
    assert f"backends.sim: {name} has no effect and is refused" in caught.value.detail
    assert why in caught.value.detail and "unknown key" not in caught.value.detail
