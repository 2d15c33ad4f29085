"""`limit run`, `limit workflow …` and `limit watch --workflow` as a user runs them:
`limit up` in a child process, the CLI in a pipe, files on disk."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rich.console import Console

from limit_graph.cli.client import ApiClient
from limit_graph.cli.watch import watch_workflow
from limit_graph.core.models import WorkflowRunState
from tests.fixtures.cli import Server, start
from tests.fixtures.workflows import DIAMOND_YAML as DIAMOND

BROKEN = """\
name: broken
steps:
  - id: a
    agent: nope
  - id: a
    agent: echo
"""
MAPPED = {
    "name": "mapped",
    "params": {"xs": {"type": "array", "default": [0.05, 0.05, 0.05, 0.05, 0.05, 0.05]}},
    "max_parallel": 2,
    "steps": [
        {
            "id": "naps",
            "agent": "sleep",
            "map": {"over": "${params.xs}", "as": "s"},
            "inputs": {"seconds": "${s}"},
        },
        {"id": "end", "agent": "echo", "depends_on": ["naps"]},
    ],
}
FAILING = {
    "name": "failing",
    "steps": [
        {"id": "boom", "agent": "fail", "inputs": {"message": "no luck"}},
        {"id": "after", "agent": "echo", "depends_on": ["boom"]},
    ],
}
SLOW = {"name": "slow", "steps": [{"id": "nap", "agent": "sleep", "inputs": {"seconds": 120}}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("workflow-cli")
    running = start(folder)
    for name, text in (
        ("diamond.yaml", DIAMOND),
        ("broken.yaml", BROKEN),
        ("mapped.json", json.dumps(MAPPED)),
        ("failing.json", json.dumps(FAILING)),
        ("slow.json", json.dumps(SLOW)),
    ):
        (folder / name).write_text(text, encoding="utf-8")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def rest(server: Server) -> Iterator[httpx.Client]:
    key = (server.cwd / ".limit" / "admin.key").read_text().strip()
    with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as http:
        yield http


def tsv(stdout: str) -> list[dict[str, str]]:
    header, *rows = stdout.strip("\n").split("\n")
    return [dict(zip(header.split("\t"), row.split("\t"), strict=True)) for row in rows]


def started(server: Server, *args: str, code: int = 0) -> dict[str, Any]:
    """`limit run ARGS --json`: the run it started (exit ``code``: 1 if it failed)."""
    result = server.limit("run", *args, "--json")
    assert result.returncode == code, result.stderr
    run: dict[str, Any] = json.loads(result.stdout)
    return run


def test_validate_prints_every_problem_or_the_size_of_the_dag(server: Server) -> None:
    valid = server.limit("workflow", "validate", "diamond.yaml")
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout == "valid: 4 steps, 4 edges\n"

    broken = server.limit("workflow", "validate", "broken.yaml")
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [
        "a  /steps/0/agent  no agent named 'nope' (line 4, column 5)",
        "a  /steps/1/id     duplicate step id 'a' (also /steps/0) (line 5, column 5)",
    ]
    assert "invalid: 2 problems" in broken.stderr

    params = server.limit("workflow", "validate", "diamond.yaml", "--param", "n=many")
    assert params.returncode == 1 and "/params/n" in params.stdout
    as_json = server.limit("workflow", "validate", "broken.yaml", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["valid"] is False

    missing = server.limit("workflow", "validate", "nothere.yaml")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == "error: cannot read workflow file nothere.yaml: no such file"
    folder = server.limit("workflow", "validate", ".")
    assert folder.returncode == 1 and "it is a folder" in folder.stderr


def test_graph_prints_the_dag_as_mermaid_or_json(server: Server) -> None:
    mermaid = server.limit("workflow", "graph", "diamond.yaml")
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.startswith("flowchart TD\n") and mermaid.stdout.count("-->") == 4
    graph = json.loads(server.limit("workflow", "graph", "diamond.yaml", "--format", "json").stdout)
    assert [n["id"] for n in graph["nodes"]] == ["a", "b", "c", "d"]
    assert {"from": "b", "to": "d"} in graph["edges"]
    broken = server.limit("workflow", "graph", "broken.yaml")
    assert broken.returncode == 1 and "no agent named 'nope'" in broken.stdout
    bad_format = server.limit("workflow", "graph", "diamond.yaml", "--format", "png")
    assert bad_format.returncode == 2


def test_run_makes_a_session_named_after_the_workflow(server: Server, rest: httpx.Client) -> None:
    ran = server.limit("run", "diamond.yaml", "--param", "n=5", "--wait", "30")
    assert ran.returncode == 0, ran.stderr
    (row,) = tsv(ran.stdout)
    assert row["name"] == "diamond" and row["state"] == "succeeded"
    rid, sid = row["run"], row["session"]
    assert f"limit watch {sid} --workflow {rid}" in ran.stderr
    assert rest.get(f"/sessions/{sid}").json()["name"] == "diamond"
    run = rest.get(f"/sessions/{sid}/workflows/{rid}").json()
    assert run["params"] == {"n": 5} and run["state"] == "succeeded"

    listed = server.limit("workflow", "list", "--session", sid)
    assert [(r["id"], r["steps"]) for r in tsv(listed.stdout)] == [(rid, "4/4 succeeded")]
    everywhere = server.limit("workflow", "list", "--json")
    assert rid in [r["id"] for r in json.loads(everywhere.stdout)["items"]]

    shown = server.limit("workflow", "show", rid, "--session", sid)
    assert shown.returncode == 0, shown.stderr
    steps = tsv(shown.stdout)
    assert [(s["step"], s["state"], s["executions"]) for s in steps] == [
        (step, "succeeded", "1") for step in "abcd"
    ]
    assert f"run {rid} (diamond): succeeded" in shown.stderr
    as_json = json.loads(server.limit("workflow", "show", rid, "--session", sid, "--json").stdout)
    assert as_json["id"] == rid and len(as_json["steps"]) == 4

    again = started(server, "diamond.yaml", "--session", sid)
    assert again["session_id"] == sid
    assert len(rest.get(f"/sessions/{sid}/workflows").json()["items"]) == 2


def test_a_refused_run_leaves_no_session_behind(server: Server, rest: httpx.Client) -> None:
    before = rest.get("/sessions", params={"limit": 500}).json()["items"]
    broken = server.limit("run", "broken.yaml")
    assert broken.returncode == 1 and "no agent named 'nope'" in broken.stdout
    wrong = server.limit("run", "diamond.yaml", "--param", "n=many")
    assert wrong.returncode == 1 and "/params/n" in wrong.stdout
    unread = server.limit("run", "nothere.yaml")
    assert unread.returncode == 1 and "cannot read workflow file" in unread.stderr
    not_pair = server.limit("run", "diamond.yaml", "--param", "n")
    assert not_pair.returncode == 1 and "--param 'n' is not KEY=VALUE" in not_pair.stderr
    not_id = server.limit("run", "diamond.yaml", "--session", "abc")
    assert not_id.returncode == 1 and "'abc' is not a session id" in not_id.stderr
    assert rest.get("/sessions", params={"limit": 500}).json()["items"] == before

    done = rest.post("/sessions", json={"name": "closed"}).json()["id"]
    rest.post(f"/sessions/{done}/complete")
    closed = server.limit("run", "diamond.yaml", "--session", done)
    assert closed.returncode == 1 and "(409)" in closed.stderr
    assert rest.get(f"/sessions/{done}/workflows").json()["items"] == []


def test_run_watch_follows_a_map_and_exits_by_how_the_run_ended(server: Server) -> None:
    mapped = server.limit("run", "mapped.json", "--watch")
    assert mapped.returncode == 0, mapped.stderr
    lines = mapped.stdout.splitlines()
    assert "naps\tsucceeded\t6/6 done\t6\t" in "\n".join(lines)
    assert lines[-1].startswith("run ") and "(mapped): succeeded" in lines[-1]

    failing = server.limit("run", "failing.json", "--watch")
    assert failing.returncode == 1
    assert "boom\tfailed\t\t1\t" in failing.stdout and "no luck" in failing.stdout
    assert "after\tskipped" in failing.stdout
    assert "(failing): failed" in failing.stdout.splitlines()[-1]


def test_watch_takes_the_session_either_way(server: Server) -> None:
    run = started(server, "diamond.yaml", "--wait", "30")
    rid, sid = run["id"], run["session_id"]
    positional = server.limit("watch", sid, "--workflow", rid)
    assert positional.returncode == 0, positional.stderr
    assert "(diamond): succeeded" in positional.stdout
    named = server.limit("watch", "--workflow", rid, "--session", sid)
    assert (
        named.returncode == 0
        and named.stdout.splitlines()[-1] == positional.stdout.splitlines()[-1]
    )

    nowhere = server.limit("watch", "--workflow", rid)
    assert nowhere.returncode == 1 and "which session?" in nowhere.stderr
    unknown = server.limit("watch", sid, "--workflow", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == 1 and "Not found (404)" in unknown.stderr
    not_id = server.limit("watch", sid, "--workflow", "r1")
    assert not_id.returncode == 1 and "'r1' is not a workflow run id" in not_id.stderr

    failed = started(server, "failing.json", "--wait", "30", code=1)
    assert failed["state"] == "failed"
    watched = server.limit("watch", failed["session_id"], "--workflow", failed["id"])
    assert watched.returncode == 1 and "(failing): failed" in watched.stdout


def test_cancel_stops_a_run_and_resume_reruns_from_a_step(
    server: Server, rest: httpx.Client
) -> None:
    slow = started(server, "slow.json")
    assert slow["state"] in ("pending", "running")
    cancelled = server.limit("workflow", "cancel", slow["id"], "--session", slow["session_id"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert "(slow): cancelled" in cancelled.stderr
    again = server.limit("workflow", "cancel", slow["id"], "--session", slow["session_id"])
    assert again.returncode == 1 and "(409)" in again.stderr

    done = started(server, "diamond.yaml", "--wait", "30")
    rid, sid = done["id"], done["session_id"]
    resumed = server.limit(
        "workflow", "resume", rid, "--session", sid, "--from-step", "b", "--watch"
    )
    assert resumed.returncode == 0, resumed.stderr
    steps = rest.get(f"/sessions/{sid}/workflows/{rid}").json()["steps"]
    assert {s["id"]: len(s["execution_ids"]) for s in steps} == {"a": 1, "b": 2, "c": 1, "d": 2}
    unknown = server.limit("workflow", "resume", rid, "--session", sid, "--from-step", "zzz")
    assert unknown.returncode == 1 and "(422)" in unknown.stderr


def test_the_live_table_on_a_terminal_ends_with_every_item_done(server: Server) -> None:
    run = started(server, "mapped.json")
    key = (server.cwd / ".limit" / "admin.key").read_text().strip()
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    client = ApiClient(server.url, key)
    try:
        ended = watch_workflow(client, run["session_id"], run["id"], console)
    finally:
        client.close()
    assert ended.state is WorkflowRunState.SUCCEEDED
    shown = screen.getvalue()
    assert "6/6 done" in shown and f"run {run['id']} (mapped): succeeded" in shown
    assert "┃ step" in shown  # drawn as a table, not as lines
