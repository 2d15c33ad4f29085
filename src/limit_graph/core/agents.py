"""Agent specifications and the registry the orchestrator looks agents up in.

An agent is a typed unit of work: a name, a version, pydantic input and output
models, the backend kinds it may run on, and the function that does the work (the
``fn`` of a Prefect task).  Packages contribute agents through the entry-point group
``limit_graph.agents``; each entry point names an iterable of :class:`AgentSpec`.

>>> registry = AgentRegistry.from_entry_points()
>>> registry.get("echo").version
'1.0.0'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel

from limit_graph.core.errors import ConfigError, NotFound
from limit_graph.core.models import BackendKind

__all__ = ["ENTRY_POINT_GROUP", "AgentRegistry", "AgentSpec"]

ENTRY_POINT_GROUP = "limit_graph.agents"


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

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

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


class AgentRegistry:
    """Agents by name and version; several versions of one name coexist.

    A reference is a name, meaning its newest version, or ``name@version``:

    >>> from limit_graph.tasks.general import AGENTS
    >>> registry = AgentRegistry(AGENTS)
    >>> registry.find("echo@1.0.0").name
    'echo'
    >>> registry.find("echo@9.9.9")
    Traceback (most recent call last):
    ...
    limit_graph.core.errors.NotFound: agent 'echo' has no version '9.9.9' (it has 1.0.0)
    """

    def __init__(self, agents: Iterable[AgentSpec] = ()) -> None:
        self._agents: dict[str, dict[str, AgentSpec]] = {}
        for agent in agents:
            self.register(agent)

    @classmethod
    def from_entry_points(cls) -> AgentRegistry:
        registry = cls()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                specs = ep.load()
            except Exception as exc:
                raise ConfigError(f"agent entry point {ep.name!r} failed to load: {exc}") from exc
            for spec in specs:
                registry.register(spec)
        return registry

    def register(self, agent: AgentSpec) -> None:
        try:
            Version(agent.version)
        except InvalidVersion:
            raise ConfigError(
                f"agent {agent.name!r} has version {agent.version!r}, which is not a version "
                "number (PEP 440, e.g. 1.2.0)"
            ) from None
        versions = self._agents.setdefault(agent.name, {})
        if agent.version in versions:
            raise ConfigError(f"agent {agent.name!r} version {agent.version} is registered twice")
        versions[agent.version] = agent

    def get(self, name: str, version: str | None = None) -> AgentSpec:
        """The agent ``name`` at ``version``, or its newest version."""
        versions = self._agents.get(name)
        if not versions:
            raise NotFound(f"no agent named {name!r}")
        if version is None:
            return versions[max(versions, key=Version)]
        try:
            return versions[version]
        except KeyError:
            known = ", ".join(v.version for v in self.versions(name))
            raise NotFound(f"agent {name!r} has no version {version!r} (it has {known})") from None

    def find(self, reference: str) -> AgentSpec:
        """The agent a reference names: ``name`` (newest) or ``name@version``."""
        name, _, version = reference.partition("@")
        return self.get(name, version or None)

    def versions(self, name: str) -> list[AgentSpec]:
        """Every version of ``name``, oldest first."""
        return sorted(self._agents.get(name, {}).values(), key=lambda a: Version(a.version))

    def list(self) -> list[AgentSpec]:
        """Every agent, each version, by name and then version."""
        return [agent for name in sorted(self._agents) for agent in self.versions(name)]

    def __contains__(self, reference: object) -> bool:
        if not isinstance(reference, str):
            return False
        try:
            self.find(reference)
        except NotFound:
            return False
        return True
