"""Lineage derived from real ledger entries: what is named by which hash, which entries
make nodes and events, and a follower that holds events while its sink fails, shares
its cursors with another, and sends over HTTP.

The entries are written through a memory store as the services write them
(``write_execution``); the sinks are real implementations of the protocol (a list, a
file, an HTTP server on the loopback).
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.event_v2 import RunEvent
from openlineage.client.serde import Serde

from limit_graph.core.canonical import sha256_hex
from limit_graph.core.lineage_settings import LineageSettings
from limit_graph.core.models import (
    CheckResult,
    ErrorInfo,
    Execution,
    ExecutionState,
    ProvenanceEntry,
    WorkflowTag,
)
from limit_graph.orchestration.lineage import LineageFollower
from limit_graph.orchestration.lineage_derive import circuit_hash, derive, execution_record
from limit_graph.orchestration.openlineage import FileSink, HttpSink, run_events
from limit_graph.storage.lineage import GRAPH_CURSOR, OPENLINEAGE_CURSOR
from limit_graph.storage.memory import MemoryStorage
from tests.fixtures.openlineage import run_event_errors, spec_folder
from tests.fixtures.records import T0, make_execution, make_session

BELL = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;"""
Q2 = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1]; h q[0]; measure q -> c;'
ROWS = [{"t": 1.5, "site": "a"}, {"t": None, "site": "b"}]


@pytest.fixture
async def storage() -> MemoryStorage:
    store = MemoryStorage()
    await store.start()
    return store


async def recorded(storage: MemoryStorage, execution: Execution, action: str) -> ProvenanceEntry:
    """The entry the store wrote for ``execution`` (its session written first)."""
    if await storage.get_session(execution.session_id) is None:
        session = make_session().model_copy(update={"id": execution.session_id})
        await storage.write_new_session(session, actor="alice", action="session.created")
    stored = await storage.write_execution(execution, actor="alice", action=action)
    assert stored.provenance_entry is not None
    [entry] = await storage.list_entries(after=stored.provenance_entry - 1, limit=1)
    return entry


def finished(**fields: Any) -> Execution:
    execution = make_execution(make_session())
    times = {"started_at": T0, "finished_at": T0 + timedelta(seconds=2)}
    return execution.model_copy(update={**times, **fields})


async def test_circuits_tables_files_and_values_are_named_by_their_content(
    storage: MemoryStorage, tmp_path: Path
) -> None:
    (tmp_path / "readings.csv").write_bytes(b"t,site\n1.5,a\n")
    inputs = {
        "pubs": [
            {"circuit": {"format": "qasm3", "source": BELL}, "shots": 10},
            {"circuit": {"format": "qasm2", "source": Q2 + "\r\n"}, "shots": 10},
        ],
        "seed": 7,
        "table": ROWS,
        "data": "readings.csv",
        "missing": {"path": "gone.parquet"},
        "path": "loaded.csv",
        "qasm": Q2,
    }
    result = {"source": {"path": "loaded.csv", "sha256": "ab" * 32, "bytes": 3}}
    entry = await recorded(storage, finished(inputs=inputs, result=result), "execution.succeeded")

    derived = derive(execution_record(entry), data_dir=tmp_path)  # type: ignore[arg-type]

    found = {(c.kind, c.hash): sorted(c.names) for c in derived.inputs}
    assert found == {
        ("input", sha256_hex(inputs["pubs"])): ["pubs"],
        ("circuit", circuit_hash(BELL)): ["pubs[0].circuit"],
        ("circuit", circuit_hash(Q2)): ["pubs[1].circuit", "qasm"],  # line ends do not count
        ("input", sha256_hex(7)): ["seed"],
        ("dataset", sha256_hex(ROWS)): ["table"],
        ("dataset", hashlib.sha256(b"t,site\n1.5,a\n").hexdigest()): ["data"],
        ("dataset", sha256_hex({"path": "gone.parquet"})): ["missing"],
        ("dataset", "ab" * 32): ["path"],
    }
    how = {c.names[0]: c.attributes.get("hashed") for c in derived.inputs if c.kind == "dataset"}
    assert how == {"table": None, "data": "file", "missing": "reference", "path": "reported"}
    assert derived.output is not None and derived.output.hash == sha256_hex(result)
    assert {n.kind for n in derived.nodes} == {"execution", "input", "circuit", "dataset", "output"}
    used = {e.source for e in derived.edges if e.kind == "used"}
    assert used == {c.node_id for c in derived.inputs}


async def test_a_sensitive_execution_is_named_by_its_commitments_only(
    storage: MemoryStorage,
) -> None:
    secret = finished(sensitive=True, inputs={"patient": "Ada"}, result={"risk": 0.7})
    entry = await recorded(storage, secret, "execution.succeeded")

    derived = derive(execution_record(entry))  # type: ignore[arg-type]

    [given] = derived.inputs
    assert given.node_id.startswith("sealed:sha256:") and given.hash is None
    assert derived.output is not None and derived.output.node_id.startswith("sealed:sha256:")
    text = json.dumps([n.attributes for n in derived.nodes]) + str(derived.nodes)
    assert "Ada" not in text and sha256_hex("Ada") not in text


