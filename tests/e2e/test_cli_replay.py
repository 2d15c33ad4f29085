"""``limit audit replay`` as a user runs it against ``limit up``: the verdict printed, the
JSON document with ``--json``, exit 1 when the result does not reproduce, and a clear
error for what cannot be replayed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.fixtures.cli import Server, start


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(tmp_path_factory.mktemp("replay"))
    yield running
    running.stop()


def ok_json(server: Server, *args: str) -> dict[str, object]:
    done = server.limit(*args)
    assert done.returncode == 0, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def test_an_echo_replayed_from_the_cli_reproduces(server: Server) -> None:
    sid = str(ok_json(server, "session", "create", "--tag", "replay")["id"])
    ran = ok_json(server, "exec", sid, "echo", "--inputs", json.dumps({"text": "again"}))
    eid = str(ran["id"])

    shown = server.limit("audit", "replay", eid)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("reproduced: replay ")
    assert f" of {eid} gave the same result (sha256 " in shown.stdout

    verdict = ok_json(server, "audit", "replay", eid, "--session", sid, "--json")
    assert verdict["matches"] is True and verdict["differences"] == []
    replay = verdict["replay"]
    assert isinstance(replay, dict) and replay["replay_of"] == eid
    assert replay["result"] == {"text": "again"}

    results = ok_json(server, "session", "results", sid, "--json")
    assert isinstance(results["items"], list)
    links = [e.get("replay_of") for e in results["items"]]
    assert sorted(links, key=str) == sorted([None, eid, eid], key=str)


def test_what_cannot_be_replayed_is_a_one_line_error(server: Server) -> None:
    sid = str(ok_json(server, "session", "create")["id"])
    slept = ok_json(server, "exec", sid, "sleep", "--inputs", json.dumps({"seconds": 0}))

    refused = server.limit("audit", "replay", str(slept["id"]))
    assert refused.returncode == 1
    assert "Cannot be replayed (409): agent 'sleep' is not deterministic" in refused.stderr

    bad = server.limit("audit", "replay", "not-an-id")
    assert bad.returncode == 1 and "'not-an-id' is not an execution id" in bad.stderr
