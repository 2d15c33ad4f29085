"""A server misconfiguration met while serving a request is the server's fault: a 500
``server-misconfigured`` problem whose detail names what the operator must fix, logged
once at error level, never the 422 of a caller's bad input.

Before, ``ConfigError`` was an ``InvalidInput``: an execute on an ``ibm:`` target while
no IBM Quantum credentials block was saved answered 422 on ``inputs.target``, as if the
caller had named the target wrongly.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from limit_graph.api import create_app
from limit_graph.api.problems import PROBLEM_TYPE_BASE
from limit_graph.blocks.quantum.ibm import DEFAULT_CREDENTIALS_BLOCK, IBMQuantumCredentials
from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer
from tests.fixtures.api import ADMIN_KEY, Api, assert_problem
from tests.fixtures.prefect import block_documents

BELL = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""
NO_CREDENTIALS = (
    f"no IBM Quantum credentials block {DEFAULT_CREDENTIALS_BLOCK!r}: save one "
    "(`limit prefect register` saves an instance's api_key) or create it in the Prefect UI"
)


@pytest.fixture
def api_settings() -> dict[str, Any]:
    """An IBM instance, so the request is one the platform would route."""
    return {"backends": {"east": {"type": "quantum", "provider": "ibm"}}}


def _misconfigured(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.levelno >= logging.ERROR]


async def test_an_ibm_target_without_credentials_is_a_500_naming_the_fix(
    api: Api, scratch_blocks: PrefectServer, caplog: pytest.LogCaptureFixture
) -> None:
    slug = IBMQuantumCredentials.get_block_type_slug()
    saved = set(block_documents(scratch_blocks.api_url).values())
    assert (slug, DEFAULT_CREDENTIALS_BLOCK) not in saved, "the shared server has the block"
    sid = await api.new_session(backends=["quantum"])
    before = await api.ledger_size()
    body = {
        "agent": "quantum.sample",
        "backend": "quantum",
        "wait_s": 0,
        "inputs": {
            "target": "ibm:ibm_fez",
            "pubs": [{"circuit": {"format": "qasm3", "source": BELL}, "shots": 10}],
        },
    }

    caplog.clear()
    with temporary_settings(updates={PREFECT_API_URL: scratch_blocks.api_url}):
        response = await api.client.post(f"/sessions/{sid}/execute", json=body)

    problem = assert_problem(response, 500)
    assert problem == {
        "type": PROBLEM_TYPE_BASE + "server-misconfigured",
        "title": "Server misconfigured",
        "status": 500,
        "detail": NO_CREDENTIALS,
    }
    [record] = _misconfigured(caplog.records)
    assert record.name == "limit_graph.api"
    assert record.getMessage() == (
        f"server misconfigured on POST /sessions/{sid}/execute: {NO_CREDENTIALS}"
    )
    assert await api.ledger_size() == before
    assert await api.platform.storage.count_executions(uuid.UUID(sid)) == {}


async def test_a_config_error_is_a_500_that_sends_no_setting_and_keeps_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever raises it: the detail is sent, its ``errors`` (a settings file's keys and
    places) stay in the server's log, and the next request is served as usual."""
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'api.db'}",
    )
    app = create_app(settings)

    async def misconfigured() -> None:
        raise ConfigError(
            "set LIMIT_EXAMPLE_URL", [{"loc": "example.url", "msg": "missing", "type": "x"}]
        )

    app.add_api_route("/test/misconfigured", misconfigured, methods=["GET"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"X-API-Key": ADMIN_KEY}
        ) as client:
            caplog.clear()
            response = await client.get("/test/misconfigured")
            after = await client.get("/health")

    problem = assert_problem(response, 500)
    assert problem["type"] == PROBLEM_TYPE_BASE + "server-misconfigured"
    assert problem["detail"] == "set LIMIT_EXAMPLE_URL"
    assert "errors" not in problem and "example.url" not in response.text
    assert after.status_code == 200
    [record] = _misconfigured(caplog.records)
    assert record.getMessage().endswith("GET /test/misconfigured: set LIMIT_EXAMPLE_URL")
    assert record.exc_info is None  # the operator's to fix, not a bug: no traceback
