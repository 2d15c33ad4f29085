"""Where the file backend keeps quota records, and how it reads them back.

Each record is one JSON file under ``quotas/``, written through the backend's redo
journal with the rest of its transaction: a scope's limits, a counter, an execution's
reservations.  Nothing is ever deleted, so that a commit is only renames: removed
limits are a file saying ``null``, a settled execution's reservations an empty list.
Scopes and counter keys name their files by SHA-256, so any scope makes a safe name.

The backend is one process per folder (it holds an exclusive lock on it), so the
reservations of several API processes need a database backend.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from limit_graph.core.quotas import QuotaLimits, QuotaResource
from limit_graph.storage.memory_quotas import Counter, Held, QuotaWrites
from limit_graph.storage.quotas import CounterKey

__all__ = ["QUOTA_FOLDERS", "load_quotas", "quota_files"]

QUOTA_FOLDERS = (
    "quotas",
    "quotas/limits",
    "quotas/counters",
    "quotas/reservations",
)


def _hashed(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _counter_name(key: CounterKey) -> str:
    scope, resource, window = key
    return f"quotas/counters/{_hashed(scope, resource.value, window)}.json"


def _json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True).encode()


def quota_files(writes: QuotaWrites) -> list[tuple[str, bytes]]:
    """The files (path under the root, content) that commit ``writes``."""
    files: list[tuple[str, bytes]] = []
    for scope, limits in writes.limits.items():
        document: dict[str, Any] = {"scope": scope, "limits": limits.document() if limits else None}
        files.append((f"quotas/limits/{_hashed(scope)}.json", _json(document)))
    for key, counter in writes.counters.items():
        scope, resource, window = key
        document = {
            "scope": scope,
            "resource": resource.value,
            "window": window,
            "used": counter.used,
            "reserved": counter.reserved,
        }
        files.append((_counter_name(key), _json(document)))
    for execution_id, held in writes.reservations.items():
        listed = [
            {
                "scope": h.scope,
                "resource": h.resource.value,
                "window": h.window,
                "amount": h.amount,
                "taken_us": h.taken_us,
            }
            for h in held
        ]
        document = {"execution_id": str(execution_id), "held": listed}
        files.append((f"quotas/reservations/{execution_id}.json", _json(document)))
    return files


def load_quotas(root: Path) -> QuotaWrites:
    """Every quota record under ``root``, as one set of writes to apply."""
    loaded = QuotaWrites()

    def documents(folder: str) -> list[Any]:
        return [json.loads(p.read_bytes()) for p in sorted((root / folder).glob("*.json"))]

    for doc in documents("quotas/limits"):
        limits = doc["limits"]
        loaded.limits[doc["scope"]] = QuotaLimits.model_validate(limits) if limits else None
    for doc in documents("quotas/counters"):
        key = (doc["scope"], QuotaResource(doc["resource"]), doc["window"])
        loaded.counters[key] = Counter(int(doc["used"]), int(doc["reserved"]))
    for doc in documents("quotas/reservations"):
        loaded.reservations[uuid.UUID(doc["execution_id"])] = [
            Held(
                h["scope"],
                QuotaResource(h["resource"]),
                h["window"],
                int(h["amount"]),
                int(h.get("taken_us", 0)),
            )
            for h in doc["held"]
        ]
    return loaded
