"""After the soak: was every accepted execution recorded exactly once, and does the ledger
verify?

Three independent readings of each accepted execution (a 2xx answer carrying its id,
and every step execution of an accepted workflow run):

- the REST API: the session's ``GET /sessions/{id}/results``, every page;
- the store, read directly (the SQLite file, or the Postgres database): its row in
  ``limit_executions`` and, for the soak's idempotency keys, no second row with the same
  key;
- the ledger, read directly: exactly one final entry (``execution.succeeded``,
  ``failed``, ``cancelled`` or ``timed_out``) naming it.

An execution missing from any of them is *lost*; one listed, stored or ended twice is
*recorded twice*.  The ledger itself is checked by ``limit audit verify`` (the whole
tree recomputed, every checkpoint's signature) against the platform's home.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.soak_clients import FINAL_ACTIONS, Accepted

__all__ = ["Accounting", "StoreView", "account", "drain", "read_back", "verify_ledger"]

FINAL_STATES = {"succeeded", "failed", "cancelled", "timed_out"}


async def _pages(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(path, params=params)
        response.raise_for_status()
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def drain(client: httpx.AsyncClient, accepted: Accepted, timeout_s: float) -> float:
    """Wait for every accepted workflow run to end (adding its steps' executions to
    ``accepted``), then for the sessions' queues to empty; the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout_s
    pending = dict(accepted.runs)
    while pending and time.monotonic() < deadline:
        for run_id, session_id in list(pending.items()):
            response = await client.get(f"/sessions/{session_id}/workflows/{run_id}")
            run = response.json() if response.is_success else {}
            if run.get("state") in ("succeeded", "failed", "cancelled"):
                del pending[run_id]
                accepted.run_states[run_id] = run["state"]
                for step in run["steps"]:
                    for execution_id in step["execution_ids"]:
                        accepted.executions.setdefault(execution_id, session_id)
        if pending:
            await asyncio.sleep(0.5)
    sessions = set(accepted.executions.values())
    while sessions and time.monotonic() < deadline:
        for session_id in list(sessions):
            counts = (await client.get(f"/sessions/{session_id}/status")).json()["counts"]
            if counts["queued"] == 0 and counts["running"] == 0:
                sessions.discard(session_id)
        if sessions:
            await asyncio.sleep(0.5)
    return time.monotonic() - started


async def read_back(client: httpx.AsyncClient, accepted: Accepted) -> dict[str, list[str]]:
    """Each execution the results endpoints list, with its state once per listing."""
    listed: dict[str, list[str]] = {}
    for session_id in sorted(set(accepted.executions.values())):
        for item in await _pages(client, f"/sessions/{session_id}/results"):
            listed.setdefault(item["id"], []).append(item["state"])
    return listed


def _uuid(value: object) -> str:
    return str(uuid.UUID(str(value)))


@dataclass
class StoreView:
    """The executions and their ledger entries as the store holds them."""

    rows: Counter[str] = field(default_factory=Counter)
    key_rows: dict[str, list[str]] = field(default_factory=dict)
    entries: dict[str, Counter[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, sqlite_path: Path | None, postgres_url: str | None) -> StoreView:
        """Read the SQLite file at ``sqlite_path``, or the Postgres database."""
        view = cls()
        executions = "SELECT id, idempotency_key FROM limit_executions"
        ledger = "SELECT action, leaf FROM limit_ledger WHERE action LIKE 'execution.%'"
        rows: Iterable[tuple[Any, ...]]
        entries: Iterable[tuple[Any, ...]]
        if postgres_url is not None:
            import psycopg

            with psycopg.connect(postgres_url.replace("+psycopg", "")) as connection:
                rows = connection.execute(executions).fetchall()
                entries = connection.execute(ledger).fetchall()
        else:
            assert sqlite_path is not None
            database = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
            try:
                rows = database.execute(executions).fetchall()
                entries = database.execute(ledger).fetchall()
            finally:
                database.close()
        for execution_id, key in rows:
            view.rows[_uuid(execution_id)] += 1
            if key is not None:
                view.key_rows.setdefault(key, []).append(_uuid(execution_id))
        for action, leaf in entries:
            resource = json.loads(leaf)
            if resource.get("resource_type") == "execution":
                counts = view.entries.setdefault(resource["resource_id"], Counter())
                counts[action] += 1
        return view


@dataclass
class Accounting:
    accepted: int
    from_workflows: int
    lost: dict[str, str]
    twice: dict[str, str]
    not_final: int
    failed: int
    retried: int
    entries: int


def account(accepted: Accepted, listed: dict[str, list[str]], store: StoreView) -> Accounting:
    """Every accepted execution against the three readings; why each one is wrong."""
    lost: dict[str, str] = {}
    twice: dict[str, str] = {}
    not_final = failed = retried = 0
    for execution_id in accepted.executions:
        states = listed.get(execution_id, [])
        finals = sum(store.entries.get(execution_id, Counter())[a] for a in FINAL_ACTIONS)
        if not states:
            lost[execution_id] = "not in its session's results"
        elif store.rows[execution_id] == 0:
            lost[execution_id] = "no row in limit_executions"
        elif states[0] in FINAL_STATES and finals == 0:
            lost[execution_id] = "final, but no final ledger entry"
        if len(states) > 1:
            twice[execution_id] = f"listed {len(states)} times in results"
        elif finals > 1:
            twice[execution_id] = f"{finals} final ledger entries"
        not_final += bool(states) and states[0] not in FINAL_STATES
        failed += bool(states) and states[0] in FINAL_STATES - {"succeeded"}
        retried += store.entries.get(execution_id, Counter())["execution.retry"] > 0
    for key, execution_id in accepted.keys.items():
        ids = store.key_rows.get(key, [])
        if len(ids) > 1:
            twice[execution_id] = f"{len(ids)} rows with idempotency key {key}"
        elif ids and ids != [execution_id]:
            twice[execution_id] = f"key {key} stored for another execution {ids[0]}"
    return Accounting(
        accepted=len(accepted.executions),
        from_workflows=len(accepted.executions) - len(accepted.keys),
        lost=lost,
        twice=twice,
        not_final=not_final,
        failed=failed,
        retried=retried,
        entries=sum(sum(c.values()) for c in store.entries.values()),
    )


def verify_ledger(home: Path, config: Path, cwd: Path) -> tuple[bool, str]:
    """``limit audit verify`` on the platform's home and settings: whether it verifies,
    and what it said."""
    from bench.dispatch import LIMIT

    env = {**os.environ, "LIMIT_HOME": str(home), "LIMIT_CONFIG": str(config)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [LIMIT, "audit", "verify", "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return False, (done.stdout + done.stderr)[-1000:]
    ok = done.returncode == 0 and bool(report.get("ok"))
    detail = (
        f"{report.get('size', 0):,} entries, {report.get('checkpoints', 0)} checkpoints; "
        f"{report.get('checked', '')}" + ("" if ok else f"; {report.get('detail')}")
    )
    return ok, detail
