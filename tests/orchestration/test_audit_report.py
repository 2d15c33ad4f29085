"""The audit report from real exports of a real platform: user text escaped, the
verification done again from the export (an edited entry, a swapped proof, an entry
past the checkpoint, the wrong key: each named), the policies that decided, and the
time buckets of its plots."""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from limit_graph.core import notes
from limit_graph.core.identity import Role
from limit_graph.orchestration.audit_report import build_report, recheck, render_report
from limit_graph.orchestration.audit_report.plots import MAX_BARS, MIN_BARS, bucket
from limit_graph.orchestration.audit_report.reading import group_sessions
from limit_graph.storage.ledger import EntryDraft
from tests.fixtures import api as app
from tests.fixtures.api import Api
from tests.fixtures.identity import make_member

api = app.api  # the API tests' app
EVIL = "<script>alert('x')</script>"


async def _export(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/audit/export", params=params)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def _session(api: Api, name: str = "sweep") -> str:
    created = await api.client.post("/sessions", json={"name": name, "config": {"tags": [EVIL]}})
    assert created.status_code == 201, created.text
    sid = str(created.json()["id"])
    for n in range(2):
        ran = await api.client.post(
            f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {"n": n}}
        )
        assert ran.status_code == 200, ran.text
    return sid


async def test_user_text_is_shown_as_text_and_nothing_is_fetched(api: Api) -> None:
    sid = await _session(api, name=EVIL)
    await api.platform.storage.write_entry(
        EntryDraft(
            actor=EVIL,
            action="note.written",
            resource_type="note",
            resource_id='"><img src=x onerror=alert(1)>',
            session_id=uuid.UUID(sid),
            payload={"text": EVIL},
        )
    )
    html = render_report(await _export(api.client, session_id=sid))
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert (
        f"<h2>Session {EVIL.replace('<', '&lt;').replace('>', '&gt;').replace(chr(39), '&#x27;')}"
        in html
    )
    # No request leaves the page: no source, stylesheet or link but in-page anchors.
    assert not re.search(r"""<[^>]*\s(src|href)=(?!["']?#)""", html)
    assert "default-src 'none'" in html


async def test_a_clean_export_verifies_and_its_policies_are_named(api: Api) -> None:
    sid = await _session(api)
    viewer = await make_member(api.platform, "default", "vic", roles=(Role.VIEWER,))
    transport = api.client._transport  # noqa: SLF001 - the same app
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=viewer.headers
    ) as vic:
        refused = await vic.post(f"/sessions/{sid}/execute", json={"agent": "echo"})
        assert refused.status_code == 403, refused.text  # recorded in the session
    document = await _export(api.client)
    report = build_report(document)
    assert report.check.ok and report.check.server_agrees and not report.check.pinned
    size = document["checkpoint"]["tree_size"]
    assert report.check.sentence.startswith(
        f"verified {len(document['entries']):,} entries against checkpoint size {size:,} "
    )
    assert 'class="verdict ok"' in report.html
    [view] = [v for v in group_sessions(report.check.entries) if str(v.session_id) == sid]
    assert (view.name, view.tags, view.owner, view.state) == ("sweep", [EVIL], "admin", "active")
    decided = {(u.policy_id, u.decided, u.by): u.times for u in view.policy_uses()}
    assert decided[("admins-manage-tenant", "permitted", "check access")] == 2  # two executions
    assert decided[("default-deny", "denied", "session.execute")] == 1
    assert group_sessions(report.check.entries)[-1].session_id is None  # the platform's last
    # Checked against the key kept elsewhere: the same verdict, said to be the reader's.
    pinned = recheck(document, document["checkpoint"]["public_key"])
    assert pinned.ok and pinned.pinned


async def test_what_was_changed_after_the_export_is_named(api: Api) -> None:
    await _session(api)
    document = await _export(api.client)
    entries = document["entries"]
    size = document["checkpoint"]["tree_size"]

    edited = copy.deepcopy(document)
    edited["entries"][3]["actor"] = "mallory"
    check = recheck(edited)
    assert not check.ok and not check.server_agrees
    assert check.sentence == (
        f"not verified: 1 of {len(entries):,} entries do not verify against checkpoint size "
        f"{size:,} signed by key {check.key}; the first: entry {entries[3]['index']}: "
        "leaf_hash does not match the entry's fields"
    )
    html = render_report(edited)
    assert 'class="verdict bad"' in html and "Not verified: 1 of " in html
    assert "(does not agree)" in html

    swapped = copy.deepcopy(document)
    swapped["entries"][1]["proof"], swapped["entries"][2]["proof"] = (
        entries[2]["proof"],
        entries[1]["proof"],
    )
    assert "its inclusion proof does not verify" in recheck(swapped).sentence

    payload = copy.deepcopy(document)
    payload["entries"][-1]["payload"] = {"forged": True}
    assert "payload does not match payload_sha256" in recheck(payload).sentence

    beyond = copy.deepcopy(document)
    beyond["checkpoint"]["tree_size"] = size - 1  # the note still says size
    assert "another tree size or root than the checkpoint" in recheck(beyond).sentence

    other_key = notes.Signer.generate("limit-graph.local/ledger").verifier_key()
    wrong = recheck(document, other_key)
    assert not wrong.ok and wrong.pinned
    assert wrong.sentence.startswith(
        "not verified: the checkpoint's note does not verify: the note is signed by no known key"
    )
    bad_key = recheck(document, "not a key")
    assert not bad_key.ok and "is not a verifier key" in bad_key.sentence

    reordered = copy.deepcopy(document)
    reordered["entries"][0], reordered["entries"][1] = entries[1], entries[0]
    assert "out of order" in recheck(reordered).sentence


def test_an_empty_export_renders_and_says_so() -> None:
    document: dict[str, Any] = {
        "format": "limit-graph.audit-export/1",
        "checkpoint": None,
        "entries": [],
        "verification": {"ok": True, "summary": "nothing to verify: the ledger is empty"},
    }
    report = build_report(document)
    assert report.check.ok and report.check.sentence == "nothing to verify: the ledger is empty"
    assert "The export holds no entries." in report.html
    json.dumps(document)  # untouched, still JSON
    assert document["entries"] == []


def test_plots_bucket_by_the_shortest_step_that_fits() -> None:
    start = datetime(2026, 12, 3, 8, 7, 30, tzinfo=UTC)

    def unit_for(span: timedelta) -> tuple[str, int]:
        found = bucket([(start, "session"), (start + span, "execution")])
        assert sum(sum(c.values()) for c in found.counts) == 2
        return found.unit, len(found.counts)

    assert unit_for(timedelta(0)) == ("minute", MIN_BARS)
    assert unit_for(timedelta(minutes=30)) == ("minute", 31)
    assert unit_for(timedelta(hours=3)) == ("10 minutes", 19)
    assert unit_for(timedelta(hours=30)) == ("hour", 31)
    assert unit_for(timedelta(days=30)) == ("day", 31)
    assert unit_for(timedelta(days=200)) == ("week", 29)
    assert unit_for(timedelta(days=3650)) == ("30 days", MAX_BARS)  # the rest in the last
    found = bucket([(start, "session"), (start + timedelta(minutes=1, seconds=5), "session")])
    assert found.start == datetime(2026, 12, 3, 8, 7, tzinfo=UTC)
    assert [sum(c.values()) for c in found.counts[:3]] == [1, 1, 0]