async def test_only_final_entries_make_nodes_and_steps_are_informed_by_their_upstream(
    storage: MemoryStorage,
) -> None:
    upstream = [uuid.uuid4(), uuid.uuid4()]
    tag = WorkflowTag(run_id=uuid.uuid4(), step="report", upstream=upstream)
    running = finished(workflow=tag, state=ExecutionState.RUNNING, finished_at=None, result=None)
    started = await recorded(storage, running, "execution.started")
    failed = running.model_copy(
        update={
            "state": ExecutionState.FAILED,
            "finished_at": T0 + timedelta(seconds=3),
            "error": ErrorInfo(type="ValueError", message="bad row 3"),
        }
    )
    final = await recorded(storage, failed, "execution.failed")

    assert derive(execution_record(started)).nodes == []  # type: ignore[arg-type]
    derived = derive(execution_record(final), workflow_name="pipeline")  # type: ignore[arg-type]
    assert derived.output is None
    me = f"execution:{running.id}"
    informed = {
        (e.source, e.target, e.attributes["step"]) for e in derived.edges if e.kind == "informed"
    }
    assert informed == {(f"execution:{u}", me, "report") for u in upstream}
    [node] = [n for n in derived.nodes if n.id == me]
    assert node.attributes["error"] == "ValueError" and node.entry == final.index
    assert node.attributes["workflow"]["name"] == "pipeline"


async def events_for(
    storage: MemoryStorage, execution: Execution, action: str
) -> list[dict[str, Any]]:
    derived = derive(execution_record(await recorded(storage, execution, action)))  # type: ignore[arg-type]
    tag = execution.workflow
    name = "pipeline" if tag else None
    return [Serde.to_dict(e) for e in run_events(derived, namespace="lab", workflow_name=name)]


async def test_each_state_change_is_one_run_event_of_its_kind(storage: MemoryStorage) -> None:
    base = finished(inputs={"table": ROWS})
    running = base.model_copy(update={"state": ExecutionState.RUNNING, "result": None})
    [start] = await events_for(storage, running, "execution.started")
    [complete] = await events_for(storage, base, "execution.succeeded")
    failed = base.model_copy(
        update={
            "state": ExecutionState.FAILED,
            "result": None,
            "error": ErrorInfo(type="E", message="m"),
        }
    )
    [fail] = await events_for(storage, failed, "execution.failed")
    cancelled = base.model_copy(update={"state": ExecutionState.CANCELLED, "result": None})
    [abort] = await events_for(storage, cancelled, "execution.cancelled")
    queued = base.model_copy(update={"state": ExecutionState.QUEUED, "result": None})
    assert await events_for(storage, queued, "execution.queued") == []
    assert await events_for(storage, base, "execution.restored") == []

    assert [e["eventType"] for e in (start, complete, fail, abort)] == [
        "START",
        "COMPLETE",
        "FAIL",
        "ABORT",
    ]
    assert start["eventTime"] == base.document()["started_at"]
    assert complete["eventTime"] == base.document()["finished_at"]
    assert {e["run"]["runId"] for e in (start, complete, fail, abort)} == {str(base.id)}
    assert complete["job"]["name"] == "echo" and complete["job"]["namespace"] == "lab"
    assert complete["run"]["facets"]["parent"]["run"]["runId"] == str(base.session_id)
    assert complete["run"]["facets"]["parent"]["job"]["name"] == "limit-session"
    assert [d["name"] for d in complete["inputs"]] == [f"sha256:{sha256_hex(ROWS)}"]
    assert complete["inputs"][0]["facets"]["datasetType"]["datasetType"] == "DATASET"
    assert [d["name"] for d in complete["outputs"]] == [f"sha256:{sha256_hex(base.result)}"]
    assert start["outputs"] == [] and fail["outputs"] == []
    assert fail["run"]["facets"]["errorMessage"]["message"] == "E: m"
    assert "errorMessage" not in abort["run"]["facets"]

    tag = WorkflowTag(run_id=uuid.uuid4(), step="load")
    [step] = await events_for(
        storage,
        base.model_copy(update={"id": uuid.uuid4(), "workflow": tag}),
        "execution.succeeded",
    )
    assert step["job"]["name"] == "pipeline.load"
    parent = step["run"]["facets"]["parent"]
    assert (parent["run"]["runId"], parent["job"]["name"]) == (
        str(tag.run_id),
        "limit-workflow.pipeline",
    )
    assert parent["root"]["run"]["runId"] == str(base.session_id)
    assert run_event_errors([start, complete, fail, abort, step]) == []


