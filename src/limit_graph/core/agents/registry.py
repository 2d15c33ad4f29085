"""The registry the orchestrator looks agents up in, and where its agents come from."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import replace
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from packaging.version import Version

from limit_graph.core.agents.modules import agents_defined_in, loading_folders
from limit_graph.core.agents.spec import (
    AgentFunction,
    AgentSpec,
    check_agent_name,
    check_agent_version,
)
from limit_graph.core.errors import ConfigError, NotFound

__all__ = ["ENTRY_POINT_GROUP", "AgentRegistry"]

ENTRY_POINT_GROUP = "limit_graph.agents"


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

    def __init__(self, agents: Iterable[AgentSpec | AgentFunction[..., Any]] = ()) -> None:
        self._agents: dict[str, dict[str, AgentSpec]] = {}
        for agent in agents:
            self.register(agent)

    @classmethod
    def discover(cls, paths: Sequence[Path] = ()) -> AgentRegistry:
        """The entry points' agents and those of the agent folders ``paths``
        (``[agents] paths``); a file that does not load, or one (name, version)
        defined twice, is a :class:`ConfigError` and nothing of the folders stays loaded.

        >>> AgentRegistry.discover([]).get("sleep").version
        '1.0.0'
        """
        registry = cls.from_entry_points()
        with loading_folders() as loader:
            for folder in paths:
                for spec in loader.load(folder):
                    registry.register(spec)
        return registry

    @classmethod
    def from_entry_points(cls) -> AgentRegistry:
        """The agents of the ``limit_graph.agents`` entry points: each names an iterable
        of agents (:class:`AgentSpec` or ``@agent`` functions) or a module of them."""
        registry = cls()
        for ep in _agent_entry_points():
            for spec in _entry_point_agents(ep):
                registry.register(spec)
        return registry

    def register(self, agent: AgentSpec | AgentFunction[..., Any]) -> None:
        """Add ``agent``; a bad name or version, or a (name, version) already here, is a
        :class:`ConfigError` naming where each came from."""
        spec = agent.spec if isinstance(agent, AgentFunction) else agent
        where = f" (in {spec.origin})" if spec.origin else ""
        try:
            check_agent_name(spec.name)
            check_agent_version(spec.version)
        except ValueError as exc:
            raise ConfigError(f"agent {spec.name!r}{where}: {exc}") from None
        versions = self._agents.setdefault(spec.name, {})
        if (first := versions.get(spec.version)) is not None:
            origins = " and ".join(o or "an unnamed source" for o in (first.origin, spec.origin))
            raise ConfigError(
                f"agent {spec.name!r} version {spec.version} is defined twice: in {origins}"
            )
        versions[spec.version] = spec

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


@functools.cache
def _agent_entry_points() -> tuple[EntryPoint, ...]:
    """The installed ``limit_graph.agents`` entry points, looked up once a process: the
    lookup reads every installed distribution's metadata (about a tenth of a second
    here), and what is installed does not change under a running process."""
    return tuple(entry_points(group=ENTRY_POINT_GROUP))


def _entry_point_agents(ep: EntryPoint) -> list[AgentSpec]:
    origin = f"entry point {ep.name!r} ({ep.value})"
    try:
        loaded = ep.load()
        if isinstance(loaded, ModuleType):
            items: list[object] = list(agents_defined_in(loaded))
        else:
            items = list(loaded)
    except Exception as exc:
        raise ConfigError(f"agent {origin} failed to load: {exc}") from exc
    specs = []
    for item in items:
        spec = item.spec if isinstance(item, AgentFunction) else item
        if not isinstance(spec, AgentSpec):
            raise ConfigError(f"agent {origin} holds {item!r}, which is not an agent")
        specs.append(spec if spec.origin else replace(spec, origin=origin))
    return specs
