"""``bench/profile.py`` files py-spy's samples under the layers of ``docs/performance.md``,
and ``bench/durable_app.py`` (the second HTTP anchor) answers after its commit."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import httpx
from bench.profile import OTHER, layer_of, shares
from bench.serving import serve

from limit_graph.deployments.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def _frame(function: str, path: str, line: int = 1) -> str:
    return f"{function} ({path}:{line})"


def test_a_sample_is_filed_under_its_innermost_layer() -> None:
    route = [
        _frame("run", "uvicorn/server.py"),
        _frame("__call__", "limit_graph/api/observability.py"),
        _frame("execute", "limit_graph/api/routes/executions.py"),
    ]
    write = _frame("_commit_sync", "limit_graph/storage/database/group_commit.py")
    check = _frame("admit", "limit_graph/orchestration/admission.py")
    assert layer_of(route) == "ASGI server and middleware"
    assert layer_of([*route, check]) == "pre-task checks"
    assert layer_of([*route, check, write]) == "the record and its ledger entries"
    assert layer_of([_frame("select", "selectors.py")]) == OTHER


def test_collapsed_stacks_are_counted_by_layer() -> None:
    stacks = "\n".join(
        [
            "MainThread;run (uvicorn/server.py:10);parse (h11/_connection.py:3) 7",
            "limit-writer;_commit_sync (limit_graph/storage/database/group_commit.py:5) 3",
            "MainThread;select (selectors.py:1) 2",
            "",
        ]
    )
    by_layer, total = shares(stacks)
    assert total == 12
    assert by_layer["ASGI server and middleware"] == 7
    assert by_layer["the record and its ledger entries"] == 3
    assert by_layer[OTHER] == 2


def test_the_durable_anchor_answers_after_writing_the_record_and_its_entry(
    tmp_path: Path,
) -> None:
    port = free_port()
    database = tmp_path / "anchor.db"
    command = [
        sys.executable, "-m", "uvicorn", "bench.durable_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    env = {"PATH": "", "LIMIT_BENCH_DB": str(database)}
    with serve(command, port, env, ROOT):
        answers = [
            httpx.post(f"http://127.0.0.1:{port}/echo", json={"agent": "echo", "inputs": {"n": n}})
            for n in range(3)
        ]
        with sqlite3.connect(database) as db:
            records = dict(db.execute("SELECT id, doc FROM records").fetchall())
            chain = db.execute("SELECT seq, record FROM ledger ORDER BY seq").fetchall()
    assert [a.status_code for a in answers] == [200, 200, 200]
    ids = [a.json()["id"] for a in answers]
    assert [json.loads(records[i])["inputs"] for i in ids] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert chain == [(0, ids[0]), (1, ids[1]), (2, ids[2])]
    with serve(command, port, env, ROOT):
        refused = httpx.post(f"http://127.0.0.1:{port}/echo", json={"agent": "echo"})
    assert refused.status_code == 422
