"""The Prefect mirror against a real Prefect server: the suite's shared one, and one of
its own for the test that restarts it.

The platform runs in this process on memory or SQLite storage and is driven through
its services; what the mirror made is read back through Prefect's own client.  The
server's task-run recorder turns the mirror's events into task runs asynchronously,
so task-run assertions poll until the expected runs are there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import TaskRun

from limit_graph.core.models import ExecutionState, SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer, free_port
from limit_graph.orchestration.mirror import PrefectMirror
from limit_graph.orchestration.platform import Platform
from tests.fixtures.lossy_proxy import lossy_proxy
from tests.fixtures.mirror import (
    ADMIN,
    Prefect,
    artifacts,
    backlog,
    counted,
    eventually,
    execute,
    execution_tag,
    flow_run_of,
    running_platform,
    tally,
    task_runs,
    unmirrored,
)

MIRROR_LOG = "limit_graph.orchestration.mirror"


@pytest.fixture
def prefect(prefect_server: PrefectServer) -> Prefect:
    """The suite's shared server: each test reads back only its own sessions' flow runs."""
    return Prefect(prefect_server)


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Prefect]:
    """A server of the test's own, which it stops and starts again."""
    holder = Prefect(PrefectServer(home=tmp_path / "prefect", ui=False).start())
    try:
        yield holder
    finally:
        holder.server.stop()


@pytest.fixture
async def client(prefect: Prefect) -> AsyncIterator[PrefectClient]:
    async with PrefectClient(api=prefect.api_url) as client:
        yield client


def settled(count: int) -> Callable[[list[TaskRun]], bool]:
    """``count`` task runs, each with its state: the recorder writes a run before its state."""
    return lambda runs: len(runs) == count and all(run.state is not None for run in runs)


# --- one execution, one task run ------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_sessions_are_flow_runs_and_executions_task_runs(
    kind: str, tmp_path: Path, prefect: Prefect, client: PrefectClient
) -> None:
    async with running_platform(kind, tmp_path) as platform:
        mirror = PrefectMirror(platform.storage, prefect.api_url, telemetry=platform.telemetry)
        session = await platform.sessions.create(ADMIN, SessionConfig(), name="demo")
        done = [await execute(platform, session.id, "echo", {"n": n}) for n in range(3)]
        done.append(await execute(platform, session.id, "fail", {"message": "no luck"}))
        done.append(await execute(platform, session.id, "sleep", {"seconds": 5}, timeout_s=0.05))
        running = await execute(platform, session.id, "sleep", {"seconds": 30}, wait_s=0)
        done.append(await platform.executions.cancel(ADMIN, session.id, running.id))

        assert await mirror.run_once() > 0
        flow_run_id = mirror.flow_run_id(session.id)
        assert flow_run_id is not None
        flow_run = await client.read_flow_run(flow_run_id)
        assert flow_run.name == f"session-{session.id.hex[:8]}"
        assert set(flow_run.tags) == {f"session:{session.id}", "tenant:acme"}
        assert flow_run.state is not None and flow_run.state.type.value == "RUNNING"

        runs = await eventually(lambda: task_runs(client, flow_run_id), settled(6))
        by_execution = {execution_tag(run): run for run in runs}
        expected = {
            ExecutionState.SUCCEEDED: ("COMPLETED", "Completed"),
            ExecutionState.FAILED: ("FAILED", "Failed"),
            ExecutionState.TIMED_OUT: ("FAILED", "TimedOut"),
            ExecutionState.CANCELLED: ("CANCELLED", "Cancelled"),
        }
        for execution in done:
            run = by_execution[str(execution.id)]
            assert run.state is not None
            assert (run.state.type.value, run.state.name) == expected[execution.state]
            assert {f"agent:{execution.agent}", "backend:local", "instance:local"} <= set(run.tags)
            assert run.start_time == execution.started_at
            assert run.end_time == execution.finished_at
        assert "no luck" in (by_execution[str(done[3].id)].state.message or "")  # type: ignore[union-attr]

        await platform.sessions.complete(ADMIN, session.id)
        assert await mirror.run_once() == 1
        flow_run = await client.read_flow_run(flow_run_id)
        assert flow_run.state is not None and flow_run.state.type.value == "COMPLETED"
        found = {a.type: a for a in await artifacts(client, flow_run_id)}
        table = json.loads(found["table"].data)
        assert sorted(row["state"] for row in table) == sorted(e.state.value for e in done)
        assert {row["link"] for row in table} == {
            f"/sessions/{session.id}/executions/{e.id}" for e in done
        }
        last = (await platform.storage.list_entries(after=-1, limit=10_000))[-1]
        summary = found["markdown"].data
        assert last.leaf_hash in summary
        assert f"{last.index + 1:,} entries" in summary
        assert f"/sessions/{session.id}/results" in summary

        size = await platform.storage.ledger_size()
        assert await platform.storage.get_value("mirror", "cursor") == {"index": size - 1}
        assert (mirror.backlog, mirror.lag_s) == (0, 0.0)
        registry = platform.telemetry.registry
        assert registry.get_sample_value("limit_mirror_task_runs_total", {"kind": "single"}) == 6
        assert registry.get_sample_value("limit_mirror_backlog_entries") == 0
        await mirror.close()


