"""Settings from defaults, TOML and the environment; bad config is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from limit_graph.core.errors import ConfigError
from limit_graph.core.models import BackendKind
from limit_graph.core.settings import load_settings, normalize_database_url


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
workers = 3
[backends.edge]
type = "remote"
url = "http://10.0.0.1:8080"
""",
    )
    settings = load_settings(path, environ={})
    assert settings.server.port == 9000 and settings.server.workers == 2
    assert settings.file_storage_path == Path("/tmp/limit-data")
    assert settings.backends.default is BackendKind.QUANTUM
    assert settings.backends.instances["aer"].workers == 3
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
