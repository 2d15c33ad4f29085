"""The result cache of deterministic agents.

A request that allows it (``allow_cached`` in the request, or among the inputs of an
agent that takes it, such as ``quantum.sample``) is answered from an earlier
successful execution with the same key: the SHA-256 of the agent, its version, the
canonical JSON of the inputs (``allow_cached`` left out) and the target (the backend
kind, and the ``target`` input where an agent has one, e.g. a quantum device).  The
hit is a new execution of its own, ``cache_hit`` and ``cached_from`` the original,
recorded in the ledger like any other; entries live in the store's bookkeeping table
and expire after ``ttl_s``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from limit_graph.core.agents import AgentSpec
from limit_graph.core.canonical import sha256_hex
from limit_graph.core.models import BackendKind, Execution, ExecutionState, utcnow
from limit_graph.storage.base import Storage

__all__ = ["NAMESPACE", "ResultCache", "cache_key"]

NAMESPACE = "result-cache"


def cache_key(agent: AgentSpec, inputs: dict[str, Any], backend: BackendKind) -> str:
    """The key of an agent's result for these inputs on this target.

    >>> from limit_graph.tasks.general import AGENTS
    >>> len(cache_key(AGENTS[0], {"x": 1}, BackendKind.LOCAL))
    64
    """
    target = inputs.get("target") if isinstance(inputs.get("target"), str) else None
    asked = {k: v for k, v in inputs.items() if k != "allow_cached"}
    return sha256_hex(
        {
            "agent": agent.name,
            "version": agent.version,
            "inputs": asked,
            "backend": backend.value,
            "target": target,
        }
    )


class ResultCache:
    def __init__(self, storage: Storage, *, ttl_s: float = 86_400.0) -> None:
        self.storage = storage
        self.ttl_s = ttl_s

    async def lookup(self, key: str) -> Execution | None:
        """The successful execution stored under ``key``, if it is still there."""
        found = await self.storage.get_value(NAMESPACE, key)
        if found is None:
            return None
        original = await self.storage.get_execution(uuid.UUID(found["execution_id"]))
        if original is None or original.state is not ExecutionState.SUCCEEDED:
            return None
        return original

    async def store(self, key: str, execution: Execution) -> None:
        await self.storage.put_value(
            NAMESPACE,
            key,
            {"execution_id": str(execution.id), "agent": execution.agent},
            expires_at=utcnow() + timedelta(seconds=self.ttl_s),
        )