# --- over budget: groups --------------------------------------------------------------


async def test_over_budget_executions_are_grouped_and_all_counted(
    tmp_path: Path, prefect: Prefect, client: PrefectClient
) -> None:
    async with running_platform("memory", tmp_path) as platform:
        mirror = PrefectMirror(
            platform.storage, prefect.api_url, telemetry=platform.telemetry, task_runs_per_s=4
        )
        first = await platform.sessions.create(ADMIN, SessionConfig())
        second = await platform.sessions.create(ADMIN, SessionConfig())
        for n in range(40):
            await execute(platform, first.id, "echo", {"n": n})
        for _ in range(3):
            await execute(platform, first.id, "fail", {})
        for n in range(25):
            await execute(platform, second.id, "echo", {"n": n})
        lone = await execute(platform, second.id, "sleep", {"seconds": 5}, timeout_s=0.05)
        assert await mirror.run_once() == await platform.storage.ledger_size()

        runs = await eventually(lambda: task_runs(client, mirror.flow_run_id(first.id)), settled(2))
        assert {(run.name, counted([run])) for run in runs} == {
            ("echo ×40 succeeded", 40),
            ("fail ×3 failed", 3),
        }
        for run in runs:
            agent = run.name.split()[0]
            assert {"grouped", f"agent:{agent}", f"results:/sessions/{first.id}/results"} <= set(
                run.tags
            )
        echo = next(run for run in runs if run.name.startswith("echo"))
        page = await platform.storage.list_executions(
            first.id, state=ExecutionState.SUCCEEDED, limit=100, cursor=None
        )
        executions = page.items
        assert echo.start_time == min(e.started_at for e in executions if e.started_at)
        assert echo.end_time == max(e.finished_at for e in executions if e.finished_at)

        runs = await eventually(
            lambda: task_runs(client, mirror.flow_run_id(second.id)), settled(2)
        )
        assert counted(runs) == 26
        single = next(run for run in runs if "grouped" not in run.tags)
        assert execution_tag(single) == str(lone.id)
        assert single.state is not None and single.state.name == "TimedOut"
        registry = platform.telemetry.registry
        assert registry.get_sample_value("limit_mirror_task_runs_total", {"kind": "grouped"}) == 3

        await platform.sessions.delete(ADMIN, second.id)
        assert await mirror.run_once() == 1
        flow_run = await client.read_flow_run(mirror.flow_run_id(second.id))  # type: ignore[arg-type]
        assert flow_run.state is not None and flow_run.state.type.value == "CANCELLED"
        await mirror.close()


# --- durability -----------------------------------------------------------------------


async def test_a_replay_after_a_crash_changes_nothing(
    tmp_path: Path, prefect: Prefect, client: PrefectClient
) -> None:
    """A crash after the mirror sent a read but before its cursor moved: the next mirror
    re-reads exactly that read and sends the same flow run, task runs and artifacts."""
    async with running_platform("sqlite", tmp_path) as platform:
        first = PrefectMirror(
            platform.storage, prefect.api_url, telemetry=platform.telemetry, task_runs_per_s=4
        )
        session = await platform.sessions.create(ADMIN, SessionConfig())
        for n in range(30):
            await execute(platform, session.id, "echo", {"n": n})
        await execute(platform, session.id, "fail", {})
        await platform.sessions.complete(ADMIN, session.id)
        assert await first.run_once() > 0
        await first.close()
        flow_run_id = first.flow_run_id(session.id)
        assert flow_run_id is not None
        before = await eventually(lambda: task_runs(client, flow_run_id), settled(2))

        end = await platform.storage.ledger_size() - 1
        await platform.storage.put_value("mirror", "cursor", {"index": -1, "chunk_end": end})
        again = PrefectMirror(
            platform.storage, prefect.api_url, telemetry=platform.telemetry, task_runs_per_s=4
        )
        # written after the crash: the replay must not take them into its groups
        marker = await platform.sessions.create(ADMIN, SessionConfig())
        await execute(platform, marker.id, "echo", {})
        assert await again.run_once() == end + 1
        assert again.flow_run_id(session.id) == flow_run_id
        assert await again.run_once() > 0
        # the recorder works in order: once the later run is there, the replay was handled
        await eventually(lambda: task_runs(client, again.flow_run_id(marker.id)), bool)

        after = await task_runs(client, flow_run_id)
        assert sorted(run.id for run in after) == sorted(run.id for run in before)
        assert counted(after) == 31
        assert len(await artifacts(client, flow_run_id)) == 2
        await again.close()


