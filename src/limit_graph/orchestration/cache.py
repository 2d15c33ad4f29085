"""The result cache of deterministic agents.

A request that allows it (``allow_cached`` in the request, or among the inputs of an
agent that takes it, such as ``quantum.sample``) is answered from an earlier
successful execution with the same key: the SHA-256 of the agent, its version, the
canonical JSON of the inputs (``allow_cached`` left out) and the target (the backend
kind, and the ``target`` input where an agent has one, e.g. a quantum device).  The
hit is a new execution of its own, ``cache_hit`` and ``cached_from`` the original,
recorded in the ledger like any other; entries live in the store's bookkeeping table
and expire after ``ttl_s``.  Sensitive work is never looked up nor stored here (the
execution service does not ask): the key is an unsalted hash of the inputs, kept in the
clear.

Each process also keeps its most recent entries in memory, with the original
execution (final, so it never changes) and the entry's expiry: a hit found there
costs no database read.  The store stays the truth, shared by every API process;
results larger than ``MEMORY_RESULT_BYTES`` of JSON are only kept there.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from limit_graph.core.agents import AgentSpec
from limit_graph.core.canonical import sha256_hex
from limit_graph.core.models import BackendKind, Execution, ExecutionState, utcnow
from limit_graph.storage.base import Storage

__all__ = ["NAMESPACE", "ResultCache", "cache_key"]

NAMESPACE = "result-cache"
MEMORY_ENTRIES = 512
"""Cache entries each process keeps in memory, most recently used first."""
MEMORY_RESULT_BYTES = 64 * 1024
"""Larger results are read from the store on each hit."""


def cache_key(
    agent: AgentSpec, inputs: dict[str, Any], backend: BackendKind, *, tenant: str
) -> str:
    """The key of an agent's result for these inputs on this target, in one tenant: a
    result is never served to another tenant.

    >>> from limit_graph.tasks.general import AGENTS
    >>> len(cache_key(AGENTS[0], {"x": 1}, BackendKind.LOCAL, tenant="acme"))
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
            "tenant": tenant,
        }
    )


class ResultCache:
    def __init__(
        self,
        storage: Storage,
        *,
        ttl_s: float = 86_400.0,
        memory_entries: int = MEMORY_ENTRIES,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.storage = storage
        self.ttl_s = ttl_s
        self.memory_entries = memory_entries
        self._clock = clock  # "now" for expiries set and checked here; the store keeps its own
        self._memory: OrderedDict[str, tuple[Execution, datetime]] = OrderedDict()

    async def lookup(self, key: str) -> Execution | None:
        """The successful execution stored under ``key``, if it is still there."""
        kept = self._memory.get(key)
        if kept is not None:
            original, expires_at = kept
            if expires_at > self._clock():
                self._memory.move_to_end(key)
                return original
            del self._memory[key]
        found = await self.storage.get_value(NAMESPACE, key)
        if found is None:
            return None
        stored = await self.storage.get_execution(uuid.UUID(found["execution_id"]))
        if stored is None or stored.state is not ExecutionState.SUCCEEDED:
            return None
        if "expires_at" in found:
            self._remember(key, stored, datetime.fromisoformat(found["expires_at"]))
        return stored

    async def store(self, key: str, execution: Execution) -> None:
        expires_at = self._clock() + timedelta(seconds=self.ttl_s)
        await self.storage.put_value(
            NAMESPACE,
            key,
            {
                "execution_id": str(execution.id),
                "agent": execution.agent,
                "expires_at": expires_at.isoformat(),
            },
            expires_at=expires_at,
        )
        self._remember(key, execution, expires_at)

    def _remember(self, key: str, execution: Execution, expires_at: datetime) -> None:
        if self.memory_entries <= 0:
            return
        size = len(json.dumps(execution.result, separators=(",", ":"), default=str))
        if size > MEMORY_RESULT_BYTES:
            return
        self._memory[key] = (execution, expires_at)
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)
