"""A quantum instance whose target fails half its jobs: the platform retries each failed
job after a backoff on the kind's other instance, records every execution once, and the
router takes the flaky instance out of the rotation.

Two quantum instances, ``flaky`` and ``healthy``, each served by a real ``RunnerLoop``
over the app's ASGI transport; every job runs on real Aer.  ``flaky``'s runner samples on
:class:`~tests.fixtures.flaky_quantum.FlakyTarget`, which refuses half its jobs with the
retryable ``BackendError`` a provider's HTTP 503 becomes.  The backoffs are checked as
lower bounds on the records' own times (an attempt cannot start before the one it
retries started plus the backoff): the platform builds its dispatcher with the wall
clock (``Platform.start`` takes none), so a fake clock cannot reach it from here.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from limit_graph.core.models import BackendKind, Execution, ExecutionState, ProvenanceEntry
from limit_graph.tasks.quantum.agents import SampleInput, sample
from tests.fixtures import dispatch as dispatch_fixture
from tests.fixtures.dispatch import QUEUES, Stack, running, stack
from tests.fixtures.flaky_quantum import FlakyTarget, flaky_registry

BELL = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""
SHOTS = 64
BACKOFF_S = 0.2
QUANTUM: dict[str, Any] = {
    "flaky": {"type": "quantum", "provider": "aer"},
    "healthy": {"type": "quantum", "provider": "aer"},
}
FLAKY_SESSIONS, JOBS_PER_SESSION = 2, 6

FAILED_OVER = [
    "execution.queued",
    "execution.started",
    "execution.retry",
    "execution.started",
    "execution.succeeded",
]
FIRST_TIME = ["execution.queued", "execution.started", "execution.succeeded"]


@pytest.fixture(autouse=True, params=QUEUES)
def _queue(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the queue in the API process's memory and on the one in the database."""
    monkeypatch.setattr(dispatch_fixture, "queue", request.param)


def bell_inputs(seed: int) -> dict[str, Any]:
    return {
        "target": "aer",
        "seed": seed,
        "pubs": [{"circuit": {"format": "qasm3", "source": BELL}, "shots": SHOTS}],
    }


def aer_counts(seed: int) -> list[dict[str, Any]]:
    """What real Aer answers for this seed in this process: the result every instance
    must return, whichever attempt ran it."""
    output = sample.fn(SampleInput.model_validate(bell_inputs(seed)))
    return [pub.model_dump() for pub in output.pubs]


async def session_on(s: Stack, instance: str) -> uuid.UUID:
    """A new session whose quantum work the router sends to ``instance`` first."""
    router = s.platform.executions.router
    for _ in range(200):
        session_id = uuid.UUID(await s.session())
        route = router.route(BackendKind.QUANTUM, "quantum.sample", session_id, family="aer")
        if route[0] == instance:
            return session_id
    raise AssertionError(f"no session hashed to {instance}")


def payload(entry: ProvenanceEntry) -> dict[str, Any]:
    assert entry.payload is not None, entry
    return entry.payload


async def entries_by_execution(s: Stack) -> dict[str, list[ProvenanceEntry]]:
    found: dict[str, list[ProvenanceEntry]] = {}
    for entry in await s.platform.storage.list_entries(limit=100_000):
        if entry.resource_type == "execution":
            found.setdefault(entry.resource_id, []).append(entry)
    return found


def attempt_gaps(entries: list[ProvenanceEntry]) -> list[float]:
    """Seconds from the start of each retried attempt to the start of the next.

    The retry is queued after the attempt's failure (which is after its start), ready a
    backoff later; the next attempt is leased no earlier.  So each gap is at least the
    backoff, whatever the scheduling, and exceeds it by the failed job's run and report.
    (The entries' own stamps are no bound: the writer stamps them as it takes them.)"""
    gaps: list[float] = []
    starts = [
        datetime.fromisoformat(payload(entry)["started_at"])
        for entry in entries
        if entry.action == "execution.started"
    ]
    for started, following in zip(starts, starts[1:], strict=False):
        gaps.append((following - started).total_seconds())
    return gaps


