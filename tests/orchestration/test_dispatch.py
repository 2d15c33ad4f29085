"""Dispatch to runners through the real API: leases, failover, fan-out, timeouts,
cancellation, retries, caching and the runner protocol itself.

Runners here are the real ``RunnerLoop`` talking HTTP to the app (in this process
over the ASGI transport, or as ``limit runner`` processes where a process must die).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from limit_graph.flows.runner import report_slices
from tests.fixtures import dispatch as dispatch_fixture
from tests.fixtures.api import assert_problem
from tests.fixtures.dispatch import QUEUES, Stack, running, stack
from tests.fixtures.waiting import eventually


@pytest.fixture(autouse=True, params=QUEUES)
def _queue(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs on the queue in the API process's memory and on the one in
    the database that several API processes share."""
    monkeypatch.setattr(dispatch_fixture, "queue", request.param)


TWO_REMOTES = {
    "backends": {
        "good": {"type": "remote"},
        "bad": {"type": "remote"},
    }
}


def session_routed_to(stack: Stack, instance: str) -> Callable[[str], bool]:
    def check(session_id: str) -> bool:
        route = stack.platform.executions.router.route(
            stack.platform.executions.router.get(instance).kind, "echo", uuid.UUID(session_id)
        )
        return route[0] == instance

    return check


async def session_on(stack: Stack, instance: str) -> str:
    wanted = session_routed_to(stack, instance)
    for _ in range(200):
        session_id = await stack.session()
        if wanted(session_id):
            return session_id
    raise AssertionError(f"no session hashed to {instance}")


async def test_a_remote_execution_runs_on_a_runner_and_is_recorded_in_order(
    tmp_path: Path,
) -> None:
    async with stack(tmp_path) as s, running(s.runner()):
        session_id = await s.session()
        response = await s.execute(session_id, agent="echo", inputs={"x": 1}, backend="remote")
        assert response.status_code == 200, response.text
        execution = response.json()
        assert execution["state"] == "succeeded"
        assert execution["result"] == {"x": 1}
        assert execution["instance"] == "remote"
        assert execution["attempts"] == 1
        assert execution["started_at"] is not None
        assert await s.actions(execution["id"]) == [
            "execution.queued",
            "execution.started",
            "execution.succeeded",
        ]


async def test_without_a_runner_the_execution_waits_queued_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    async with stack(tmp_path) as s:
        session_id = await s.session()
        response = await s.execute(
            session_id, agent="echo", inputs={"n": 7}, backend="quantum", wait_s=0
        )
        assert response.status_code == 202
        queued = response.json()
        assert queued["state"] == "queued" and queued["instance"] == "aer"
        assert s.platform.executions.dispatcher.depth("aer") == 1
    async with stack(tmp_path) as s, running(s.runner("quantum")):
        found = await s.platform.executions.dispatcher.wait_final(uuid.UUID(queued["id"]), 10)
        assert found is not None and found.state.value == "succeeded"
        assert found.result == {"n": 7}


async def test_failover_moves_a_retryable_failure_to_the_next_instance(tmp_path: Path) -> None:
    async with stack(tmp_path, dispatch__retry_backoff_s=0.01, **TWO_REMOTES) as s:
        loops = (
            s.runner(instance="bad", fault_rate=1.0),
            s.runner(instance="good"),
        )
        async with running(*loops):
            session_id = await session_on(s, "bad")
            response = await s.execute(session_id, agent="echo", inputs={"v": 1}, backend="remote")
            execution = response.json()
            assert execution["state"] == "succeeded", execution
            assert execution["instance"] == "good"
            assert execution["attempts"] == 2
            assert await s.actions(execution["id"]) == [
                "execution.queued",
                "execution.started",
                "execution.retry",
                "execution.started",
                "execution.succeeded",
            ]


