"""The agent registry and the built-in agents as Prefect tasks."""

from __future__ import annotations

import pytest
from prefect import Task

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.errors import ConfigError, NotFound


def test_builtin_agents_come_from_entry_points_as_prefect_tasks() -> None:
    registry = AgentRegistry.from_entry_points()
    names = [a.name for a in registry.list()]
    assert {"echo", "sleep", "fail"} <= set(names)
    for name in ("echo", "sleep", "fail"):
        spec = registry.get(name)
        assert isinstance(spec.task, Task) and spec.task.fn is spec.fn
    assert registry.get("sleep").is_async and not registry.get("echo").is_async


def test_unknown_agent_and_duplicate_registration() -> None:
    registry = AgentRegistry.from_entry_points()
    with pytest.raises(NotFound, match="teleport"):
        registry.get("teleport")
    with pytest.raises(ConfigError, match="twice"):
        registry.register(registry.get("echo"))
