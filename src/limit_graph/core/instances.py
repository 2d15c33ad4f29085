"""Backend-instance settings: what each named instance of a kind serves, and its API key.

Every table under ``[backends]`` is one instance.  A quantum instance may name the
target family it serves (``provider``), and an IBM one its IBM Quantum API key, which
is read from, in this order: the environment variable :func:`api_key_variable` names,
the file its ``_FILE`` twin names, or the file ``api_key_file`` names -- never from the
config file itself, where whoever reads the file would read the key
(``limit_graph.core.settings`` resolves it).  Keys that used to be accepted without any
effect (``workers``, ``url``, ``options``) are refused, saying why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from limit_graph.core.models import BackendKind

__all__ = [
    "PLACEHOLDER_SECRETS",
    "BackendInstance",
    "ConfigWarning",
    "TargetFamily",
    "api_key_variable",
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
    ``load_settings`` it holds the key from whichever source won (the environment
    variable :func:`api_key_variable` names or its ``_FILE`` twin, then ``api_key_file``).
    """

    model_config = ConfigDict(extra="forbid")

    type: BackendKind = Field(description="The backend kind it is an instance of.")
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
        default=None,
        description="IBM Quantum API key (provider = ibm); never in the file: its variable "
        "or api_key_file.",
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
