"""The SDK against a real server: sessions, executions, results, agents, errors."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from limit_graph.client import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    LimitAPIError,
    LimitClient,
    LimitConnectionError,
    NotFoundError,
    ServerError,
    WaitTimeout,
    paginate,
)
from limit_graph.client.errors import error_from_response
from limit_graph.core.models import (
    BackendKind,
    Execution,
    ExecutionState,
    Session,
    SessionConfig,
    SessionState,
)
from tests.client.conftest import KEY
from tests.fixtures.live import LiveServer, free_port


def test_sessions_are_created_listed_completed_and_deleted(client: LimitClient) -> None:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    made = [
        client.create_session(f"s{n}", SessionConfig(tags=[tag], backends=[BackendKind.LOCAL]))
        for n in range(3)
    ]
    assert all(isinstance(s, Session) for s in made)
    assert made[0].config.backends == [BackendKind.LOCAL] and made[0].state is SessionState.ACTIVE
    fetched = client.get_session(made[0].id)
    assert (fetched.id, fetched.config_sha256) == (made[0].id, made[0].config_sha256)

    first = client.list_sessions(tag=tag, limit=2)
    assert [s.id for s in first] == [made[0].id, made[1].id] and first.next_cursor
    assert [s.id for s in paginate(client.list_sessions, tag=tag, limit=2)] == [s.id for s in made]

    done = client.complete_session(made[1].id)
    assert done.state is SessionState.COMPLETED
    assert [s.id for s in client.list_sessions(tag=tag, state="completed")] == [made[1].id]

    client.delete_session(made[2].id)
    with pytest.raises(NotFoundError):
        client.get_session(made[2].id)
    assert [s.id for s in client.list_sessions(tag=tag, state="deleted")] == [made[2].id]


def test_a_session_is_archived_and_restored(client: LimitClient) -> None:
    session = client.create_session("to-archive", {"tags": ["archive"]})
    client.execute(session.id, "echo", {"kept": True})
    summary = client.archive_session(session.id)
    assert summary.session_id == session.id and summary.executions == 1
    bundle = client.get_archive(session.id)
    assert client.get_session(session.id).state is SessionState.ARCHIVED
    assert str(session.id) in json.dumps(bundle)
    restored = client.restore_session(bundle)
    assert restored.id == session.id and restored.restored_from == summary.bundle_sha256
    assert client.list_results(session.id).items[0].result == {"kept": True}


def test_execute_returns_the_execution_and_results_page_through_it(client: LimitClient) -> None:
    session = client.create_session()
    done = client.execute(session.id, "echo", {"hello": "world"})
    assert isinstance(done, Execution)
    assert done.state is ExecutionState.SUCCEEDED and done.result == {"hello": "world"}
    assert client.get_execution(session.id, done.id) == done
    more = [client.execute(session.id, "echo", {"n": n}) for n in range(2)]

    page = client.list_results(session.id, limit=2)
    assert [e.id for e in page] == [done.id, more[0].id] and page.next_cursor
    every = list(paginate(client.list_results, session_id=session.id, limit=2))
    assert [e.id for e in every] == [done.id, *(e.id for e in more)]
    status = client.session_status(session.id)
    assert status.session_id == session.id and status.counts["succeeded"] == 3


def test_execute_can_wait_past_the_servers_answer(client: LimitClient) -> None:
    session = client.create_session()
    queued = client.execute(session.id, "sleep", {"seconds": 0.3}, wait_s=0)
    assert not queued.state.is_final
    finished = client.execute(session.id, "sleep", {"seconds": 0.3}, wait_s=0, wait=True)
    assert finished.state is ExecutionState.SUCCEEDED and finished.result == {"slept_s": 0.3}
    assert client.wait_execution(queued).state is ExecutionState.SUCCEEDED


def test_a_wait_that_runs_out_says_so_and_a_cancel_ends_it(client: LimitClient) -> None:
    session = client.create_session()
    long = client.execute(session.id, "sleep", {"seconds": 120}, wait_s=0)
    with pytest.raises(WaitTimeout) as timed_out:
        client.wait_execution(long, timeout=0)
    assert timed_out.value.last == long and isinstance(timed_out.value, TimeoutError)
    cancelled = client.cancel_execution(session.id, long.id)
    assert cancelled.state is ExecutionState.CANCELLED
    assert client.wait_execution(cancelled, timeout=0) == cancelled
    with pytest.raises(ConflictError):
        client.cancel_execution(session.id, long.id)


def test_problems_become_typed_errors_and_write_nothing(client: LimitClient) -> None:
    session = client.create_session()
    entries = client.request("GET", f"/sessions/{session.id}/provenance")["items"]

    with pytest.raises(InvalidInputError) as invalid:
        client.execute(session.id, "sleep", {"seconds": "x"})
    error = invalid.value
    assert error.status == 422 and error.title == "Invalid input"
    assert any(e["loc"][-1] == "seconds" for e in error.errors)
    assert client.list_results(session.id).items == []
    assert client.request("GET", f"/sessions/{session.id}/provenance")["items"] == entries

    with pytest.raises(NotFoundError) as missing:
        client.get_session(uuid.uuid4())
    assert missing.value.status == 404 and "Not found (404)" in str(missing.value)
    with pytest.raises(NotFoundError):
        client.get_session("not-a-uuid")
    with pytest.raises(NotFoundError):
        client.get_agent("no-such-agent")

    client.complete_session(session.id)
    with pytest.raises(ConflictError) as closed:
        client.execute(session.id, "echo", {})
    assert closed.value.status == 409 and isinstance(closed.value, LimitAPIError)


def test_a_wrong_key_and_no_server_are_told_apart(server: LiveServer) -> None:
    with LimitClient(server.url, "wrong-key") as stranger, pytest.raises(AuthenticationError):
        stranger.list_sessions()
    nowhere = f"http://127.0.0.1:{free_port()}"
    with LimitClient(nowhere, KEY) as lost, pytest.raises(LimitConnectionError) as refused:
        lost.list_agents()
    assert refused.value.url == nowhere and refused.value.reason


def test_a_body_that_is_not_a_problem_document_still_makes_an_error() -> None:
    response = httpx.Response(502, text="<html>bad gateway</html>")
    error = error_from_response(response)
    assert isinstance(error, ServerError) and error.problem == {}
    assert error.detail == "<html>bad gateway</html>" and error.title == "HTTP 502"


def test_agents_are_listed_with_their_schemas(client: LimitClient) -> None:
    agents = {a.id: a for a in client.list_agents()}
    assert {"echo", "sleep", "fail"} <= set(agents)
    sleep = client.get_agent("sleep")
    assert sleep.input_schema["properties"]["seconds"]["type"] == "number"
    assert BackendKind.LOCAL in sleep.backends and sleep == agents["sleep"]


def test_from_env_reads_the_address_and_key(server: LiveServer) -> None:
    env = {"LIMIT_API_URL": server.url + "/", "LIMIT_API_KEY": KEY}
    with LimitClient.from_env(env, timeout=10) as sdk:
        assert sdk.base_url == server.url
        assert sdk.create_session("from-env").name == "from-env"
    with LimitClient.from_env({}) as default:
        assert default.base_url == "http://127.0.0.1:8080"


def test_events_stream_the_sessions_changes_and_resume(client: LimitClient) -> None:
    session = client.create_session()
    done = client.execute(session.id, "echo", {"x": 1})
    stream = client.events(session.id)
    first = [next(stream) for _ in range(3)]
    stream.close()
    assert [e["action"] for e in first] == [
        "session.created",
        "execution.started",
        "execution.succeeded",
    ]
    assert first[2]["resource_id"] == str(done.id) and first[2]["state"] == "succeeded"

    later = client.execute(session.id, "echo", {"x": 2})
    resumed = client.events(session.id, last_event_id=first[-1]["index"])
    after = [next(resumed) for _ in range(2)]
    resumed.close()
    assert [e["resource_id"] for e in after] == [str(later.id)] * 2
    with pytest.raises(NotFoundError):
        next(client.events(uuid.uuid4()))
