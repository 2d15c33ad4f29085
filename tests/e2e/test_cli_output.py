"""What the `limit` CLI prints into a pipe: whole values, JSON that parses, schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.cli import Server, start

WIDE_NAME = "a-session-name-much-longer-than-the-eighty-columns-a-terminal-table-is-drawn-in"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(tmp_path_factory.mktemp("output"))
    yield running
    running.stop()


def ok_json(server: Server, *args: str) -> object:
    done = server.limit(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def tsv(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


def test_piped_session_list_prints_whole_values(server: Server) -> None:
    created = ok_json(server, "session", "create", "--name", WIDE_NAME, "--tag", "wide")
    finished = ok_json(server, "session", "create", "--name", WIDE_NAME + "-2", "--tag", "wide")
    assert isinstance(created, dict) and isinstance(finished, dict)
    ok_json(server, "session", "complete", finished["id"])
    listed = server.limit("session", "list", "--tag", "wide")
    assert listed.returncode == 0, listed.stderr
    rows = tsv(listed.stdout)
    assert rows[0] == ["id", "name", "state", "tags", "created"]
    assert [row[:4] for row in rows[1:]] == [
        [created["id"], WIDE_NAME, "active", "wide"],
        [finished["id"], WIDE_NAME + "-2", "completed", "wide"],
    ]
    assert "…" not in listed.stdout


def test_agents_show_prints_both_schemas(server: Server) -> None:
    key = (server.cwd / ".limit" / "admin.key").read_text().strip()
    echo = httpx.get(f"{server.url}/agents/echo", headers={"X-API-Key": key}).json()
    shown = server.limit("agents", "show", "echo")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"echo {echo['version']} (backends: ")
    inputs = shown.stdout.index("input schema:\n")
    outputs = shown.stdout.index("output schema:\n")
    decoder = json.JSONDecoder()
    first = shown.stdout[inputs + len("input schema:\n") :]
    second = shown.stdout[outputs + len("output schema:\n") :]
    assert decoder.raw_decode(first)[0] == echo["input_schema"]
    assert decoder.raw_decode(second)[0] == echo["output_schema"]
    assert ok_json(server, "agents", "show", "echo", "--json") == echo

    missing = server.limit("agents", "show", "no.such.agent")
    assert missing.returncode == 1 and "Not found (404)" in missing.stderr


def test_every_listing_prints_json_with_json(server: Server) -> None:
    agents = ok_json(server, "agents", "--json")
    assert isinstance(agents, dict)
    assert {"echo", "sleep"} <= {a["id"] for a in agents["items"]}
    assert all("input_schema" in a and "output_schema" in a for a in agents["items"])

    session = ok_json(server, "session", "create", "--tag", "results")
    assert isinstance(session, dict)
    sid = session["id"]
    ran = ok_json(server, "exec", sid, "echo", "--inputs", json.dumps({"text": WIDE_NAME}))
    assert isinstance(ran, dict)
    page = ok_json(server, "session", "results", sid, "--json")
    assert isinstance(page, dict)
    assert [e["id"] for e in page["items"]] == [ran["id"]]
    sessions = ok_json(server, "session", "list", "--tag", "results", "--json")
    assert isinstance(sessions, dict) and [s["id"] for s in sessions["items"]] == [sid]

    table = server.limit("session", "results", sid)
    assert table.returncode == 0, table.stderr
    assert tsv(table.stdout) == [
        ["id", "agent", "backend", "state", "result"],
        [ran["id"], "echo", "local/local", "succeeded", json.dumps({"text": WIDE_NAME})],
    ]


def test_piped_agents_table_is_tab_separated(server: Server) -> None:
    listed = server.limit("agents")
    assert listed.returncode == 0, listed.stderr
    rows = tsv(listed.stdout)
    assert rows[0] == ["id", "version", "backends", "description"]
    by_id = {row[0]: row for row in rows[1:]}
    assert "quantum.sample" in by_id and all(len(row) == 4 for row in rows)
