"""Execute bodies: a setting that would change nothing is refused, not ignored."""

from __future__ import annotations

from typing import Any

from tests.fixtures.api import Api, assert_problem


async def _refused(api: Api, session_id: str, body: dict[str, Any], field: str) -> str:
    before = await api.ledger_size()
    response = await api.client.post(f"/sessions/{session_id}/execute", json=body)
    problem = assert_problem(response, 422)
    errors: list[dict[str, Any]] = problem["errors"]  # type: ignore[assignment]
    assert [e["loc"] for e in errors] == [["body", field]], errors
    assert await api.ledger_size() == before
    assert (await api.client.get(f"/sessions/{session_id}/results")).json()["items"] == []
    return str(problem["detail"])


async def test_inline_is_refused_where_work_never_runs_inline(api: Api) -> None:
    sid = await api.new_session()
    echo = {"agent": "echo", "inputs": {"n": 1}, "inline": True}
    detail = await _refused(api, sid, {**echo, "backend": "remote"}, "inline")
    assert "inline" in detail
    await _refused(api, sid, {**echo, "fan_out": ["local"]}, "inline")
    remote_first = await api.new_session(default_backend="remote")
    await _refused(api, remote_first, echo, "inline")

    ran = await api.client.post(f"/sessions/{sid}/execute", json=echo)
    assert ran.status_code == 200 and ran.json()["state"] == "succeeded"
    queued = {"agent": "echo", "backend": "remote", "inline": False, "wait_s": 0}
    assert (await api.client.post(f"/sessions/{sid}/execute", json=queued)).status_code == 202


async def test_allow_cached_is_refused_where_nothing_is_cached(api: Api) -> None:
    sid = await api.new_session()
    sleepy = {"agent": "sleep", "inputs": {"seconds": 0}, "allow_cached": True}
    detail = await _refused(api, sid, sleepy, "allow_cached")
    assert "'sleep' is not deterministic" in detail
    fanned = {"agent": "echo", "allow_cached": True, "fan_out": ["remote"], "wait_s": 0}
    await _refused(api, sid, fanned, "allow_cached")

    cached = {"agent": "echo", "inputs": {"n": 2}, "allow_cached": True}
    first = (await api.client.post(f"/sessions/{sid}/execute", json=cached)).json()
    second = (await api.client.post(f"/sessions/{sid}/execute", json=cached)).json()
    assert second["cache_hit"] is True and second["cached_from"] == first["id"]