async def test_fan_out_aggregates_what_succeeded_and_reports_the_failing_instance(
    tmp_path: Path,
) -> None:
    async with stack(
        tmp_path, dispatch__retry_backoff_s=0.01, dispatch__max_attempts=2, **TWO_REMOTES
    ) as s:
        loops = (s.runner(instance="bad", fault_rate=1.0), s.runner(instance="good"))
        async with running(*loops):
            session_id = await s.session()
            response = await s.execute(
                session_id, agent="echo", inputs={"k": "v"}, fan_out=["good", "bad"]
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["state"] == "partial"
            by_instance = {e["instance"]: e for e in body["executions"]}
            assert by_instance["good"]["state"] == "succeeded"
            assert by_instance["bad"]["state"] == "failed"
            assert by_instance["bad"]["attempts"] == 2  # retried, but never moved off "bad"
            assert by_instance["bad"]["error"]["type"] == "InjectedFault"
            assert body["aggregate"] == {"agree": True, "value": {"k": "v"}, "n": 1}


async def test_fan_out_to_an_unknown_or_wrong_kind_instance_is_refused_before_queueing(
    tmp_path: Path,
) -> None:
    async with stack(tmp_path, **TWO_REMOTES) as s:
        session_id = await s.session()
        before = await s.platform.storage.ledger_size()
        unknown = await s.execute(session_id, agent="echo", fan_out=["good", "nowhere"])
        assert "nowhere" in str(assert_problem(unknown, 422)["detail"])
        wrong = await s.execute(session_id, agent="echo", fan_out=["good", "aer"])
        assert "quantum" in str(assert_problem(wrong, 422)["detail"])
        assert await s.platform.storage.ledger_size() == before


async def test_the_runner_enforces_the_timeout(tmp_path: Path) -> None:
    async with stack(tmp_path) as s, running(s.runner()):
        session_id = await s.session()
        response = await s.execute(
            session_id, agent="sleep", inputs={"seconds": 5}, backend="remote", timeout_s=0.3
        )
        execution = response.json()
        assert execution["state"] == "timed_out", execution
        assert execution["error"]["type"] == "Timeout"


async def test_cancel_reaches_the_running_task_on_the_runner(tmp_path: Path) -> None:
    # The cancel rides on the runner's next heartbeat, one every lease_s / 3: a 3 s lease
    # has it there within a second instead of the default lease's 3.3 s.
    async with stack(tmp_path, dispatch__lease_s=3.0) as s:
        loop = s.runner()
        async with running(loop):
            session_id = await s.session()
            response = await s.execute(
                session_id, agent="sleep", inputs={"seconds": 30}, backend="remote", wait_s=0
            )
            execution_id = response.json()["id"]
            path = f"/sessions/{session_id}/executions/{execution_id}"
            await eventually(
                lambda: s.client.get(path), lambda got: got.json()["state"] == "running", 10, 0.02
            )
            cancelled = await s.client.post(
                f"/sessions/{session_id}/executions/{execution_id}/cancel"
            )
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["state"] == "cancelled"
            assert cancelled.json()["error"]["message"] == "cancelled while running"
            assert loop.summary.by_state == {"cancelled": 1}


async def test_cancel_of_a_queued_execution_takes_it_out_of_the_queue(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        session_id = await s.session()
        response = await s.execute(session_id, agent="echo", backend="remote", wait_s=0)
        execution_id = response.json()["id"]
        cancelled = await s.client.post(f"/sessions/{session_id}/executions/{execution_id}/cancel")
        assert cancelled.json()["state"] == "cancelled"
        assert s.platform.executions.dispatcher.depth("remote") == 0


@pytest.mark.parametrize(("retryable", "attempts"), [(False, 1), (True, 3)])
async def test_only_retryable_errors_are_retried(
    tmp_path: Path, retryable: bool, attempts: int
) -> None:
    async with stack(tmp_path, dispatch__retry_backoff_s=0.01) as s, running(s.runner()):
        session_id = await s.session()
        response = await s.execute(
            session_id, agent="fail", inputs={"retryable": retryable}, backend="remote"
        )
        execution = response.json()
        assert execution["state"] == "failed"
        assert execution["attempts"] == attempts
        assert execution["error"]["retryable"] is retryable


async def test_local_work_can_run_on_the_local_pool_instead_of_inline(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        loop = s.runner("local")
        async with running(loop):
            session_id = await s.session()
            response = await s.execute(session_id, agent="echo", inputs={"a": 1}, inline=False)
            execution = response.json()
            assert execution["state"] == "succeeded"
            assert execution["backend"] == "local"
            assert loop.summary.executed == 1


async def test_a_cache_hit_is_its_own_execution_linked_to_the_original(tmp_path: Path) -> None:
    async with stack(tmp_path) as s, running(s.runner()):
        session_id = await s.session()
        body = {"agent": "echo", "inputs": {"q": [1, 2]}, "backend": "remote"}
        first = (await s.execute(session_id, **body, allow_cached=True)).json()
        second = (await s.execute(session_id, **body, allow_cached=True)).json()
        third = (await s.execute(session_id, **body)).json()
        assert first["cache_hit"] is False
        assert second["cache_hit"] is True
        assert second["cached_from"] == first["id"]
        assert second["result"] == first["result"]
        assert await s.actions(second["id"]) == ["execution.cache_hit"]
        assert third["cache_hit"] is False  # not asked for: runs again


async def test_the_runner_protocol_records_a_result_once_per_attempt(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        session_id = await s.session()
        execution_id = (
            await s.execute(session_id, agent="echo", backend="remote", wait_s=0)
        ).json()["id"]
        claim = await s.client.post(
            "/runners/claim", json={"runner_id": "r1", "pool": "remote", "max": 4, "wait_s": 1}
        )
        assert claim.status_code == 200, claim.text
        [lease] = claim.json()["leases"]
        assert lease["attempt"] == 1 and lease["execution"]["state"] == "running"
        result = {"execution_id": execution_id, "attempt": 1, "state": "succeeded", "result": {}}
        stale = {**result, "attempt": 2}

        async def report(item: dict[str, Any]) -> dict[str, Any]:
            body = {"runner_id": "r1", "results": [item]}
            answer: dict[str, Any] = (await s.client.post("/runners/report", json=body)).json()
            return answer

        first, again, wrong = await report(result), await report(result), await report(stale)
        assert first["accepted"] == [execution_id]
        assert again["duplicates"] == [execution_id]
        assert wrong["rejected"][0]["execution_id"] == execution_id
        assert (await s.actions(execution_id)).count("execution.succeeded") == 1


async def test_runner_routes_refuse_other_callers_and_bad_bodies(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        body = {"runner_id": "r1", "pool": "remote", "wait_s": 0}
        assert s.plain is not None
        plain = await s.client.post("/runners/claim", json=body, headers=s.plain.headers)
        assert assert_problem(plain, 403)["policy_ids"] == ["default-deny"]
        bad_pool = await s.client.post("/runners/claim", json={**body, "pool": "gpu"})
        assert_problem(bad_pool, 422)
        unknown_instance = await s.client.post("/runners/claim", json={**body, "instance": "x"})
        assert "x" in str(assert_problem(unknown_instance, 422)["detail"])
        bad_report = await s.client.post(
            "/runners/report",
            json={"runner_id": "r1", "results": [{"execution_id": "nope", "attempt": 1}]},
        )
        assert_problem(bad_report, 422)


async def test_an_expired_lease_goes_to_another_runner_as_the_next_attempt(
    tmp_path: Path,
) -> None:
    async with stack(tmp_path, dispatch__lease_s=0.5) as s:
        session_id = await s.session()
        execution_id = (
            await s.execute(session_id, agent="echo", inputs={"z": 1}, backend="remote", wait_s=0)
        ).json()["id"]
        claim = await s.client.post(
            "/runners/claim", json={"runner_id": "silent", "pool": "remote", "wait_s": 1}
        )
        assert len(claim.json()["leases"]) == 1  # ... and the runner never answers again
        async with running(s.runner()):
            done = await s.platform.executions.dispatcher.wait_final(uuid.UUID(execution_id), 10)
        assert done is not None and done.state.value == "succeeded" and done.attempts == 2
        late = await s.client.post(
            "/runners/report",
            json={
                "runner_id": "silent",
                "results": [{"execution_id": execution_id, "attempt": 1, "state": "failed"}],
            },
        )
        assert late.json()["duplicates"] == [] and len(late.json()["rejected"]) == 1
        assert (await s.actions(execution_id)).count("execution.succeeded") == 1


class SlowReports(httpx.AsyncBaseTransport):
    """The app's own transport, with each result report held back ``delay_s`` before it
    reaches the app (a platform slow to record, as under a burst)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/runners/report":
            await asyncio.sleep(self.delay_s)
        return await self.inner.handle_async_request(request)


async def test_a_result_waiting_for_its_report_keeps_its_lease(tmp_path: Path) -> None:
    async with stack(tmp_path, dispatch__lease_s=0.5) as s:
        session_id = await s.session()
        runner = s.runner(concurrency=4)
        runner._transport = SlowReports(s.transport, delay_s=2.0)  # four leases' worth
        async with running(runner):
            ids = [
                (
                    await s.execute(
                        session_id, agent="echo", inputs={"n": n}, backend="remote", wait_s=0
                    )
                ).json()["id"]
                for n in range(8)
            ]
            done = [
                await s.platform.executions.dispatcher.wait_final(uuid.UUID(i), 30) for i in ids
            ]
        assert [d.attempts if d else None for d in done] == [1] * 8
        for execution_id in ids:
            assert "execution.retry" not in await s.actions(execution_id)


def test_reports_are_sliced_to_what_the_api_takes() -> None:
    small = [{"execution_id": str(uuid.uuid4()), "attempt": 1, "state": "succeeded"}] * 1200
    assert [len(part) for part in report_slices(small)] == [500, 500, 200]
    big = {"execution_id": "e", "attempt": 1, "state": "succeeded", "result": "x" * 200_000}
    assert [len(part) for part in report_slices([big] * 5)] == [2, 2, 1]  # ~512 KiB each


async def test_a_result_too_large_to_report_is_recorded_failed(tmp_path: Path) -> None:
    async with stack(tmp_path, server__max_body_bytes=2_000_000) as s, running(s.runner()):
        session_id = await s.session()
        response = await s.execute(
            session_id, agent="echo", inputs={"blob": "x" * 1_000_000}, backend="remote"
        )
        execution = response.json()
        assert execution["state"] == "failed", execution["state"]
        assert execution["error"]["type"] == "ResultTooLarge"
        assert "1,000,218 bytes" in execution["error"]["message"]


async def test_an_allow_cached_input_asks_for_the_cache_too(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        session_id = await s.session()
        first = await s.execute(session_id, agent="echo", inputs={"q": 1, "allow_cached": True})
        second = await s.execute(session_id, agent="echo", inputs={"q": 1, "allow_cached": True})
        unseen = await s.execute(session_id, agent="echo", inputs={"q": 2, "allow_cached": True})
        assert first.json()["cache_hit"] is False
        assert second.json()["cache_hit"] is True
        assert second.json()["cached_from"] == first.json()["id"]
        assert unseen.json()["cache_hit"] is False


async def test_the_settings_cap_how_long_a_claim_waits(tmp_path: Path) -> None:
    async with stack(tmp_path, dispatch__max_claim_wait_s=0) as s:
        body = {"runner_id": "r1", "pool": "remote", "wait_s": 60}
        # Without the cap this claim would hold the connection for a minute.
        answered = await asyncio.wait_for(s.client.post("/runners/claim", json=body), 10)
        assert answered.status_code == 200 and answered.json()["leases"] == []