async def test_half_failing_jobs_fail_over_after_a_backoff_once_each_and_mark_the_instance(
    tmp_path: Path,
) -> None:
    async with stack(
        tmp_path, dispatch__retry_backoff_s=BACKOFF_S, dispatch__max_attempts=3, backends=QUANTUM
    ) as s:
        threshold = s.platform.executions.router.health.failure_threshold
        target = FlakyTarget(run=threshold)  # 3 good, 3 bad, ...: half its jobs fail
        flaky_jobs = FLAKY_SESSIONS * JOBS_PER_SESSION
        assert flaky_jobs % (2 * threshold) == 0  # so its last jobs are a run of failures

        sessions = [await session_on(s, "flaky") for _ in range(FLAKY_SESSIONS)]
        healthy_session = await session_on(s, "healthy")
        # Placed before any runner claims: one for healthy, then one for each flaky
        # session, so no queue gets over twice as deep as the other (the router would
        # spill the excess to the shallower one) and every route is the ring's.
        placed: list[tuple[uuid.UUID, int, dict[str, Any]]] = []
        for _ in range(JOBS_PER_SESSION):
            for session_id in (healthy_session, *sessions):
                seed = len(placed) + 1
                body = {
                    "agent": "quantum.sample",
                    "backend": "quantum",
                    "inputs": bell_inputs(seed),
                    "wait_s": 0,
                }
                response = await s.execute(str(session_id), **body)
                assert response.status_code == 202, response.text
                placed.append((session_id, seed, response.json()))
        assert [e["instance"] for _, _, e in placed] == [
            "healthy",
            *["flaky"] * FLAKY_SESSIONS,
        ] * JOBS_PER_SESSION

        # One job at a time on flaky: its outcomes reach the router in the target's order.
        flaky = s.runner("quantum", "flaky", registry=flaky_registry(target), concurrency=1)
        healthy = s.runner("quantum", "healthy")
        dispatcher = s.platform.executions.dispatcher
        async with running(flaky, healthy):
            finals = await asyncio.gather(
                *(dispatcher.wait_final(uuid.UUID(e["id"]), 30) for _, _, e in placed)
            )
            health = (await s.client.get("/health")).json()["checks"]["backends"]

        # Half the flaky instance's jobs were refused, and only those.
        assert (target.jobs, target.failed) == (flaky_jobs, flaky_jobs // 2)
        assert flaky.summary.by_state == {"succeeded": flaky_jobs // 2, "failed": flaky_jobs // 2}
        assert healthy.summary.by_state == {"succeeded": JOBS_PER_SESSION + flaky_jobs // 2}

        # Every execution succeeded with real Aer's counts, and is recorded exactly once.
        ledger = await entries_by_execution(s)
        moved: list[Execution] = []
        for (_, seed, queued), final in zip(placed, finals, strict=True):
            assert final is not None, f"execution {queued['id']} never finished"
            assert final.state is ExecutionState.SUCCEEDED, final.error
            assert final.result["pubs"] == aer_counts(seed)
            actions = [e.action for e in ledger[str(final.id)]]
            if final.attempts == 1:
                assert actions == FIRST_TIME
                assert final.instance == queued["instance"]
            else:
                assert actions == FAILED_OVER
                moved.append(final)
        for session_id in {sid for sid, _, _ in placed}:
            counts = await s.platform.storage.count_executions(session_id)
            assert counts == {(ExecutionState.SUCCEEDED, "quantum"): JOBS_PER_SESSION}

        # The refused ones: tried on flaky, retried after the backoff, finished on healthy.
        assert len(moved) == target.failed
        for final in moved:
            entries = ledger[str(final.id)]
            first, retry = payload(entries[1]), payload(entries[2])
            assert (first["instance"], first["attempts"]) == ("flaky", 1)
            assert (retry["instance"], retry["attempts"], retry["state"]) == (
                "healthy",
                2,
                "queued",
            )
            assert retry["error"]["type"] == "BackendError"
            assert retry["error"]["retryable"] is True
            assert "HTTP 503" in retry["error"]["message"]
            assert (final.instance, final.attempts, final.error) == ("healthy", 2, None)
            [gap] = attempt_gaps(entries)
            assert gap >= BACKOFF_S, gap

        # Its last jobs failed in a row: the router took it out of the rotation (failing
        # for 5 s, then probing: either way only a probe's success brings it back).
        assert health["flaky"]["status"] in {"failing", "probing"}, health
        assert health["healthy"]["status"] == "healthy", health
        snapshot = s.platform.executions.router.health.snapshot()
        assert snapshot["flaky"]["consecutive_failures"] == threshold
        assert snapshot["healthy"]["consecutive_failures"] == 0


async def test_work_pinned_to_the_flaky_instance_is_retried_there_with_a_doubling_backoff(
    tmp_path: Path,
) -> None:
    """``fan_out`` pins an execution to its instance, so its retries stay on ``flaky``:
    three refused jobs in a row are three retries, each waiting twice the one before."""
    async with stack(
        tmp_path, dispatch__retry_backoff_s=BACKOFF_S, dispatch__max_attempts=4, backends=QUANTUM
    ) as s:
        target = FlakyTarget(run=3, fail_first=True)  # bad, bad, bad, good
        flaky = s.runner("quantum", "flaky", registry=flaky_registry(target), concurrency=1)
        async with running(flaky, s.runner("quantum", "healthy")):
            response = await s.execute(
                await s.session(),
                agent="quantum.sample",
                inputs=bell_inputs(7),
                fan_out=["flaky"],
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["state"] == "succeeded", body
        [execution] = body["executions"]
        assert (execution["instance"], execution["attempts"]) == ("flaky", 4)
        assert execution["result"]["pubs"] == aer_counts(7)
        assert (target.jobs, target.failed) == (4, 3)

        entries = (await entries_by_execution(s))[execution["id"]]
        assert [e.action for e in entries] == [
            "execution.queued",
            *["execution.started", "execution.retry"] * 3,
            "execution.started",
            "execution.succeeded",
        ]
        assert {payload(e)["instance"] for e in entries} == {"flaky"}
        gaps = attempt_gaps(entries)
        assert len(gaps) == 3
        for attempt, gap in enumerate(gaps, start=1):
            assert gap >= BACKOFF_S * 2 ** (attempt - 1), gaps
