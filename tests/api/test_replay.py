"""Replay over REST: a finished execution run again from its ledger entry, with real
runners and real Aer; refusals of what cannot reproduce, other tenants' work unseen,
and a recorded run context that differs from this process's named field by field."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from limit_graph.core.identity import Role
from limit_graph.core.models import BackendKind, Execution, ExecutionState, utcnow
from limit_graph.core.run_context import RunContext, library_versions
from limit_graph.orchestration.replay import REPLAYED
from tests.fixtures.api import assert_problem
from tests.fixtures.dispatch import Stack, running, stack
from tests.fixtures.identity import make_member

# Three qubits in superposition: 8 outcomes, so counts of 400 shots depend on the seed.
SPREAD = """OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[3] c;
h q[0];
h q[1];
h q[2];
cx q[0], q[1];
c = measure q;
"""


def sample(seed: int | None, target: str = "fake:manila") -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "target": target,
        "pubs": [{"circuit": {"format": "qasm3", "source": SPREAD}, "shots": 400}],
    }
    if seed is not None:
        inputs["seed"] = seed
    return {"agent": "quantum.sample", "backend": "quantum", "wait_s": 60, "inputs": inputs}


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Stack]:
    """The app with a quantum runner serving it over HTTP (the ASGI transport)."""
    async with stack(tmp_path) as s, running(s.runner("quantum", concurrency=2)):
        yield s


async def executed(s: Stack, session_id: str, **body: Any) -> dict[str, Any]:
    response = await s.execute(session_id, **body)
    assert response.status_code == 200, response.text
    execution: dict[str, Any] = response.json()
    assert execution["state"] == "succeeded", execution
    return execution


async def replay(s: Stack, session_id: str, execution_id: str) -> dict[str, Any]:
    response = await s.client.post(f"/sessions/{session_id}/executions/{execution_id}/replay")
    assert response.status_code == 200, response.text
    verdict: dict[str, Any] = response.json()
    return verdict


async def verdict_entries(s: Stack, session_id: str) -> list[dict[str, Any]]:
    entries = await s.platform.storage.list_entries(session_id=uuid.UUID(session_id))
    return [e.payload or {} for e in entries if e.action == REPLAYED]


async def test_a_seeded_sample_replayed_gives_the_same_counts_and_says_it_matches(
    platform: Stack,
) -> None:
    s = platform
    sid = await s.session()
    original = await executed(s, sid, **sample(seed=11))
    context = original["run_context"]
    assert context["seed"] == 11
    assert context["versions"]["qiskit-aer"] == library_versions()["qiskit-aer"]
    assert context["target"]["name"] == "fake:manila" and context["target"]["simulator"]
    assert context["target"]["snapshot_id"].startswith("fake_manila@")

    verdict = await replay(s, sid, original["id"])

    again = verdict["replay"]
    assert again["id"] != original["id"] and again["replay_of"] == original["id"]
    assert again["result"]["pubs"] == original["result"]["pubs"]  # the same counts
    assert verdict["matches"] is True and verdict["differences"] == []
    assert verdict["original_result_sha256"] == verdict["replay_result_sha256"]
    assert verdict["original"]["id"] == original["id"]
    stored = await s.platform.storage.get_execution(uuid.UUID(again["id"]))
    assert stored is not None and stored.replay_of == uuid.UUID(original["id"])
    assert stored.state is ExecutionState.SUCCEEDED and not stored.cache_hit
    assert stored.run_context == RunContext.model_validate(context)
    [recorded] = await verdict_entries(s, sid)
    assert recorded["original"] == original["id"] and recorded["replay"] == again["id"]
    assert recorded["matches"] is True
    assert recorded["replay_result_sha256"] == verdict["replay_result_sha256"]

    # The seed is what fixes the counts: another seed gives others, so "matches" means it.
    other = await executed(s, sid, **sample(seed=12))
    assert other["result"]["pubs"] != original["result"]["pubs"]


async def test_an_echo_replays_inline_and_matches(platform: Stack) -> None:
    s = platform
    sid = await s.session()
    original = await executed(s, sid, agent="echo", inputs={"text": "again", "n": [1, 2]})
    assert original["run_context"] == {
        "versions": dict(library_versions()),
        "seed": None,
        "target": None,
    }

    verdict = await replay(s, sid, original["id"])

    assert verdict["matches"] is True and verdict["differences"] == []
    assert verdict["replay"]["result"] == {"text": "again", "n": [1, 2]}
    assert verdict["replay"]["backend"] == "local" and verdict["replay"]["replay_of"]
    assert await s.actions(verdict["replay"]["id"]) == [
        "execution.started",
        "execution.succeeded",
        REPLAYED,
    ]


async def test_a_cache_hit_carries_the_context_of_the_run_it_answers_with(
    platform: Stack,
) -> None:
    s = platform
    sid = await s.session()
    body = {"agent": "echo", "inputs": {"q": 1, "allow_cached": True}}  # asks in its inputs
    ran = await executed(s, sid, **body)
    hit = await executed(s, sid, **body)
    assert hit["cache_hit"] is True and hit["run_context"] == ran["run_context"]

    verdict = await replay(s, sid, hit["id"])  # run for real, not answered from the cache
    assert verdict["replay"]["cache_hit"] is False and verdict["matches"] is True


async def test_what_cannot_reproduce_is_refused_saying_why_and_nothing_runs(
    platform: Stack,
) -> None:
    s = platform
    sid = await s.session()
    slept = await executed(s, sid, agent="sleep", inputs={"seconds": 0})
    unseeded = await executed(s, sid, **sample(seed=None, target="aer"))
    before = await s.platform.storage.count_executions(uuid.UUID(sid))
    size = await s.platform.storage.ledger_size()

    refused = await s.client.post(f"/sessions/{sid}/executions/{slept['id']}/replay")
    body = assert_problem(refused, 409)
    assert body["type"].endswith("/not-replayable") and body["reason"] == "not-deterministic"
    assert "'sleep' is not deterministic and takes no seed" in str(body["detail"])

    refused = await s.client.post(f"/sessions/{sid}/executions/{unseeded['id']}/replay")
    body = assert_problem(refused, 409)
    assert body["reason"] == "unseeded" and "ran unseeded" in str(body["detail"])

    assert await s.platform.storage.count_executions(uuid.UUID(sid)) == before
    assert await s.platform.storage.ledger_size() == size


async def test_another_tenants_execution_is_not_found_and_a_viewer_may_not_replay(
    platform: Stack,
) -> None:
    s = platform
    sid = await s.session()
    original = await executed(s, sid, agent="echo", inputs={"x": 1})
    bob = await make_member(s.platform, "other-tenant", "bob")
    viewer = await make_member(s.platform, "default", "vera", roles=(Role.VIEWER,))
    size = await s.platform.storage.ledger_size()

    for path in (f"/sessions/{sid}/executions/{original['id']}/replay",
                 f"/executions/{original['id']}/replay"):  # fmt: skip
        assert_problem(await s.client.post(path, headers=bob.headers), 404)
    assert await s.platform.storage.ledger_size() == size  # a 404 records nothing
    denied = await s.client.post(
        f"/sessions/{sid}/executions/{original['id']}/replay", headers=viewer.headers
    )
    assert_problem(denied, 403)
    unknown = await s.client.post(f"/sessions/{sid}/executions/{uuid.uuid4()}/replay")
    assert_problem(unknown, 404)
    assert await s.platform.storage.count_executions(uuid.UUID(sid)) == {
        (ExecutionState.SUCCEEDED, "local"): 1
    }


def _recorded_echo(session_id: str, **changes: Any) -> Execution:
    """An echo execution as a ledger entry might hold it from another installation."""
    now = utcnow()
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "session_id": uuid.UUID(session_id),
        "agent": "echo",
        "agent_version": "1.0.0",
        "backend": BackendKind.LOCAL,
        "instance": "local",
        "state": ExecutionState.SUCCEEDED,
        "inputs": {"x": 1},
        "result": {"x": 1},
        "attempts": 1,
        "submitted_at": now,
        "started_at": now,
        "finished_at": now,
        "actor": "admin",
        "run_context": RunContext(versions={**library_versions(), "qiskit-aer": "0.0.1"}),
    }
    return Execution(**{**fields, **changes})


async def test_a_recorded_library_version_that_differs_is_named(platform: Stack) -> None:
    s = platform
    sid = await s.session()
    storage = s.platform.storage
    elsewhere = await storage.write_execution(
        _recorded_echo(sid), actor="admin", action="execution.succeeded"
    )

    verdict = await replay(s, sid, str(elsewhere.id))

    assert verdict["matches"] is True  # same result, on other libraries
    assert verdict["differences"] == [
        {
            "field": "versions.qiskit-aer",
            "original": "0.0.1",
            "replay": library_versions()["qiskit-aer"],
        }
    ]
    [recorded] = await verdict_entries(s, sid)
    assert recorded["differences"] == verdict["differences"]

    # A log whose result the rerun does not give, run elsewhere: it says so, with both
    # hashes, and names the instance too.
    altered = await storage.write_execution(
        _recorded_echo(sid, result={"x": 2}, instance="retired"),
        actor="admin",
        action="execution.succeeded",
    )
    verdict = await replay(s, sid, str(altered.id))
    assert verdict["matches"] is False
    assert verdict["replay"]["result"] == {"x": 1}
    assert verdict["original_result_sha256"] != verdict["replay_result_sha256"]
    assert [d["field"] for d in verdict["differences"]] == ["instance", "versions.qiskit-aer"]
    assert verdict["differences"][0] == {
        "field": "instance",
        "original": "retired",
        "replay": "local",
    }


async def test_an_unregistered_version_or_an_unfinished_run_is_refused(platform: Stack) -> None:
    s = platform
    sid = await s.session()
    storage = s.platform.storage
    gone = await storage.write_execution(
        _recorded_echo(sid, agent_version="0.9.0"), actor="admin", action="execution.succeeded"
    )
    body = assert_problem(await s.client.post(f"/sessions/{sid}/executions/{gone.id}/replay"), 409)
    assert body["reason"] == "agent-version-gone"
    assert "has no version '0.9.0' (it has 1.0.0)" in str(body["detail"])

    waiting = await s.execute(sid, agent="sleep", inputs={"seconds": 30}, wait_s=0)
    assert waiting.status_code == 202, waiting.text
    body = assert_problem(
        await s.client.post(f"/sessions/{sid}/executions/{waiting.json()['id']}/replay"), 409
    )
    assert body["reason"] == "not-finished"
    cancelled = await s.client.post(f"/sessions/{sid}/executions/{waiting.json()['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = assert_problem(
        await s.client.post(f"/sessions/{sid}/executions/{waiting.json()['id']}/replay"), 409
    )
    assert body["reason"] == "not-succeeded"


async def test_a_sensitive_execution_replays_from_its_checked_record(platform: Stack) -> None:
    s = platform
    response = await s.client.post("/sessions", json={"config": {"sensitive": True}})
    assert response.status_code == 201, response.text
    sid = response.json()["id"]
    original = await executed(s, sid, agent="echo", inputs={"secret": "s3cr3t"})
    entries = await s.platform.storage.list_entries(session_id=uuid.UUID(sid))
    final = entries[-1].payload or {}
    assert str(final["inputs"]).startswith("sealed:sha256:")
    assert final["run_context"] == {
        "versions": dict(library_versions()),
        "seed": None,
        "target": None,
    }

    verdict = await replay(s, sid, original["id"])

    assert verdict["matches"] is True
    assert verdict["original"]["inputs"] == {"secret": "s3cr3t"}
    assert verdict["replay"]["result"] == {"secret": "s3cr3t"}
    [recorded] = await verdict_entries(s, sid)
    assert "original_result_sha256" not in recorded and recorded["matches"] is True
