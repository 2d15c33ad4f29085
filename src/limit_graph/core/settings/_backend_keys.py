"""Each backend instance's IBM Quantum API key, from the environment or a file.

The instances are the config file's, so their keys are read once it is validated: from
the variable :func:`~limit_graph.core.instances.api_key_variable` names, else the file
that variable's ``_FILE`` twin names, else the instance's ``api_key_file`` (relative to
the config file's folder), else a key given explicitly to ``load_settings``.  Never
from the config file itself: :mod:`._sources` refuses an ``api_key`` written there.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from limit_graph.core.errors import ConfigError
from limit_graph.core.instances import (
    PLACEHOLDER_SECRETS,
    BackendInstance,
    ConfigWarning,
    api_key_variable,
)
from limit_graph.core.settings._variables import read_variable

__all__ = ["resolve_api_keys"]


def resolve_api_keys(
    configured: Mapping[str, BackendInstance],
    *,
    mode: Literal["dev", "prod"],
    config_dir: Path,
    env: Mapping[str, str],
    origin: str,
) -> tuple[dict[str, BackendInstance], dict[str, str]]:
    """Each instance with its API key, and where each key came from (by
    ``backends.<name>.api_key``).  A placeholder key is refused in prod and warned about
    in dev; ``origin`` names the config file in messages."""
    instances = dict(configured)
    origins: dict[str, str] = {}
    for name, instance in configured.items():
        variable = api_key_variable(name)
        where = f"backends.{name}"
        advice = (
            f"put the key in a file named by {where}.api_key_file or in the environment "
            f"variable {variable} (or the file {variable}_FILE names)"
        )
        found = read_variable(env, variable, file_allowed=True)
        if found is not None:
            key, source = found[0].strip(), found[1]
            if instance.provider != "ibm":
                raise ConfigError(
                    f"invalid configuration in {origin}: {variable} is set, but {where} "
                    'is not an IBM Quantum instance (provider = "ibm")'
                )
        elif instance.api_key_file is not None:  # read only when it is the key's source
            path = config_dir / instance.api_key_file
            key, source = _read_key_file(path, origin, where), f"file {path}"
        elif instance.api_key is not None:
            key, source = instance.api_key.get_secret_value(), "given"
        else:
            continue
        if key.lower() in PLACEHOLDER_SECRETS:
            if mode == "prod":
                raise ConfigError(
                    f"invalid configuration in {origin}: the API key of {where} in "
                    f"{source.removeprefix('env ')} is a placeholder ({key!r}); {advice}"
                )
            warnings.warn(
                f"{source.removeprefix('env ')} is a placeholder ({key!r}), not an IBM "
                f"Quantum API key: IBM jobs of instance {name!r} will fail to sign in; "
                f"{advice}",
                ConfigWarning,
                stacklevel=4,  # at load_settings' caller
            )
        instances[name] = instance.model_copy(update={"api_key": SecretStr(key)})
        origins[f"{where}.api_key"] = source
    return instances, origins


def _read_key_file(path: Path, origin: str, where: str) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"invalid configuration in {origin}: {where}.api_key_file: cannot read {path} "
            f"({exc.strerror or exc})"
        ) from None
    if not key:
        raise ConfigError(
            f"invalid configuration in {origin}: {where}.api_key_file: {path} is empty"
        )
    return key
