"""Backend-instance settings: what each named instance of a kind serves, and its API key.

Every table under ``[backends]`` is one instance.  A quantum instance may name the
target family it serves (``provider``), and an IBM one its IBM Quantum API key, which
is read from, in this order: the environment variable :func:`api_key_variable` names,
the file ``api_key_file`` names, or ``api_key`` in the config file itself (dev mode
only: anyone who reads the config file reads the key).  Keys that used to be accepted
without any effect (``workers``, ``url``, ``options``) are refused, saying why.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from limit_graph.core.errors import ConfigError
from limit_graph.core.models import BackendKind

__all__ = [
    "PLACEHOLDER_SECRETS",
    "BackendInstance",
    "ConfigWarning",
    "TargetFamily",
    "api_key_variable",
    "resolve_api_keys",
]

PLACEHOLDER_SECRETS = frozenset(
    {"", "...", "changeme", "change-me", "secret", "admin", "password", "your-api-key"}
)

TargetFamily = Literal["aer", "fake", "ibm"]
"""Quantum target families: ``aer``, ``fake:<device>`` and ``ibm:<backend>`` targets."""


class ConfigWarning(UserWarning):
    """A setting that works but needs care; ``limit up`` prints these at start."""


_NO_EFFECT = {
    "workers": "the supervisor starts each pool's runners at 16 executions at a time "
    "(`limit runner --concurrency N` sets a runner's own)",
    "url": "the platform calls no instance: an instance's runners call the platform "
    "(start them where the work should run: `limit runner --pool <kind> --instance <name>`)",
    "options": "each quantum execution's `target` input picks its simulator or device "
    "(`provider` limits an instance to aer, fake or ibm targets)",
}


class BackendInstance(BaseModel):
    """A named instance of a backend kind (federation): its runners, what it serves.

    ``api_key`` is the IBM Quantum API key of a ``provider = "ibm"`` instance; after
    :func:`load_settings` it holds the key from whichever source won (the environment
    variable :func:`api_key_variable` names, then ``api_key_file``, then the file).
    """

    model_config = ConfigDict(extra="forbid")

    type: BackendKind
    max_runners: int = Field(default=4, ge=1, le=256, description="Runners started at most.")
    capabilities: list[str] = Field(
        default_factory=list, description="Agents it serves; empty means every agent."
    )
    provider: TargetFamily | None = Field(
        default=None,
        description="Quantum only: the target family it serves (aer, fake or ibm); "
        "none serves every target.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="IBM Quantum API key (provider = ibm); dev mode only."
    )
    api_key_file: Path | None = Field(
        default=None, description="File holding the IBM Quantum API key (provider = ibm)."
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_keys_without_effect(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping):
            found = [key for key in _NO_EFFECT if key in raw]
            if found:
                raise PydanticCustomError(
                    "no_effect",
                    "; ".join(
                        f"{key} has no effect and is refused: {_NO_EFFECT[key]}" for key in found
                    ),
                )
        return raw

    @model_validator(mode="after")
    def _provider_fits_the_kind(self) -> BackendInstance:
        if self.provider is not None and self.type is not BackendKind.QUANTUM:
            raise PydanticCustomError(
                "provider_not_quantum",
                "provider = {provider} is for quantum instances; this one is {kind}",
                {"provider": f'"{self.provider}"', "kind": self.type.value},
            )
        if (self.api_key is not None or self.api_key_file is not None) and self.provider != "ibm":
            raise PydanticCustomError(
                "api_key_needs_ibm",
                'an API key is for IBM Quantum: set provider = "ibm" or remove '
                "api_key and api_key_file",
            )
        return self


def api_key_variable(instance: str) -> str:
    """The environment variable that holds a backend instance's API key.

    >>> api_key_variable("ibm-east")
    'LIMIT_BACKEND_IBM_EAST_API_KEY'
    """
    return f"LIMIT_BACKEND_{re.sub(r'[^A-Za-z0-9]', '_', instance).upper()}_API_KEY"


def resolve_api_keys(
    configured: Mapping[str, BackendInstance],
    *,
    mode: Literal["dev", "prod"],
    config_dir: Path,
    env: Mapping[str, str],
    origin: str,
) -> dict[str, BackendInstance]:
    """Each instance with its API key from its variable, else its ``api_key_file``
    (relative to ``config_dir``), else the config file itself: dev mode only, with a
    :class:`ConfigWarning`.  A placeholder key is refused in prod and warned about in dev.
    ``origin`` names the config file in messages."""
    instances = dict(configured)
    for name, instance in configured.items():
        variable = api_key_variable(name)
        where = f"backends.{name}"
        advice = (
            f"put the key in a file named by {where}.api_key_file or in the environment "
            f"variable {variable}"
        )
        inline = instance.api_key.get_secret_value() if instance.api_key else None
        if inline is not None and mode == "prod":
            raise ConfigError(
                f"invalid configuration in {origin}: {where}.api_key: prod mode refuses an "
                f"API key written in the config file; {advice}"
            )
        key: str | None
        if env.get(variable):
            key, source = env[variable].strip(), variable
            if instance.provider != "ibm":
                raise ConfigError(
                    f"invalid configuration in {origin}: {variable} is set, but {where} "
                    'is not an IBM Quantum instance (provider = "ibm")'
                )
        elif instance.api_key_file is not None:  # read only when it is the key's source
            path = config_dir / instance.api_key_file
            key, source = _read_key_file(path, origin, where), str(path)
        else:
            key, source = inline, f"{where}.api_key"
        if key is None:
            continue
        if key.lower() in PLACEHOLDER_SECRETS:
            if mode == "prod":
                raise ConfigError(
                    f"invalid configuration in {origin}: the API key of {where} in {source} "
                    f"is a placeholder ({key!r}); {advice}"
                )
            _warn(
                f"{source} is a placeholder ({key!r}), not an IBM Quantum API key: IBM jobs "
                f"of instance {name!r} will fail to sign in; {advice}"
            )
        elif source == f"{where}.api_key":
            _warn(
                f"{where}.api_key: the IBM Quantum API key is read from the config file "
                f"{origin}, where whoever reads the file reads the key (prod mode refuses "
                f"it); {advice}"
            )
        if inline is not None and source != f"{where}.api_key":
            _warn(f"{where}.api_key in {origin} is not used: the key from {source} wins")
        instances[name] = instance.model_copy(update={"api_key": SecretStr(key)})
    return instances


def _warn(message: str) -> None:
    warnings.warn(message, ConfigWarning, stacklevel=4)  # at load_settings' caller


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
