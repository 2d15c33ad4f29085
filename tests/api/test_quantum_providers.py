"""Quantum instances with a ``provider`` over REST: work goes only to an instance of its
target's family, a target no instance serves is a 422 before anything is written, and an
instance's IBM Quantum key shows up nowhere a client can read."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from limit_graph.api import create_app
from limit_graph.core.settings import load_settings
from tests.fixtures.api import ADMIN_KEY, assert_problem

IBM_KEY = "ibm-key-that-must-stay-secret-0123"
BELL = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""


@asynccontextmanager
async def platform(tmp_path: Path, backends: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        environ={"LIMIT_BACKEND_EAST_API_KEY": IBM_KEY},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'api.db'}",
        backends=backends,
    )
    assert settings.backends.instances["east"].api_key is not None
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"X-API-Key": ADMIN_KEY}
        ) as client:
            client.app_state = app.state  # type: ignore[attr-defined]
            yield client


async def new_session(client: httpx.AsyncClient) -> str:
    response = await client.post("/sessions", json={"config": {"backends": ["local", "quantum"]}})
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    return session_id


def sample(target: str) -> dict[str, Any]:
    return {
        "agent": "quantum.sample",
        "backend": "quantum",
        "wait_s": 0,
        "inputs": {
            "target": target,
            "seed": 7,
            "pubs": [{"circuit": {"format": "qasm3", "source": BELL}, "shots": 100}],
        },
    }


async def test_a_target_no_instance_serves_is_a_422_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    ibm_only = {"east": {"type": "quantum", "provider": "ibm"}}
    async with platform(tmp_path, ibm_only) as client:
        storage = client.app_state.platform.storage  # type: ignore[attr-defined]
        sid = await new_session(client)
        before = await storage.ledger_size()

        response = await client.post(f"/sessions/{sid}/execute", json=sample("aer"))

        body = assert_problem(response, 422)
        assert body["detail"] == (
            "no quantum instance serves aer targets for agent 'quantum.sample' "
            "(east serves every agent on ibm targets)"
        )
        assert await storage.ledger_size() == before
        assert await storage.count_executions(uuid.UUID(sid)) == {}


async def test_work_goes_to_the_instance_of_its_target_family(tmp_path: Path) -> None:
    backends = {
        "sim": {"type": "quantum", "provider": "aer"},
        "east": {"type": "quantum", "provider": "ibm"},
    }
    async with platform(tmp_path, backends) as client:
        storage = client.app_state.platform.storage  # type: ignore[attr-defined]
        placed = []
        for _ in range(8):  # eight sessions: without the provider, ~half would go to east
            sid = await new_session(client)
            response = await client.post(f"/sessions/{sid}/execute", json=sample("aer"))
            assert response.status_code == 202, response.text
            queued = response.json()
            stored = await storage.get_execution(uuid.UUID(queued["id"]))
            placed.append((queued["instance"], stored.instance))
        assert placed == [("sim", "sim")] * 8

        health = (await client.get("/health")).text
        openapi = (await client.get("/openapi.json")).text
        entries = await storage.list_entries()
        ledger = json.dumps([entry.payload for entry in entries], default=str)
        assert '"east"' in health and '"sim"' in health  # both listed, neither with its key
        for readable in (health, openapi, ledger):
            assert IBM_KEY not in readable