@pytest.mark.parametrize("grouped", [False, True], ids=["single", "grouped"])
async def test_a_batch_resent_after_its_answer_was_lost_counts_each_execution_once(
    grouped: bool, tmp_path: Path, prefect: Prefect, client: PrefectClient
) -> None:
    """Prefect takes each request but its answer is lost on the way back, so the mirror
    sends the task runs, the session's state and an artifact twice: Prefect still shows
    each execution once, one Completed state and two artifacts."""
    with lossy_proxy(prefect.api_url) as (proxy, api_url):
        async with running_platform("memory", tmp_path) as platform:
            budget = 4 if grouped else 1000
            mirror = PrefectMirror(
                platform.storage, api_url, telemetry=platform.telemetry, task_runs_per_s=budget
            )
            session = await platform.sessions.create(ADMIN, SessionConfig())
            done = [await execute(platform, session.id, "echo", {"n": n}) for n in range(30)]
            done += [await execute(platform, session.id, "fail", {}) for _ in range(2)]
            await platform.sessions.complete(ADMIN, session.id)
            size = await platform.storage.ledger_size()
            for path in ("/events", "/set_state", "/artifacts/"):
                proxy.lose("POST", path)
                assert await mirror.run_once() == 0
                assert proxy.forwarded("POST", path) == 1
            assert await mirror.run_once() == size
            assert proxy.forwarded("POST", "/events") == 2
            flow_run_id = mirror.flow_run_id(session.id)
            assert flow_run_id is not None

            marker = await platform.sessions.create(ADMIN, SessionConfig())
            await execute(platform, marker.id, "echo", {})
            assert await mirror.run_once() > 0
            # the recorder works in order: once the later run is there, the re-sent were handled
            await eventually(lambda: task_runs(client, mirror.flow_run_id(marker.id)), bool)
            await mirror.close()

    runs = await task_runs(client, flow_run_id)
    assert tally(runs) == {"succeeded": 30, "failed": 2}
    if grouped:
        assert sorted(run.name for run in runs) == ["echo ×30 succeeded", "fail ×2 failed"]
    else:
        assert sorted(execution_tag(run) or "" for run in runs) == sorted(str(e.id) for e in done)
    states = await client.read_flow_run_states(flow_run_id)
    assert [s.type.value for s in states].count("COMPLETED") == 1
    assert sorted(a.type for a in await artifacts(client, flow_run_id)) == ["markdown", "table"]


async def test_a_restart_sends_an_interrupted_read_as_it_was_sent_before(
    tmp_path: Path, prefect: Prefect, client: PrefectClient
) -> None:
    """A read went out one task run per execution, its answer was lost and the platform
    stopped; it comes back with a budget that would group them: the read is sent again
    one by one, not also as a group on top."""
    async with running_platform("memory", tmp_path) as platform:
        with lossy_proxy(prefect.api_url) as (proxy, api_url):
            first = PrefectMirror(
                platform.storage, api_url, telemetry=platform.telemetry, task_runs_per_s=1000
            )
            session = await platform.sessions.create(ADMIN, SessionConfig())
            done = [await execute(platform, session.id, "echo", {"n": n}) for n in range(20)]
            proxy.lose("POST", "/events")
            assert await first.run_once() == 0
            assert proxy.forwarded("POST", "/events") == 1
            await first.close()  # failing: it stops without another try
        end = await platform.storage.ledger_size() - 1

        again = PrefectMirror(
            platform.storage, prefect.api_url, telemetry=platform.telemetry, task_runs_per_s=4
        )
        marker = await platform.sessions.create(ADMIN, SessionConfig())
        for n in range(5):
            await execute(platform, marker.id, "echo", {"n": n})
        assert await again.run_once() == end + 1
        assert await again.run_once() > 0
        await eventually(lambda: task_runs(client, again.flow_run_id(marker.id)), bool)
        await again.close()

    runs = await task_runs(client, first.flow_run_id(session.id))
    assert sorted(execution_tag(run) or "" for run in runs) == sorted(str(e.id) for e in done)
    assert tally(runs) == {"succeeded": 20}
    marked = await task_runs(client, again.flow_run_id(marker.id))
    assert [(run.name, counted([run])) for run in marked] == [("echo ×5 succeeded", 5)]


