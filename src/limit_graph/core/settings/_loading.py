"""Loading the settings: explicit overrides, then the environment, then the TOML file,
then the defaults -- merged and validated by pydantic-settings -- and each backend
instance's API key after them.

A bad key or value is a :class:`ConfigError` naming the key and the file (an unknown
key with the known key it most looks like); a key that needs care but still works is
a :class:`~limit_graph.core.instances.ConfigWarning`.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from limit_graph.core.errors import ConfigError
from limit_graph.core.settings._backend_keys import resolve_api_keys
from limit_graph.core.settings._settings import Settings, normalize_database_url
from limit_graph.core.settings._sources import (
    EnvironmentSource,
    TomlFileSource,
    leaves,
    reading,
    set_path,
)

__all__ = ["LoadedSettings", "load_settings", "load_settings_explained"]


@dataclass(frozen=True)
class LoadedSettings:
    """Settings and where each key that is not a default came from: ``file PATH``,
    ``env VAR``, ``file PATH (VAR_FILE)`` or ``given`` (an explicit override)."""

    settings: Settings
    origins: dict[str, str] = field(default_factory=dict)

    def origin(self, key: str) -> str:
        """Where the dotted ``key`` came from; ``default`` when no source gave it."""
        return self.origins.get(key, "default")


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from the file, the environment and explicit overrides
    (``section__key=value``; ``None`` is no override).

    The file is ``config_path``, else the one ``LIMIT_CONFIG`` names, else none.

    >>> load_settings(environ={"BIND_ADDRESS": "0.0.0.0:9000"}).server.port
    9000
    """
    return _load(config_path, environ, overrides).settings


def load_settings_explained(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> LoadedSettings:
    """:func:`load_settings`, saying where each key came from.

    >>> loaded = load_settings_explained(environ={"LIMIT_MODE": "dev"})
    >>> loaded.origin("mode"), loaded.origin("server.bind_address")
    ('env LIMIT_MODE', 'default')
    """
    return _load(config_path, environ, overrides)


def _load(
    config_path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None,
    overrides: Mapping[str, Any],
) -> LoadedSettings:
    env = os.environ if environ is None else environ
    path = config_path if config_path is not None else env.get("LIMIT_CONFIG")
    given: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is not None:
            set_path(given, tuple(key.split("__")), value)
    environment = EnvironmentSource(Settings, env)
    sources: tuple[TomlFileSource | EnvironmentSource, ...] = (environment,)
    origin = "environment"
    origins: dict[str, str] = {}
    if path:
        file = TomlFileSource(Settings, Path(path))
        sources, origin, origins = (environment, file), str(file.path), dict(file.origins)
    origins.update(environment.origins)
    origins.update(dict.fromkeys(leaves(given), "given"))
    try:
        with reading(*sources):
            settings = Settings(**given)
    except ValidationError as exc:
        raise _config_error(exc, origin) from None
    if settings.storage.type == "database":
        normalize_database_url(settings.database_url)
    config_dir = Path(settings.source).parent if settings.source else Path()
    instances, key_origins = resolve_api_keys(
        settings.backends.instances,
        mode=settings.mode,
        config_dir=config_dir,
        env=env,
        origin=origin,
    )
    origins.update(key_origins)
    backends = settings.backends.model_copy(update={"instances": instances})
    folders = [folder.expanduser().absolute() for folder in settings.agents.paths]
    agents = settings.agents.model_copy(update={"paths": folders})
    settings = settings.model_copy(update={"backends": backends, "agents": agents})
    return LoadedSettings(settings, origins)


def _config_error(exc: ValidationError, origin: str) -> ConfigError:
    errors = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
            if (known := _closest_key(loc)) is not None:
                message += f"; did you mean {known!r}?"
        elif not loc:  # a rule across keys: its message names them
            message = message.removeprefix("Value error, ")
        errors.append({"loc": _format_location(loc), "msg": message, "type": error["type"]})
    lines = "; ".join(
        e["msg"] if e["loc"] == "(top level)" else f"{e['loc']}: {e['msg']}" for e in errors
    )
    return ConfigError(f"invalid configuration in {origin}: {lines}", errors)


def _format_location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p != "instances"]
    return ".".join(parts) or "(top level)"


def _closest_key(loc: tuple[int | str, ...]) -> str | None:
    """The known key of the unknown one's table that it most looks like (a typo)."""
    model: type[BaseModel] = Settings
    parts, at = loc[:-1], 0
    while at < len(parts):
        name = parts[at]
        if not isinstance(name, str) or name not in model.model_fields:
            return None
        found = _model_of(model.model_fields[name].annotation)
        if found is None:
            return None
        model, keyed = found
        at += 2 if keyed else 1  # a table of named tables: skip the name
    known = [name for name in model.model_fields if name != "source"]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.75)
    return close[0] if close else None


def _model_of(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model a field holds (itself, or an optional's), or a mapping's values (then
    ``True``: the next part of a location is a name)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [m for a in args if (m := _model_of(a)) is not None]
        return models[0] if len(models) == 1 else None
    if origin is dict and len(args) == 2:
        held = _model_of(args[1])
        return (held[0], True) if held is not None and not held[1] else None
    return None
