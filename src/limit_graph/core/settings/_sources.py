"""The sources :func:`~limit_graph.core.settings.load_settings` reads, as
pydantic-settings sources: the TOML file and the environment (with ``*_FILE`` secrets).

Each source returns a tree of sections; pydantic-settings merges them in priority
order (explicit values, the environment, the file, the defaults) and validates the
result once, so that a bad value is named wherever it came from.  Each source also
says where each key it gave came from (:attr:`origins`), for ``limit config check``.

pydantic-settings builds the sources of a class from its ``settings_customise_sources``
hook, which takes no arguments of a call; :func:`reading` hands one call's sources to
that hook through a context variable, so concurrent loads do not see each other's.
"""

from __future__ import annotations

import os
import tomllib
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from limit_graph.core.errors import ConfigError
from limit_graph.core.instances import ConfigWarning, api_key_variable
from limit_graph.core.settings._variables import (
    ENVIRONMENT_VARIABLES,
    SECRET_VARIABLES,
    read_variable,
)

__all__ = ["EnvironmentSource", "TomlFileSource", "active_sources", "reading", "set_path"]

_ACTIVE: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar(
    "limit_settings_sources", default=()
)


def active_sources() -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources of the :func:`reading` block this runs in; none outside one."""
    return _ACTIVE.get()


@contextmanager
def reading(*sources: PydanticBaseSettingsSource) -> Iterator[None]:
    """Build :class:`Settings` from ``sources`` (highest priority first) in this block."""
    token = _ACTIVE.set(sources)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``tree[a][b]…`` for ``path`` (a, b, …), making the tables on the way."""
    for key in path[:-1]:
        node = tree.get(key)
        if not isinstance(node, dict):
            node = tree[key] = {}
        tree = node
    tree[path[-1]] = value


def leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The dotted keys of the values in ``tree`` (tables are walked, not named)."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from leaves(value, f"{dotted}.")
        else:
            yield dotted


class _TreeSource(PydanticBaseSettingsSource):
    """A source that gives a whole tree at once, not a value per field."""

    origins: dict[str, str]

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        del field  # unused: __call__ gives the whole tree
        return None, field_name, False


class TomlFileSource(_TreeSource):
    """The config file: sections as tables; a secret in it is refused (naming the
    variable that holds it instead), relative ``[agents] paths`` are taken from the
    file's folder, and ``source`` names the file."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.tree = _read_toml(path)
        _refuse_secrets(self.tree, path)
        _warn_about_a_database_password(self.tree, path)
        _anchor_agent_paths(self.tree, path.parent)
        self.origins = dict.fromkeys(leaves(self.tree), f"file {path}")
        self.tree["source"] = str(path)

    def __call__(self) -> dict[str, Any]:
        return self.tree


class EnvironmentSource(_TreeSource):
    """The documented variables (:data:`ENVIRONMENT_VARIABLES`), each secret's also as
    ``<VARIABLE>_FILE``; an empty variable counts as unset."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.tree: dict[str, Any] = {}
        self.origins = {}
        for var, path in ENVIRONMENT_VARIABLES.items():
            found = read_variable(environ, var)
            if found is None:
                continue
            raw, origin = found
            value: Any = raw
            if var == "LOG_LEVEL":
                value = raw.upper()
            elif var == "LIMIT_CORS_ORIGINS":
                value = [part.strip() for part in raw.split(",") if part.strip()]
            elif var == "LIMIT_AGENT_PATHS":
                value = [part for part in raw.split(os.pathsep) if part.strip()]
            elif var == "DATABASE_URL":
                set_path(self.tree, ("storage", "type"), "database")
                self.origins["storage.type"] = origin
            set_path(self.tree, path, value)
            self.origins[".".join(path)] = origin

    def __call__(self) -> dict[str, Any]:
        return self.tree


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _refuse_secrets(tree: Mapping[str, Any], path: Path) -> None:
    """A secret written in the file is an error that names the variable to use."""
    found: list[tuple[str, str]] = []
    for dotted, var in SECRET_VARIABLES.items():
        *sections, key = dotted.split(".")
        node: Any = tree
        for section in sections:
            node = node.get(section) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and key in node:
            found.append((dotted, f"set {var} or {var}_FILE instead"))
    backends = tree.get("backends")
    tables = backends if isinstance(backends, Mapping) else {}
    if isinstance(tables.get("instances"), Mapping):
        tables = tables["instances"]
    for name, table in tables.items():
        if isinstance(table, Mapping) and "api_key" in table:
            var = api_key_variable(name)
            found.append(
                (
                    f"backends.{name}.api_key",
                    f"set {var} or {var}_FILE, or name a file holding it in "
                    f"backends.{name}.api_key_file",
                )
            )
    if found:
        errors = [
            {
                "loc": key,
                "msg": f"a secret is never read from the config file; {advice}",
                "type": "secret_in_file",
            }
            for key, advice in found
        ]
        lines = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
        raise ConfigError(f"invalid configuration in {path}: {lines}", errors)


def _warn_about_a_database_password(tree: Mapping[str, Any], path: Path) -> None:
    storage = tree.get("storage")
    url = storage.get("url") if isinstance(storage, Mapping) else None
    if not isinstance(url, str):
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        return  # validation names the bad URL
    if password:
        warnings.warn(
            f"storage.url in {path} holds a database password, which whoever reads the "
            "file reads: give the URL in DATABASE_URL or DATABASE_URL_FILE, or the "
            "password in PGPASSWORD or PGPASSFILE",
            ConfigWarning,
            stacklevel=2,
        )


def _anchor_agent_paths(tree: dict[str, Any], config_dir: Path) -> None:
    """Make the file's relative ``[agents] paths`` relative to its folder, not the
    working directory (anything but a list of strings is left to validation)."""
    section = tree.get("agents")
    paths = section.get("paths") if isinstance(section, dict) else None
    if isinstance(section, dict) and isinstance(paths, list):
        section["paths"] = [
            str(config_dir / Path(p).expanduser()) if isinstance(p, str) else p for p in paths
        ]
