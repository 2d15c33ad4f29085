"""Agent specifications and the registry the orchestrator looks agents up in.

An agent is a typed unit of work: a name, a version, pydantic input and output
models, the backend kinds it may run on, and the function that does the work (the
``fn`` of a Prefect task).  Agents come from two places, gathered by
:meth:`AgentRegistry.discover`: the entry-point group ``limit_graph.agents`` (each
entry point names an iterable of agents, or a module of them) and the folders named
in ``[agents] paths``, whose Python files define agents with ``@agent``
(:mod:`limit_graph.tasks.authoring`; :mod:`.modules` says how folders are imported).

>>> registry = AgentRegistry.from_entry_points()
>>> registry.get("echo").version
'1.0.0'
"""

from limit_graph.core.agents.registry import ENTRY_POINT_GROUP, AgentRegistry
from limit_graph.core.agents.spec import (
    AgentFunction,
    AgentSpec,
    check_agent_name,
    check_agent_version,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentFunction",
    "AgentRegistry",
    "AgentSpec",
    "check_agent_name",
    "check_agent_version",
]
