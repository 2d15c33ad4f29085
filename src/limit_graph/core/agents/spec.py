"""What an agent is: its :class:`AgentSpec`, and a function that carries one.

:class:`AgentFunction` is what ``@agent`` (``limit_graph.tasks.authoring``) returns:
still the function (calling it calls the function), with the spec beside it, so
discovery finds agents by looking at what a module defines.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, ParamSpec, TypeVar

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel

from limit_graph.core.compliance import CLASSIFICATIONS, Usage, WorkProfile
from limit_graph.core.models import BackendKind

__all__ = ["AgentFunction", "AgentSpec", "check_agent_name", "check_agent_version"]

P = ParamSpec("P")
R = TypeVar("R")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,199}")


def check_agent_name(name: object) -> str:
    """``name`` if it can name an agent (``echo``, ``quantum.sample``), else ValueError.

    >>> check_agent_name("maxcut.exact")
    'maxcut.exact'
    >>> check_agent_name("echo@1.0.0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'echo@1.0.0' is not an agent name: use letters, digits, ...
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an agent name: use letters, digits, '_', '.' and '-', starting "
            "with a letter or '_' (at most 200 characters)"
        )
    return name


def check_agent_version(version: object) -> str:
    """``version`` if it is a PEP 440 version number, else ValueError.

    >>> check_agent_version("1.2.0rc1")
    '1.2.0rc1'
    >>> check_agent_version("latest")
    Traceback (most recent call last):
    ...
    ValueError: 'latest' is not a version number (PEP 440, e.g. 1.2.0)
    """
    if isinstance(version, str):
        try:
            Version(version)
        except InvalidVersion:
            pass
        else:
            return version
    raise ValueError(f"{version!r} is not a version number (PEP 440, e.g. 1.2.0)")


@dataclass(frozen=True)
class AgentSpec:
    """What the platform knows of an agent; ``fn`` may be sync or async."""

    name: str
    version: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    fn: Callable[..., Any]
    backends: tuple[BackendKind, ...] = (BackendKind.LOCAL,)
    deterministic: bool = False
    blocking: bool = True
    """Whether a sync ``fn`` may block or burn CPU; ``False`` lets it run on the event loop."""
    inline: bool = True
    """Whether local work runs in the API process; ``False`` sends it to the local pool."""
    aggregate: Callable[[dict[str, Any]], Any] | None = field(
        default=None, compare=False, repr=False
    )
    """Combines fan-out results (instance name → result) into one, e.g. merged counts."""
    task: Any = field(default=None, compare=False, repr=False)
    origin: str = field(default="", compare=False)
    """Where it was defined (``file.py:12``, or an entry point), for error messages."""
    profile: Callable[[BaseModel], WorkProfile] | None = field(
        default=None, compare=False, repr=False
    )
    """What validated inputs ask of a quantum target (circuits, shots, the target's
    limits): read by the circuit checks and the shot and QPU-time quotas."""
    usage: Callable[[Any], Usage] | None = field(default=None, compare=False, repr=False)
    """What a result (its JSON document) says was used: what quotas are reconciled with."""
    checks: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)
    """Compliance checks every run of this agent passes, as declared in a session's
    ``policies`` (``{"check": "data-quality", ...}``)."""
    sensitive: bool = False
    """Whether its inputs and results are encrypted at rest (so are classified inputs)."""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def classified_inputs(self) -> Mapping[str, str]:
        """Input fields its schema tags with a data class
        (``Field(json_schema_extra={"classification": "pii"})``), by name."""
        return _classified_fields(self.input_model)

    def classified_given(
        self, inputs: Mapping[str, Any], tags: Mapping[str, str]
    ) -> dict[str, str]:
        """The inputs given (not null) that carry a data class, by the schema or by
        ``tags`` (a session's ``classification``, which wins), with their class."""
        schema = self.classified_inputs()
        if not schema and not tags:
            return {}
        merged = {**schema, **tags}
        return {name: tag for name, tag in merged.items() if inputs.get(name) is not None}

    @property
    def reference(self) -> str:
        """``name@version``, the reference that always names this spec."""
        return f"{self.name}@{self.version}"

    def describe(self) -> dict[str, Any]:
        """The agent as the API lists it, with JSON Schemas of its models."""
        return {
            "id": self.name,
            "version": self.version,
            "description": self.description,
            "backends": [b.value for b in self.backends],
            "deterministic": self.deterministic,
            "input_schema": self.input_model.model_json_schema(),
            "output_schema": self.output_model.model_json_schema(),
        }


@functools.cache
def _classified_fields(model: type[BaseModel]) -> Mapping[str, str]:
    found = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        tag = extra.get("classification") if isinstance(extra, dict) else None
        if isinstance(tag, str) and tag in CLASSIFICATIONS:
            found[info.alias or name] = tag
    return MappingProxyType(found)


class AgentFunction(Generic[P, R]):
    """A function that is an agent: calling it calls the function, ``spec`` describes it.

    It keeps the function's signature for type checkers (``P``, ``R``) and its name,
    docstring and module, which discovery uses: an agent belongs to the module that
    defines its function, not to every module that imports it.
    """

    def __init__(self, fn: Callable[P, R], spec: AgentSpec) -> None:
        self.fn = fn
        self.spec = spec
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<agent {self.spec.reference} ({self.spec.origin or self.fn.__qualname__})>"
