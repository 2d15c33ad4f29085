"""Bodies are read as I-JSON: anything else is a 400 naming where, with nothing written.

Before, a lone surrogate was a 500 from inside the writer, duplicate keys were
accepted (the last one won), and NaN, Infinity and 1e400 were stored (as ``null``).
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import re
import uuid
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

import limit_graph.api.routes
from limit_graph.api.ijson import IJSONRoute
from limit_graph.core.agents import AgentSpec
from limit_graph.storage.ledger import verify_entries
from tests.fixtures.api import Api, assert_problem

JSON = {"Content-Type": "application/json"}

NOT_IJSON = [
    pytest.param(rb'"x": "\ud800"', ["body", "inputs", "x"], "string_not_unicode", id="surrogate"),
    pytest.param(rb'"x": ["\udfff"]', ["body", "inputs", "x", 0], "string_not_unicode", id="low"),
    pytest.param(
        rb'"x": "a\ude00\ud83d"', ["body", "inputs", "x"], "string_not_unicode", id="swap"
    ),
    pytest.param(rb'"\udbff": 1', ["body", "inputs", "\\udbff"], "string_not_unicode", id="key"),
    pytest.param(rb'"x": "\uffff"', ["body", "inputs", "x"], "string_not_unicode", id="nonchar"),
    pytest.param(b'"x": NaN', ["body", "inputs", "x"], "number_not_finite", id="nan"),
    pytest.param(b'"x": Infinity', ["body", "inputs", "x"], "number_not_finite", id="inf"),
    pytest.param(b'"x": [-Infinity]', ["body", "inputs", "x", 0], "number_not_finite", id="-inf"),
    pytest.param(b'"x": 1e400', ["body", "inputs", "x"], "number_not_finite", id="1e400"),
    pytest.param(b'"x": -1e400', ["body", "inputs", "x"], "number_not_finite", id="-1e400"),
    pytest.param(
        b'"x": 9007199254740992', ["body", "inputs", "x"], "number_not_safe_integer", id="2**53"
    ),
    pytest.param(
        b'"x": {"y": -9007199254740993}',
        ["body", "inputs", "x", "y"],
        "number_not_safe_integer",
        id="-2**53-1",
    ),
    pytest.param(b'"x": 1, "x": 2', ["body", "inputs", "x"], "duplicate_key", id="dup-inputs"),
    pytest.param(
        b'"x": [{"a": 1, "b": 2, "a": 1}]',
        ["body", "inputs", "x", 0, "a"],
        "duplicate_key",
        id="dup",
    ),
    pytest.param(b'"x": ' + b"[" * 200 + b"]" * 200, None, "too_deep", id="deep"),
    pytest.param(b'"x": ' + b"[" * 5000 + b"]" * 5000, ["body"], "too_deep", id="very-deep"),
    pytest.param(b'"x": "caf\xe9"', ["body"], "utf8_invalid", id="latin-1"),
    pytest.param(b'"x": "\xed\xa0\x80"', ["body"], "utf8_invalid", id="utf8-surrogate"),
]


async def _nothing_written(api: Api, before: int, sid: str) -> None:
    assert await api.ledger_size() == before
    page = await api.platform.storage.list_executions(
        uuid.UUID(sid), state=None, limit=10, cursor=None
    )
    assert page.items == []


@pytest.mark.parametrize(("inputs", "loc", "kind"), NOT_IJSON)
async def test_a_body_that_is_not_ijson_is_a_400_naming_where(
    api: Api, inputs: bytes, loc: list[Any] | None, kind: str
) -> None:
    sid = await api.new_session()
    before = await api.ledger_size()
    body = b'{"agent": "echo", "inputs": {' + inputs + b"}}"
    response = await api.client.post(f"/sessions/{sid}/execute", content=body, headers=JSON)
    problem = assert_problem(response, 400)
    assert problem["title"] == "Malformed JSON"
    assert str(problem["type"]).endswith("/malformed-json")
    error = problem["errors"][0]  # type: ignore[index]
    assert error["type"] == kind
    if loc is not None:
        assert error["loc"] == loc
    else:
        assert error["loc"][:3] == ["body", "inputs", "x"]
    await _nothing_written(api, before, sid)


async def test_duplicate_keys_are_refused_not_resolved(api: Api) -> None:
    """The issue's case: a proxy that keeps the first key sees ``echo``; this app saw
    ``fail``.  Now neither runs."""
    sid = await api.new_session()
    before = await api.ledger_size()
    body = b'{"agent": "echo", "agent": "fail", "inputs": {}}'
    problem = assert_problem(
        await api.client.post(f"/sessions/{sid}/execute", content=body, headers=JSON), 400
    )
    [error] = problem["errors"]  # type: ignore[misc]
    assert (error["loc"], error["type"]) == (["body", "agent"], "duplicate_key")
    assert "'agent'" in error["msg"]
    assert "'agent'" in str(problem["detail"])
    await _nothing_written(api, before, sid)


async def test_ijson_at_its_limits_is_accepted(api: Api) -> None:
    sid = await api.new_session()
    body = (
        rb'{"agent": "echo", "inputs": {"pair": "\ud83d\ude00", "max": 9007199254740991,'
        rb' "min": -9007199254740991, "big": 1e308, "tiny": 5e-324, "neg0": -0.0,'
        rb' "nul": "\u0000", "deep": ' + b"[" * 120 + b"]" * 120 + b"}}"
    )
    response = await api.client.post(f"/sessions/{sid}/execute", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["pair"] == "\U0001f600" and result["max"] == 2**53 - 1
    assert result["min"] == -(2**53 - 1) and result["big"] == 1e308 and result["nul"] == "\x00"
    entries = await api.platform.storage.list_entries()
    assert verify_entries(entries) is None


def _route_modules() -> list[Any]:
    package = limit_graph.api.routes
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def test_every_route_with_a_body_reads_it_as_ijson() -> None:
    modules = [m for m in _route_modules() if hasattr(m, "router")]
    assert len(modules) >= 8
    for module in modules:
        for route in module.router.routes:
            if isinstance(route, APIRoute) and route.body_field is not None:
                assert isinstance(route, IJSONRoute), (module.__name__, route.path)


async def test_every_published_body_refuses_duplicate_keys(api: Api) -> None:
    """Walk the OpenAPI document: each operation that takes a JSON body answers a
    body with a duplicate key with the 400, and writes nothing."""
    sid = await api.new_session()
    before = await api.ledger_size()
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    tried = []
    for template, operations in paths.items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            path = re.sub(r"\{session_id\}", sid, template)
            path = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path)
            body = b'{"name": "a", "name": "b", "runner_id": "r", "runner_id": "s"}'
            response = await api.client.request(method, path, content=body, headers=JSON)
            problem = assert_problem(response, 400)
            assert problem["errors"][0]["type"] == "duplicate_key", (method, template)  # type: ignore[index]
            tried.append((method, template))
    assert len(tried) >= 8, tried
    for expected in [
        ("post", "/sessions"),
        ("patch", "/sessions/{session_id}"),
        ("post", "/sessions/restore"),
        ("post", "/sessions/{session_id}/execute"),
        ("post", "/agents/{agent_id}/execute"),
        ("post", "/runners/report"),
    ]:
        assert expected in tried
    assert await api.ledger_size() == before


async def _queued_remote(api: Api, sid: str) -> str:
    response = await api.client.post(
        f"/sessions/{sid}/execute",
        json={"agent": "echo", "inputs": {"n": 1}, "backend": "remote", "wait_s": 0},
    )
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["id"]
    return execution_id


async def test_a_runner_reporting_nan_is_refused_and_nothing_is_recorded(
    api: Api,
) -> None:
    sid = await api.new_session()
    execution_id = await _queued_remote(api, sid)
    claim = await api.client.post(
        "/runners/claim", json={"runner_id": "r-1", "pool": "remote", "wait_s": 1}
    )
    [lease] = claim.json()["leases"]
    report = (
        b'{"runner_id": "r-1", "results": [{"execution_id": "%s", "attempt": %d,'
        b' "state": "succeeded", "result": {"energy": NaN}}]}'
    ) % (execution_id.encode(), lease["attempt"])
    problem = assert_problem(
        await api.client.post("/runners/report", content=report, headers=JSON), 400
    )
    assert problem["errors"][0]["loc"] == ["body", "results", 0, "result", "energy"]  # type: ignore[index]
    stored = await api.platform.storage.get_execution(uuid.UUID(execution_id))
    assert stored is not None and not stored.state.is_final and stored.result is None
    entries = await api.platform.storage.list_entries(session_id=uuid.UUID(sid))
    assert "execution.succeeded" not in [e.action for e in entries if e.resource_id == execution_id]


class _Anything(BaseModel):
    model_config = ConfigDict(extra="allow")


def _not_a_number(_: _Anything) -> dict[str, Any]:
    return {"energy": float("nan"), "ok": True}


async def test_an_agent_returning_nan_fails_alone_with_a_clear_error(api: Api) -> None:
    """Pydantic would store NaN as ``null``; the execution fails with its own error
    instead, and the executions written beside it are untouched."""
    api.platform.registry.register(
        AgentSpec(
            name="nan-maker",
            version="1.0.0",
            description="Returns NaN.",
            input_model=_Anything,
            output_model=_Anything,
            fn=_not_a_number,
            blocking=False,
        )
    )
    sid = await api.new_session()
    responses = await asyncio.gather(
        *(
            api.client.post(
                f"/sessions/{sid}/execute",
                json={"agent": "nan-maker" if n == 2 else "echo", "inputs": {"n": n}},
            )
            for n in range(5)
        )
    )
    assert [r.status_code for r in responses] == [200] * 5
    states = [r.json()["state"] for r in responses]
    assert states == ["succeeded", "succeeded", "failed", "succeeded", "succeeded"]
    error = responses[2].json()["error"]
    assert error["type"] == "InvalidOutput"
    assert "NaN" in error["message"] and "result.energy" in error["message"]
    entries = await api.platform.storage.list_entries()
    assert verify_entries(entries) is None


def _raise_with_a_surrogate(_: _Anything) -> None:
    raise ValueError("cannot decode b'\\xed\\xa0\\x80' as \ud800")


async def test_an_error_message_with_a_lone_surrogate_is_recorded_escaped(api: Api) -> None:
    """An exception's message is recorded as JSON too: its lone surrogate is escaped,
    so the execution's final record is written (before, the write failed and the
    execution stayed ``running``)."""
    api.platform.registry.register(
        AgentSpec(
            name="surrogate-raiser",
            version="1.0.0",
            description="Raises with a lone surrogate in its message.",
            input_model=_Anything,
            output_model=_Anything,
            fn=_raise_with_a_surrogate,
        )
    )
    sid = await api.new_session()
    response = await api.client.post(
        f"/sessions/{sid}/execute", json={"agent": "surrogate-raiser", "inputs": {}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "failed" and body["error"]["message"].endswith("as \\ud800")
    stored = await api.platform.storage.get_execution(uuid.UUID(body["id"]))
    assert stored is not None and stored.state.is_final