async def test_an_unreachable_prefect_is_logged_once_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_platform("memory", tmp_path) as platform:
        mirror = PrefectMirror(
            platform.storage, f"http://127.0.0.1:{free_port()}/api", telemetry=platform.telemetry
        )
        session = await platform.sessions.create(ADMIN, SessionConfig())
        executed = await execute(platform, session.id, "echo", {})
        assert executed.state is ExecutionState.SUCCEEDED
        with caplog.at_level(logging.WARNING, logger=MIRROR_LOG):
            assert await mirror.run_once() == 0
            assert await mirror.run_once() == 0
        assert len([r for r in caplog.records if r.name == MIRROR_LOG]) == 1
        assert mirror.backlog == await platform.storage.ledger_size()
        assert mirror.lag_s > 0
        saved = await platform.storage.get_value("mirror", "cursor")
        assert saved is not None and saved["index"] == -1
        await mirror.close()


async def test_the_mirror_catches_up_after_prefect_restarts(
    tmp_path: Path, restartable: Prefect, caplog: pytest.LogCaptureFixture
) -> None:
    prefect = restartable
    async with (
        running_platform("sqlite", tmp_path) as platform,
        PrefectClient(api=prefect.api_url) as client,
    ):
        mirror = PrefectMirror(
            platform.storage, prefect.api_url, telemetry=platform.telemetry, interval_s=0.2
        )
        await mirror.start()
        session = await platform.sessions.create(ADMIN, SessionConfig())
        for n in range(20):
            await execute(platform, session.id, "echo", {"n": n})
        # the mirror's own backlog is as of its last read, which may predate these writes
        await eventually(lambda: unmirrored(platform.storage), lambda n: n == 0)
        flow_run_id = mirror.flow_run_id(session.id)
        assert flow_run_id is not None

        home, port = prefect.server.home, prefect.server.port
        prefect.server.stop()
        with caplog.at_level(logging.WARNING, logger=MIRROR_LOG):
            while_down = [await execute(platform, session.id, "echo", {"n": n}) for n in range(300)]
            while_down += [await execute(platform, session.id, "fail", {}) for _ in range(2)]
            await platform.sessions.complete(ADMIN, session.id)
            assert {e.state for e in while_down} == {
                ExecutionState.SUCCEEDED,
                ExecutionState.FAILED,
            }
            await eventually(lambda: backlog(mirror), lambda b: b > 0)
            for _ in range(3):  # several retries while Prefect is down, besides the loop's
                assert await mirror.run_once() == 0
            prefect.server = PrefectServer(home=home, port=port, ui=False).start()
            await eventually(lambda: backlog(mirror), lambda b: b == 0, 60)
        assert len([r for r in caplog.records if r.name == MIRROR_LOG]) == 1

        marker = await platform.sessions.create(ADMIN, SessionConfig())
        await execute(platform, marker.id, "echo", {})
        # the recorder works in order: once the later run is there, the others were handled
        marked = await eventually(lambda: flow_run_of(mirror, marker.id), bool)
        await eventually(lambda: task_runs(client, marked), bool, 60)
        runs = await task_runs(client, flow_run_id)
        assert counted(runs) == 322
        singles = [execution_tag(run) for run in runs if "grouped" not in run.tags]
        assert len(singles) == len(set(singles))
        flow_run = await client.read_flow_run(flow_run_id)
        assert flow_run.state is not None and flow_run.state.type.value == "COMPLETED"
        assert sorted(a.type for a in await artifacts(client, flow_run_id)) == [
            "markdown",
            "table",
        ]
        await mirror.close()


async def test_the_platform_runs_a_mirror_when_prefect_is_configured(
    tmp_path: Path, prefect: Prefect, client: PrefectClient
) -> None:
    off = load_settings(environ={}, home=str(tmp_path / "off"), storage__type="memory")
    on = off.model_copy(
        update={"prefect": off.prefect.model_copy(update={"api_url": prefect.api_url})}
    )
    platform = await Platform.start(off)
    assert platform.mirror is None
    await platform.close()

    platform = await Platform.start(on)
    try:
        mirror = platform.mirror
        assert mirror is not None
        assert mirror.task_runs_per_s == on.prefect.mirror_task_runs_per_s
        session = await platform.sessions.create(ADMIN, SessionConfig())
        await execute(platform, session.id, "echo", {})
        flow_run_id = await eventually(lambda: flow_run_of(mirror, session.id), bool)
        await eventually(lambda: task_runs(client, flow_run_id), lambda r: len(r) == 1)
        await platform.sessions.complete(ADMIN, session.id)
    finally:
        await platform.close()  # mirrors the completion on its way out
    flow_run = await client.read_flow_run(flow_run_id)
    assert flow_run.state is not None and flow_run.state.type.value == "COMPLETED"
