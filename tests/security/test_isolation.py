"""Isolation of everything else: metrics, archives and restores, results, the result cache.

``/metrics`` needs no credentials, so none of its labels may hold tenant data beyond a
tenant's name (no session or execution ids, no principal names or ids, no keys); an
archive is its tenant's alone, and so is a restore of it; a cached result is never
served to another tenant, even for the same agent and the same inputs.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.security.cast import World


def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return response.json()


def test_no_metrics_label_holds_tenant_data(world: World) -> None:
    http, author, theirs = world.http, world.callers["author"], world.theirs
    mine = world.home("author").shared()
    # Traffic that names ids: found, unknown, refused, and paths that match no route.
    for path in (
        f"/sessions/{mine.session_id}",
        f"/sessions/{mine.session_id}/executions/{mine.execution_id}",
        f"/sessions/{theirs.shared().session_id}",
        f"/sessions/{mine.session_id}/no-such-thing/{mine.execution_id}",
        f"/keys/{mine.key_id}",
        f"/{author.key}",
    ):
        http.get(path, headers=author.headers)
    http.get("/sessions", headers={"X-API-Key": author.key or ""}, params={"tag": "secret-tag"})
    text = http.get("/metrics").text
    labels = {
        value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for value in sample.labels.values()
    }
    assert any("/sessions/{session_id}" in value for value in labels), sorted(labels)
    private = {
        *(str(v) for t in (mine, theirs.shared()) for v in t.values().values()),
        *(c.name for c in world.callers.values() if c.name and c.name != "admin"),
        *(c.id for c in world.callers.values() if c.id),
        *(c.key for c in world.callers.values() if c.key),
        "secret-tag",
    } - {"echo", "summary"}
    for value in labels:
        held = [p for p in private if p and p in value]
        assert not held, f"metrics label {value!r} holds {held}"


def test_an_archive_and_its_restore_stay_in_their_tenant(world: World) -> None:
    http, author, theirs = world.http, world.callers["author"], world.theirs
    sid = world.home("author").session()
    world.home("author").execution(sid)
    _ok(http.post(f"/sessions/{sid}/archive", headers=author.headers))
    bundle = _ok(http.get(f"/sessions/{sid}/archive", headers=author.headers))
    owner_b = theirs.owner.headers
    assert http.get(f"/sessions/{sid}/archive", headers=owner_b).status_code == 404
    # team-b holding team-a's bundle (leaked, say) cannot restore it...
    restored = http.post("/sessions/restore", json=bundle, headers=owner_b)
    assert restored.status_code == 404, restored.text
    # ...nor one rewritten to say team-b: its hashes no longer verify.
    rewritten = json.loads(json.dumps(bundle).replace('"team-a"', '"team-b"'))
    forged = http.post("/sessions/restore", json=rewritten, headers=owner_b)
    assert forged.status_code == 422, forged.text
    listed = _ok(http.get("/sessions", headers=owner_b, params={"limit": 500}))["items"]
    assert sid not in {s["id"] for s in listed}
    # team-a restores its own.
    back = _ok(http.post("/sessions/restore", json=bundle, headers=author.headers))
    assert back["id"] == sid and back["tenant"] == "team-a"


def test_a_cached_result_is_never_served_to_another_tenant(world: World) -> None:
    http = world.http
    body = {"agent": "echo", "inputs": {"shared": "input", "n": 42}, "allow_cached": True}

    def run(home_session: str, headers: dict[str, str]) -> dict[str, Any]:
        ran = _ok(http.post(f"/sessions/{home_session}/execute", json=body, headers=headers))
        assert ran["state"] == "succeeded", ran
        result: dict[str, Any] = ran
        return result

    author_a = world.callers["author"].headers
    first = run(world.home("author").session(), author_a)
    again = run(world.home("author").session(), author_a)
    assert not first["cache_hit"] and again["cache_hit"], "the cache serves team-a itself"
    theirs = run(world.theirs.session(), world.theirs.owner.headers)
    assert not theirs["cache_hit"] and theirs.get("cached_from") is None
    assert theirs["result"] == first["result"]  # computed again, to the same answer
    results = _ok(
        http.get(f"/sessions/{theirs['session_id']}/results", headers=world.theirs.owner.headers)
    )["items"]
    assert [r["id"] for r in results] == [theirs["id"]]
