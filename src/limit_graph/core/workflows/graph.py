"""The DAG of a workflow: its edges, a stable run order, and drawings of it.

>>> graph = WorkflowGraph(["a", "b", "c"], {"a": [], "b": ["a"], "c": ["a", "b"]})
>>> graph.order(), sorted(graph.downstream("a"))
(['a', 'b', 'c'], ['b', 'c'])
>>> print(graph.mermaid())
flowchart TD
    s0["a"]
    s1["b"]
    s2["c"]
    s0 --> s1
    s0 --> s2
    s1 --> s2
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["GraphNode", "WorkflowGraph", "find_cycles"]


@dataclass(frozen=True)
class GraphNode:
    """What a drawing shows of a step."""

    agent: str | None = None
    """The agent as the step names it."""
    version: str | None = None
    """The agent version it resolved to."""
    backend: str | None = None
    map: str | None = None
    """The map's ``as`` name, for a mapped step."""
    when: str | None = None


class WorkflowGraph:
    """Steps in spec order and each one's direct upstream steps."""

    def __init__(
        self,
        steps: Sequence[str],
        upstream: Mapping[str, Sequence[str]],
        nodes: Mapping[str, GraphNode] | None = None,
    ) -> None:
        self.steps: list[str] = list(steps)
        self.upstream: dict[str, list[str]] = {s: list(upstream.get(s, ())) for s in self.steps}
        self.nodes: dict[str, GraphNode] = dict(nodes or {})
        self._position = {step: index for index, step in enumerate(self.steps)}
        self._dependents: dict[str, list[str]] = {step: [] for step in self.steps}
        for step in self.steps:
            for up in self.upstream[step]:
                self._dependents[up].append(step)

    def dependents(self, step: str) -> list[str]:
        """The steps that name ``step`` directly, in spec order."""
        return list(self._dependents[step])

    def downstream(self, step: str) -> set[str]:
        """Every step that depends on ``step``, directly or not (``step`` itself not)."""
        found: set[str] = set()
        stack = [step]
        while stack:
            for dependent in self._dependents[stack.pop()]:
                if dependent not in found:
                    found.add(dependent)
                    stack.append(dependent)
        return found

    def order(self) -> list[str]:
        """A topological order; among steps ready at once, spec order decides."""
        waiting = {step: len(self.upstream[step]) for step in self.steps}
        ready = [self._position[s] for s, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        ordered: list[str] = []
        while ready:
            step = self.steps[heapq.heappop(ready)]
            ordered.append(step)
            for dependent in self._dependents[step]:
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    heapq.heappush(ready, self._position[dependent])
        if len(ordered) != len(self.steps):
            raise ValueError("the graph has a cycle")
        return ordered

    def edges(self) -> list[tuple[str, str]]:
        """``(upstream, step)`` pairs, by step in spec order."""
        return [(up, step) for step in self.steps for up in self.upstream[step]]

    def to_json(self) -> dict[str, Any]:
        """``{"nodes": [...], "edges": [{"from", "to"}]}``, as ``/workflows/validate``
        answers."""
        nodes = []
        for step in self.steps:
            node = self.nodes.get(step, GraphNode())
            nodes.append(
                {
                    "id": step,
                    "agent": node.agent,
                    "version": node.version,
                    "backend": node.backend,
                    "map": node.map is not None,
                    "when": node.when,
                }
            )
        edges = [{"from": up, "to": step} for up, step in self.edges()]
        return {"nodes": nodes, "edges": edges}

    def mermaid(self) -> str:
        """The DAG as Mermaid ``flowchart TD`` text: a node per step showing its id and
        agent; a mapped step drawn as a subroutine (``[[...]]``) marked with its item
        name, a conditional one with its ``when``."""
        names = {step: f"s{index}" for index, step in enumerate(self.steps)}
        lines = ["flowchart TD"]
        for step in self.steps:
            node = self.nodes.get(step, GraphNode())
            label = [step]
            if node.agent:
                label.append(node.agent)
            if node.map is not None:
                label.append(f"map: each {node.map}")
            if node.when is not None:
                label.append(f"when: {node.when}")
            text = "<br/>".join(_escape(part) for part in label)
            opening, closing = ("[[", "]]") if node.map is not None else ("[", "]")
            lines.append(f'    {names[step]}{opening}"{text}"{closing}')
        lines.extend(f"    {names[up]} --> {names[step]}" for up, step in self.edges())
        return "\n".join(lines)


def _escape(text: str) -> str:
    """Text safe inside a quoted Mermaid label (its entity codes, not HTML's)."""
    replacements = {"&": "#amp;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "#": "#35;"}
    out = "".join(replacements.get(char, char) for char in text)
    return " ".join(out.split())


def find_cycles(steps: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly connected part of the graph, each as the steps on it in
    flow order starting at its first step in spec order (Tarjan's algorithm, iterative).

    >>> find_cycles(["a", "b", "c", "d"], {"a": ["c"], "b": ["a"], "c": ["b"], "d": []})
    [['a', 'b', 'c']]
    """
    position = {step: index for index, step in enumerate(steps)}
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for start in steps:
        if start in index_of:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, next_edge = work.pop()
            if next_edge == 0:
                index_of[node] = low[node] = len(index_of)
                stack.append(node)
                on_stack.add(node)
            edges = upstream.get(node, ())
            for offset in range(next_edge, len(edges)):
                target = edges[offset]
                if target not in position:
                    continue
                if target not in index_of:
                    work.append((node, offset + 1))
                    work.append((target, 0))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index_of[target])
            else:
                if low[node] == index_of[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    cycles = [_cycle_in(sorted(c, key=position.__getitem__), upstream) for c in components]
    return sorted(cycles, key=lambda cycle: position[cycle[0]])


def _cycle_in(component: list[str], upstream: Mapping[str, Sequence[str]]) -> list[str]:
    """A shortest cycle through the component's first step, in flow order."""
    members = set(component)
    start = component[0]
    # Walk against the flow (from a step to what it depends on) until a step that
    # depends on ``start``; ``fed[up]`` is the step ``up`` was reached from.
    fed: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for up in upstream.get(node, ()):
                if up == start:
                    cycle = [start, node]
                    while cycle[-1] != start:
                        cycle.append(fed[cycle[-1]])
                    return cycle[:-1]
                if up in members and up not in fed:
                    fed[up] = node
                    following.append(up)
        frontier = following
    return component