@pytest.mark.skipif(
    spec_folder() is None,
    reason="no installed package ships the OpenLineage spec; LIMIT_OPENLINEAGE_SPEC may "
    "name a checkout's spec/ folder",
)
async def test_the_events_validate_against_the_openlineage_json_schema(
    storage: MemoryStorage,
) -> None:
    check = CheckResult(
        check="data-quality",
        passed=True,
        policy_ids=["data-quality"],
        detail="suite 'r' on input 'table': 1 of 1 expectations met",
    )
    base = finished(
        inputs={"table": ROWS, "pubs": [{"circuit": {"format": "qasm3", "source": BELL}}]}
    )
    base = base.model_copy(
        update={"checks": [check], "workflow": WorkflowTag(run_id=uuid.uuid4(), step="s")}
    )
    events = await events_for(storage, base, "execution.succeeded")
    failed = base.model_copy(
        update={
            "id": uuid.uuid4(),
            "state": ExecutionState.FAILED,
            "result": None,
            "error": ErrorInfo(type="E", message="m"),
        }
    )
    events += await events_for(storage, failed, "execution.failed")
    assert (
        events[0]["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]["name"]
        == "r"
    )
    assert run_event_errors(events) == []
    broken = json.loads(json.dumps(events[0]))
    broken["run"]["runId"] = "not-a-uuid"
    del broken["job"]["name"]
    assert len(run_event_errors([broken])) >= 2


class FlakySink:
    """Keeps what it is sent; refuses while ``down``."""

    kind = "list"

    def __init__(self) -> None:
        self.down = True
        self.sent: list[RunEvent] = []

    def send(self, events: Sequence[RunEvent]) -> None:
        if self.down:
            raise ConnectionError("lineage server unreachable")
        self.sent.extend(events)

    def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_failing_sink_holds_the_events_while_the_graph_goes_on(
    storage: MemoryStorage,
) -> None:
    sink, clock = FlakySink(), Clock()
    follower = LineageFollower(storage, LineageSettings(poll_s=1.0), sink=sink, clock=clock)
    one = finished()
    await recorded(storage, one, "execution.succeeded")

    await follower.step()
    assert await storage.lineage.cursor(GRAPH_CURSOR) == 1
    assert await storage.lineage.cursor(OPENLINEAGE_CURSOR) == -1
    sink.down = False
    await follower.step()  # still backing off: nothing is tried
    assert sink.sent == []

    two = finished()
    await recorded(storage, two, "execution.succeeded")
    clock.now = 10.0
    await follower.step()
    assert [(e.run.runId, e.eventType.value) for e in sink.sent] == [
        (str(one.id), "COMPLETE"),
        (str(two.id), "COMPLETE"),
    ]
    assert (
        await storage.lineage.cursor(OPENLINEAGE_CURSOR)
        == await storage.lineage.cursor(GRAPH_CURSOR)
        == 3
    )
    await follower.step()
    assert len(sink.sent) == 2


async def test_two_followers_on_one_store_derive_and_send_each_entry_once(
    storage: MemoryStorage, tmp_path: Path
) -> None:
    settings = LineageSettings(batch=2)
    sinks = [FileSink(tmp_path / "a.jsonl"), FileSink(tmp_path / "b.jsonl")]
    first, second = (LineageFollower(storage, settings, sink=s) for s in sinks)
    runs = [finished() for _ in range(3)]
    for execution in runs:
        await recorded(storage, execution, "execution.succeeded")

    await first.step()  # entries 0-1
    await second.step()  # entries 2-3, where the first left the cursors
    await first.step()
    await second.step()

    lines = [
        json.loads(line)
        for s in sinks
        if s.path.exists()
        for line in s.path.read_text().splitlines()
    ]
    assert sorted(e["run"]["runId"] for e in lines) == sorted(str(r.id) for r in runs)
    assert await storage.lineage.cursor() == await storage.ledger_size() - 1
    for execution in runs:
        graph = await storage.lineage.session_graph(execution.session_id)
        assert len(graph.nodes) == 3 and len(graph.edges) == 2


@pytest.fixture
def lineage_server() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """An OpenLineage endpoint on the loopback that keeps what it is POSTed."""
    received: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the standard library's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers.get("Authorization", ""), json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        thread.join(10)


async def test_events_go_to_an_http_endpoint_with_its_bearer_token(
    storage: MemoryStorage, lineage_server: tuple[str, list[tuple[str, dict[str, Any]]]]
) -> None:
    url, received = lineage_server
    settings = LineageSettings(openlineage="http", url=url, api_key="marquez-token")  # type: ignore[arg-type]
    follower = LineageFollower(storage, settings, sink=HttpSink(settings))
    execution = finished()
    await recorded(storage, execution, "execution.succeeded")

    await follower.step()
    await follower.close()

    assert [(auth, body["run"]["runId"], body["eventType"]) for auth, body in received] == [
        ("Bearer marquez-token", str(execution.id), "COMPLETE")
    ]
    assert run_event_errors([body for _, body in received]) == []


def test_http_needs_a_url_and_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="needs a url"):
        LineageSettings(openlineage="http")
    with pytest.raises(ValueError, match="url"):
        LineageSettings(openlineage="http", url="marquez:5000")
