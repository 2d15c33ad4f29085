"""Settings from defaults, TOML and the environment; bad config is a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from limit_graph.core.errors import ConfigError
from limit_graph.core.models import BackendKind
from limit_graph.core.settings import (
    ConfigWarning,
    api_key_variable,
    load_settings,
    load_settings_explained,
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


@pytest.mark.parametrize("mode", ["dev", "prod"])
def test_the_documented_config_file_is_refused_naming_the_key_the_file_and_the_variables(
    tmp_path: Path, mode: str
) -> None:
    """Its ``api_key = "..."`` is a secret in the file: refused in either mode (it used
    to load in dev mode with a warning), with where to put the key instead."""
    path = write(tmp_path, DOCUMENTED_CONFIG)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"LIMIT_MODE": mode})
    detail = caught.value.detail
    assert detail == (
        f"invalid configuration in {path}: backends.quantum.api_key: a secret is never read "
        "from the config file; set LIMIT_BACKEND_QUANTUM_API_KEY or "
        "LIMIT_BACKEND_QUANTUM_API_KEY_FILE, or name a file holding it in "
        "backends.quantum.api_key_file"
    )
    assert caught.value.errors[0]["type"] == "secret_in_file"


SECRETS_IN_THE_FILE = [
    ('admin_api_key = "{v}"\n', "admin_api_key", "LIMIT_ADMIN_API_KEY"),
    ('[dispatch]\nrunner_api_key = "{v}"\n', "dispatch.runner_api_key", "LIMIT_RUNNER_API_KEY"),
    ('[auth]\nsecret = "{v}"\n', "auth.secret", "LIMIT_AUTH_SECRET"),
    ('[encryption]\nkek = "{v}"\n', "encryption.kek", "LIMIT_DATA_KEK"),
    (
        '[encryption]\nprevious_keks = ["{v}"]\n',
        "encryption.previous_keks",
        "LIMIT_DATA_KEK_PREVIOUS",
    ),
    ('[lineage]\napi_key = "{v}"\n', "lineage.api_key", "LIMIT_OPENLINEAGE_API_KEY"),
    (
        '[backends.east]\ntype = "quantum"\nprovider = "ibm"\napi_key = "{v}"\n',
        "backends.east.api_key",
        "LIMIT_BACKEND_EAST_API_KEY",
    ),
]


@pytest.mark.parametrize(("text", "key", "variable"), SECRETS_IN_THE_FILE)
def test_a_secret_written_in_the_file_is_refused_naming_its_variable(
    tmp_path: Path, text: str, key: str, variable: str
) -> None:
    value = "a-real-looking-secret-of-some-length-42"
    path = write(tmp_path, text.format(v=value))
    for mode in ("dev", "prod"):
        with pytest.raises(ConfigError) as caught:
            load_settings(path, environ={"LIMIT_MODE": mode})
        detail = caught.value.detail
        assert f"invalid configuration in {path}: {key}: a secret is never read" in detail
        assert f"set {variable} or {variable}_FILE" in detail
        assert value not in detail and "unknown key" not in detail


def test_every_secret_in_the_file_is_named_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, 'admin_api_key = "x"\n[auth]\nsecret = "y"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert [e["loc"] for e in caught.value.errors] == ["admin_api_key", "auth.secret"]


@pytest.mark.filterwarnings("ignore:storage.url in")  # the documented file's password
def test_the_key_comes_from_the_variable_then_its_file_then_the_key_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ibm.key").write_text("from-the-key-file\n")
    (tmp_path / "held.key").write_text("from-the-variable-file\n")
    with_file = DOCUMENTED_CONFIG.replace('api_key = "..."', 'api_key_file = "keys/ibm.key"')
    without = DOCUMENTED_CONFIG.replace('api_key = "..."\n', "")

    def key(text: str, environ: dict[str, str]) -> tuple[str | None, str]:
        loaded = load_settings_explained(write(tmp_path, text), environ=environ)
        secret = loaded.settings.backends.instances["quantum"].api_key
        where = loaded.origin("backends.quantum.api_key")
        return (secret.get_secret_value() if secret else None), where

    variable = {"LIMIT_BACKEND_QUANTUM_API_KEY": "from-the-environment"}
    held = {"LIMIT_BACKEND_QUANTUM_API_KEY_FILE": str(tmp_path / "held.key")}
    assert key(with_file, variable) == (
        "from-the-environment",
        "env LIMIT_BACKEND_QUANTUM_API_KEY",
    )
    assert key(with_file, held) == (
        "from-the-variable-file",
        f"file {tmp_path / 'held.key'} (LIMIT_BACKEND_QUANTUM_API_KEY_FILE)",
    )
    assert key(with_file, {"LIMIT_MODE": "prod"}) == (
        "from-the-key-file",
        f"file {tmp_path / 'keys' / 'ibm.key'}",
    )
    assert key(without, {}) == (None, "default")
    with pytest.raises(ConfigError, match="set LIMIT_BACKEND_QUANTUM_API_KEY or LIMIT_BACK"):
        key(without, {**variable, **held})


def test_a_placeholder_key_from_the_environment_warns_in_dev(tmp_path: Path) -> None:
    path = write(tmp_path, DOCUMENTED_CONFIG.replace('api_key = "..."\n', ""))
    with pytest.warns(ConfigWarning) as caught:
        load_settings(path, environ={"LIMIT_BACKEND_QUANTUM_API_KEY": "changeme"})
    [message] = [str(w.message) for w in caught if "fail to sign in" in str(w.message)]
    assert "LIMIT_BACKEND_QUANTUM_API_KEY is a placeholder ('changeme')" in message
    assert "backends.quantum.api_key_file" in message


SECRET_FILE_VARIABLES = [
    ("LIMIT_ADMIN_API_KEY", "admin_api_key"),
    ("LIMIT_RUNNER_API_KEY", "dispatch.runner_api_key"),
    ("LIMIT_AUTH_SECRET", "auth.secret"),
    ("LIMIT_DATA_KEK", "encryption.kek"),
    ("LIMIT_DATA_KEK_PREVIOUS", "encryption.previous_keks"),
    ("LIMIT_OPENLINEAGE_API_KEY", "lineage.api_key"),
    ("DATABASE_URL", "storage.url"),
]


def _value_at(settings: Any, key: str) -> Any:
    for part in key.split("."):
        settings = getattr(settings, part)
    if isinstance(settings, list):
        [settings] = settings
    return settings if isinstance(settings, str) else settings.get_secret_value()


@pytest.mark.parametrize(("variable", "key"), SECRET_FILE_VARIABLES)
def test_every_secret_variable_may_name_a_file_instead(
    tmp_path: Path, variable: str, key: str
) -> None:
    value = "postgresql://u:pw@db/limit" if variable == "DATABASE_URL" else "s3cr3t-" * 4
    (tmp_path / "held").write_text(f"{value}\n")
    loaded = load_settings_explained(environ={f"{variable}_FILE": str(tmp_path / "held")})
    assert _value_at(loaded.settings, key) == value
    assert loaded.origin(key) == f"file {tmp_path / 'held'} ({variable}_FILE)"
    with pytest.raises(ConfigError, match=f"set {variable} or {variable}_FILE, not both"):
        load_settings(environ={variable: value, f"{variable}_FILE": str(tmp_path / "held")})
    with pytest.raises(ConfigError, match=f"{variable}_FILE names .*missing, which cannot"):
        load_settings(environ={f"{variable}_FILE": str(tmp_path / "missing")})


def test_where_each_key_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nbind_address = "127.0.0.1:1"\nworkers = 2\n')
    loaded = load_settings_explained(
        path, environ={"BIND_ADDRESS": "127.0.0.1:7000"}, storage__type="memory"
    )
    assert loaded.origin("server.bind_address") == "env BIND_ADDRESS"
    assert loaded.origin("server.workers") == f"file {path}"
    assert loaded.origin("storage.type") == "given"
    assert loaded.origin("storage.pool_size") == "default"


def test_a_database_password_in_the_file_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, '[storage]\nurl = "postgresql://u:pw@db:5432/limit"\n')
    with pytest.warns(ConfigWarning, match="storage.url in .* holds a database password"):
        settings = load_settings(path, environ={})
    assert settings.storage.url == "postgresql://u:pw@db:5432/limit"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (
            '[server]\nbind_adress = "x:1"\n',
            "server.bind_adress: unknown key; did you mean 'bind_address'?",
        ),
        ('[sever]\nbind_address = "x:1"\n', "sever: unknown key; did you mean 'server'?"),
        ('[backends.aer]\ntype = "quantum"\nmax_runner = 2\n', "did you mean 'max_runners'?"),
        (
            "[governance.rates.read]\nper_princpal = { rate = 1, burst = 1 }\n",
            "did you mean 'per_principal'?",
        ),
        (
            '[auth.oidc.claims]\ntennant = "org"\n',
            "auth.oidc.claims.tennant: unknown key; did you mean 'tenant'?",
        ),
    ],
)
def test_an_unknown_key_names_the_known_one_it_looks_like(
    tmp_path: Path, text: str, hint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert hint in caught.value.detail and str(path) in caught.value.detail


def test_an_unknown_key_unlike_any_gets_no_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "[server]\nzzz = 1\n"), environ={})
    assert caught.value.detail.endswith("server.zzz: unknown key")


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
