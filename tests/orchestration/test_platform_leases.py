"""Two API processes on one store with Prefect configured: one runs the Prefect mirror
and the runner supervisor, the other only answers; when the first closes, the second
takes both over within a round of its lease.  Both run on the suite's shared Prefect
server and read back only their own session's flow run.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from limit_graph.api.app import create_app
from limit_graph.core.models import SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer
from limit_graph.orchestration.platform import Platform
from tests.fixtures.mirror import ADMIN, flow_run_of
from tests.fixtures.waiting import eventually

ADMIN_KEY = "test-admin-key-0123456789abcdef"
SECRET = "test-auth-secret-0123456789abcdef"
KEK = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes
LEASE_S = 0.6


async def start_process(tmp_path: Path, name: str, prefect: PrefectServer) -> Platform:
    """An API process's platform on the shared SQLite file."""
    settings = load_settings(
        environ={},
        home=str(tmp_path / name),
        admin_api_key=ADMIN_KEY,
        auth__secret=SECRET,
        encryption__kek=KEK,  # one deployment: its processes share their keys
        storage__url=f"sqlite:///{tmp_path / 'shared.db'}",
        prefect__api_url=prefect.api_url,
        prefect__leader_lease_s=LEASE_S,
    )
    return await Platform.start(settings)


def runs_services(platform: Platform) -> tuple[bool, bool]:
    """Whether the mirror's loop and the supervisor's run in this process."""
    assert platform.mirror is not None and platform.supervisor is not None
    return platform.mirror.running, platform.supervisor._task is not None


async def health_leases(platform: Platform) -> dict[str, dict[str, object]]:
    app = create_app(platform.settings, platform=platform)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client,
    ):
        response = await client.get("/health")
    leases: dict[str, dict[str, object]] = response.json()["checks"]["leases"]
    return leases


async def test_one_process_runs_the_mirror_and_supervisor_and_hands_them_over(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    one = await start_process(tmp_path, "one", prefect_server)
    two = await start_process(tmp_path, "two", prefect_server)
    running = [one, two]
    try:
        # the first to start took both leases at once; the second waits
        assert runs_services(one) == (True, True)
        assert runs_services(two) == (False, False)
        holder = one.leaderships["mirror"].holder
        assert one.leaderships["supervisor"].holder == holder
        for lease in ("mirror", "supervisor", "orphans"):
            assert await one.storage.leases.holder(lease, _now()) == holder
        assert await health_leases(one) == {
            "mirror": {"holder": holder, "this_process": True},
            "supervisor": {"holder": holder, "this_process": True},
            "orphans": {"holder": holder, "this_process": True},
        }
        assert await health_leases(two) == {
            "mirror": {"holder": holder, "this_process": False},
            "supervisor": {"holder": holder, "this_process": False},
            "orphans": {"holder": holder, "this_process": False},
        }

        # a session made on the second process is mirrored by the first, and the second
        # finds its flow run (through the store) though its mirror does not run
        session = await two.sessions.create(ADMIN, SessionConfig(), name="leased")
        mirror = one.mirror
        assert mirror is not None
        flow_run_id = await eventually(lambda: flow_run_of(mirror, session.id), bool)
        shown = await two.with_flow_run(await two.sessions.get(ADMIN, session.id))
        assert shown.prefect_flow_run_id == flow_run_id

        running.remove(one)
        await one.close()
        await eventually(lambda: _runs(two), lambda r: r == (True, True), 3 * LEASE_S, 0.05)
        assert two.leaderships["mirror"].current_holder == two.leaderships["mirror"].holder
        later = await two.sessions.create(ADMIN, SessionConfig(), name="leased-later")
        taken_over = two.mirror
        assert taken_over is not None  # goes on from the cursor the first one left
        await eventually(lambda: flow_run_of(taken_over, later.id), bool)
        assert taken_over.flow_run_id(session.id) is None  # made by the first, not again
    finally:
        for platform in running:
            await platform.close()


async def _runs(platform: Platform) -> tuple[bool, bool]:
    return runs_services(platform)


def _now() -> float:
    return time.time()
