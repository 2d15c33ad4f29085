"""``GET /audit/export``: the caller's trail as JSON or CSV with the signed checkpoint it
verifies against, each entry's proof checked here by hand (RFC 8785 leaf, RFC 6962 path)
as docs/provenance.md tells a verifier to; filters, tenant scoping, bad input, an empty
export, an export that stops at its checkpoint, a changed entry named, and paging over
a larger ledger on real Postgres."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785

from limit_graph.api import create_app
from limit_graph.api.audit_schemas import AuditExportOut
from limit_graph.core import merkle, notes
from limit_graph.core.identity import Role
from limit_graph.core.settings import load_settings
from limit_graph.orchestration.audit_export import CSV_COLUMNS, PAGE, start_export
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.ledger_store import EntryFilter
from tests.fixtures.api import ADMIN_KEY, Api, assert_problem
from tests.fixtures.identity import make_member


def _b(text: str) -> bytes:
    return base64.b64decode(text)


async def _run(client: httpx.AsyncClient, count: int, **body: Any) -> str:
    created = await client.post("/sessions", json=body)
    assert created.status_code == 201, created.text
    sid = str(created.json()["id"])
    for n in range(count):
        ran = await client.post(
            f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {"n": n}}
        )
        assert ran.status_code == 200, ran.text
    return sid


@asynccontextmanager
async def _as(api: Api, headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    transport = api.client._transport  # noqa: SLF001 - the same app
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as client:
        yield client


def _opened(checkpoint: dict[str, Any]) -> notes.Checkpoint:
    verifier = notes.Verifier.from_verifier_key(checkpoint["public_key"])
    opened = notes.parse_checkpoint(notes.open_note(checkpoint["note"], [verifier]).text)
    assert (opened.size, opened.root_hash) == (checkpoint["tree_size"], _b(checkpoint["root_hash"]))
    return opened


def _check_by_hand(entry: dict[str, Any], proof: list[bytes], opened: notes.Checkpoint) -> None:
    """docs/provenance.md's recipe: the leaf is the RFC 8785 JSON of the entry without
    its payload, salt, leaf hash (and, here, proof); the payload hashes after its salt."""
    fields = dict(entry)
    payload, salt = fields.pop("payload"), fields.pop("payload_salt")
    leaf = _b(fields.pop("leaf_hash"))
    fields.pop("proof", None)
    assert hashlib.sha256(b"\x00" + rfc8785.dumps(fields)).digest() == leaf
    raw = b"" if salt is None else base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4))
    assert hashlib.sha256(raw + rfc8785.dumps(payload)).hexdigest() == entry["payload_sha256"]
    merkle.verify_inclusion(entry["index"], opened.size, leaf, proof, opened.root_hash)


async def _behind_the_triggers(database: Path, *statements: str) -> int:
    """Run SQL on the app's SQLite file as its owner can, the triggers dropped first; the
    rows the last statement changed.  In a thread: the app's event loop must go on (a
    write of its own may hold the file's lock until the loop lets it commit)."""

    def run() -> int:
        with sqlite3.connect(database, timeout=60) as db:
            return int(db.executescript(";".join(statements[:-1])).execute(statements[-1]).rowcount)

    return await asyncio.to_thread(run)


def _json(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="audit-') and disposition.endswith('.json"')
    document: dict[str, Any] = response.json()
    AuditExportOut.model_validate(document)  # what the OpenAPI document promises
    assert document["format"] == "limit-graph.audit-export/1"
    return document


async def _csv_rows(client: httpx.AsyncClient, **params: str) -> list[dict[str, str]]:
    response = await client.get("/audit/export", params={"format": "csv", **params})
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


def _verified(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entry checked by hand against the export's checkpoint; the entries."""
    opened = _opened(document["checkpoint"])
    entries: list[dict[str, Any]] = document["entries"]
    indexes = [e["index"] for e in entries]
    assert indexes == sorted(set(indexes)) and all(i < opened.size for i in indexes)
    for entry in entries:
        _check_by_hand(entry, [_b(h) for h in entry["proof"]], opened)
    verification = document["verification"]
    assert verification["ok"] is True, verification
    assert (verification["entries"], verification["verified"]) == (len(entries), len(entries))
    checkpoint = document["checkpoint"]
    key = f"{checkpoint['public_key'].split('+')[0]}+{checkpoint['key_id']}"
    assert verification["summary"] == (
        f"verified {len(entries):,} entries against checkpoint size {opened.size:,} "
        f"signed by key {key}"
    )
    return entries


async def test_json_export_is_the_tenants_trail_with_proofs_in_its_checkpoint(api: Api) -> None:
    await _run(api.client, 1)
    theirs = await _run(api.other, 2)
    auditor = await make_member(api.platform, "other-tenant", "audra", roles=(Role.AUDITOR,))
    viewer = await make_member(api.platform, "other-tenant", "vic", roles=(Role.VIEWER,))
    async with _as(api, auditor.headers) as audits, _as(api, viewer.headers) as views:
        document = _json(await audits.get("/audit/export"))
        denied = assert_problem(await views.get("/audit/export"), 403)
        assert denied["policy_ids"] == ["default-deny"]
    assert_problem(await api.other.get("/audit/export"), 403)  # bob is an author, no auditor

    entries = _verified(document)
    assert document["filters"] == {
        "tenant": "other-tenant",
        **dict.fromkeys(("actor", "action", "session_id", "since", "until")),
    }
    size = document["checkpoint"]["tree_size"]
    stored = [
        e
        for e in await api.platform.storage.list_entries(limit=100_000)
        if e.tenant == "other-tenant" and e.index < size
    ]
    assert [e["index"] for e in entries] == [e.index for e in stored]
    assert {e["session_id"] for e in entries if e["session_id"]} == {theirs}
    assert [e["payload"] for e in entries] == [e.payload for e in stored]
    # The platform admin's export is everyone's: the platform's own entries too.
    everything = _verified(_json(await api.client.get("/audit/export")))
    assert {"other-tenant", "default", None} <= {e["tenant"] for e in everything}
    assert len(everything) > len(entries)


async def test_csv_export_carries_its_checkpoint_in_headers_and_a_row_per_entry(api: Api) -> None:
    sid = await _run(api.other, 2, name='=HYPERLINK("x")')
    await api.platform.storage.write_entry(  # an actor and a resource named like formulas
        EntryDraft(
            actor="=1+2",
            action="note.written",
            resource_type="note",
            resource_id="@SUM(A1)",
            session_id=uuid.UUID(sid),
            payload={"text": "-3"},
        )
    )
    document = _json(await api.client.get("/audit/export"))
    response = await api.client.get("/audit/export", params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].endswith('.csv"')
    note = base64.b64decode(response.headers["x-checkpoint-note"]).decode("utf-8")
    checkpoint = {
        "tree_size": int(response.headers["x-checkpoint-size"]),
        "root_hash": response.headers["x-checkpoint-root"],
        "note": note,
        "public_key": response.headers["x-checkpoint-public-key"],
    }
    assert checkpoint == {k: document["checkpoint"][k] for k in checkpoint}
    assert response.headers["x-checkpoint-key-id"] == document["checkpoint"]["key_id"]
    opened = _opened(checkpoint)

    assert response.text.startswith(",".join(CSV_COLUMNS) + "\r\n")
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert [int(r["index"]) for r in rows] == [e["index"] for e in document["entries"]]
    for row, entry in zip(rows, document["entries"], strict=True):
        assert (row["verified"], row["problem"]) == ("true", "")
        assert row["leaf_hash"] == entry["leaf_hash"]
        proof = row["proof"].split(" ") if row["proof"] else []
        assert proof == entry["proof"]
        payload = json.loads(row["payload"])
        assert payload == entry["payload"]
        # the cell is the canonical JSON the ledger hashed
        assert row["payload"] == rfc8785.dumps(payload).decode("utf-8")
        _check_by_hand(
            {**entry, "payload": payload, "payload_salt": row["payload_salt"] or None},
            [_b(h) for h in proof],
            opened,
        )
        assert (row["tenant"] or None) == entry["tenant"]
        assert (row["session_id"] or None) == entry["session_id"]
        assert row["erasable"] == ("true" if entry["erasable"] else "false")
    # Text that a spreadsheet would run as a formula is written after a ', in the columns
    # people fill; the payload (JSON, starting with "{") keeps it verbatim.
    [noted] = [r for r in rows if r["action"] == "note.written"]
    assert (noted["actor"], noted["resource_id"]) == ("'=1+2", "'@SUM(A1)")
    assert json.loads(noted["payload"]) == {"text": "-3"}
    created = next(r for r in rows if r["action"] == "session.created" and r["resource_id"] == sid)
    assert json.loads(created["payload"])["name"] == '=HYPERLINK("x")'


async def test_filters_narrow_the_export_as_they_narrow_the_trail(api: Api) -> None:
    mine = await _run(api.client, 1)
    theirs = await _run(api.other, 3)
    started = _verified(
        _json(await api.client.get("/audit/export", params={"action": "execution.started"}))
    )
    assert [e["action"] for e in started] == ["execution.started"] * 4
    session = _verified(_json(await api.client.get("/audit/export", params={"session_id": theirs})))
    assert {e["session_id"] for e in session} == {theirs} and len(session) == 1 + 3 * 2
    by_bob = _verified(_json(await api.client.get("/audit/export", params={"actor": "bob"})))
    assert by_bob and {e["actor"] for e in by_bob} == {"bob"}
    assert mine not in {e["session_id"] for e in by_bob}
    # since is inclusive, until exclusive: the two halves make the whole
    moment = session[3]["timestamp"]
    before = await api.client.get("/audit/export", params={"session_id": theirs, "until": moment})
    after = await api.client.get("/audit/export", params={"session_id": theirs, "since": moment})
    early, late = _verified(_json(before)), _verified(_json(after))
    assert all(e["timestamp"] < moment for e in early) and early
    assert all(e["timestamp"] >= moment for e in late) and late
    assert sorted(e["index"] for e in early + late) == [e["index"] for e in session]
    # the same in CSV
    rows = await _csv_rows(api.client, session_id=theirs)
    assert [int(r["index"]) for r in rows] == [e["index"] for e in session]


async def test_bad_input_is_a_422_problem_and_writes_nothing(api: Api) -> None:
    await _run(api.client, 1)
    before = await api.ledger_size()
    checkpoints = await api.platform.storage.ledger.checkpoints()
    for params, field in (
        ({"format": "xml"}, "format"),
        ({"format": "html"}, "format"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-12-03"}, "until"),
        ({"session_id": "not-a-uuid"}, "session_id"),
    ):
        body = assert_problem(await api.client.get("/audit/export", params=params), 422)
        assert body["errors"][0]["loc"] == ["query", field], body  # type: ignore[index]
    assert await api.ledger_size() == before
    assert await api.platform.storage.ledger.checkpoints() == checkpoints


async def test_an_export_matching_nothing_is_empty_and_verifies(api: Api) -> None:
    await _run(api.client, 1)
    document = _json(await api.client.get("/audit/export", params={"actor": "nobody"}))
    assert document["entries"] == []
    assert document["checkpoint"]["tree_size"] == await api.ledger_size()
    assert document["verification"]["ok"] is True
    assert document["verification"]["summary"].startswith("verified 0 entries against ")
    response = await api.client.get("/audit/export", params={"actor": "nobody", "format": "csv"})
    assert response.text == ",".join(CSV_COLUMNS) + "\r\n"


async def test_the_export_holds_only_what_its_checkpoint_covers(api: Api) -> None:
    """The checkpoint is taken first; entries written while the export is read are not
    in it, so that every exported proof verifies against the checkpoint it carries."""
    await _run(api.client, 1)
    export = await start_export(api.platform.audit, api.platform.admin, EntryFilter())
    assert export.checkpoint is not None
    size = export.checkpoint.tree_size
    later = await _run(api.client, 2)
    assert await api.ledger_size() > size
    document = json.loads(b"".join([c async for c in export.json_chunks()]))
    entries = _verified(document)
    assert [e["index"] for e in entries] == list(range(size))
    assert later not in {e["session_id"] for e in entries}


async def test_a_changed_entry_is_named_in_the_export(api: Api, tmp_path: Path) -> None:
    sid = await _run(api.client, 2)
    [target] = [
        e
        for e in await api.platform.storage.list_entries(session_id=uuid.UUID(sid))
        if e.action == "execution.succeeded"
    ][:1]
    changed = await _behind_the_triggers(
        tmp_path / "api.db",
        "DROP TRIGGER limit_ledger_no_update",
        f"UPDATE limit_ledger SET payload = replace(payload, '\"n\":0', '\"n\":7') "
        f"WHERE idx = {target.index}",
    )
    assert changed == 1
    document = _json(await api.client.get("/audit/export"))
    verification = document["verification"]
    assert (verification["ok"], verification["failed"]) == (False, 1)
    assert verification["failures"] == [
        {
            "index": target.index,
            "problem": f"entry {target.index}: payload does not match payload_sha256",
        }
    ]
    assert verification["summary"].startswith("not verified: 1 of ")
    bad = [r for r in await _csv_rows(api.client) if r["verified"] != "true"]
    assert [(int(r["index"]), r["problem"]) for r in bad] == [
        (target.index, f"entry {target.index}: payload does not match payload_sha256")
    ]


@pytest.mark.postgres
async def test_paging_over_a_larger_ledger_on_postgres(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """More entries than three pages, on real Postgres: one nodes read a page, every
    proof verifying, the tenant's entries and only them."""
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=request.getfixturevalue("postgres_url"),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        platform = app.state.platform
        bob = await make_member(platform, "other-tenant", "bob")
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(
                transport=transport, base_url="http://test", headers={"X-API-Key": ADMIN_KEY}
            ) as admin,
            httpx.AsyncClient(
                transport=transport, base_url="http://test", headers=bob.headers
            ) as other,
        ):
            await _run(admin, 1)
            theirs = uuid.UUID(await _run(other, 1))

            async def note(n: int) -> None:
                await platform.storage.write_entry(
                    EntryDraft(
                        actor="bob",
                        action="note.written",
                        resource_type="note",
                        resource_id=f"note-{n}",
                        session_id=theirs,
                        payload={"n": n, "text": "ünïcode <b>"},
                    )
                )

            await asyncio.gather(*(note(n) for n in range(3 * PAGE + 7)))
            await _run(admin, 1)
            document = _json(await admin.get("/audit/export", params={"session_id": str(theirs)}))
            everything = _json(await admin.get("/audit/export"))
    entries = _verified(document)
    assert sum(e["action"] == "note.written" for e in entries) == 3 * PAGE + 7
    assert {e["tenant"] for e in entries} == {"other-tenant"}
    assert len(_verified(everything)) == everything["checkpoint"]["tree_size"]


async def test_the_route_is_in_the_openapi_document(api: Api) -> None:
    """No longer a reserved 501: documented, with both media types and the headers."""
    operation = (await api.client.get("/openapi.json")).json()["paths"]["/audit/export"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"format", "actor", "action", "session_id", "since", "until"} <= names
    ok = operation["responses"]["200"]
    assert {"application/json", "text/csv"} <= set(ok["content"])
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AuditExportOut"
    }
    assert "X-Checkpoint-Note" in ok["headers"]


async def test_a_deleted_node_is_named_for_the_entries_whose_proofs_need_it(
    api: Api, tmp_path: Path
) -> None:
    await _run(api.client, 3)
    deleted = await _behind_the_triggers(
        tmp_path / "api.db",
        "DROP TRIGGER limit_ledger_nodes_no_delete",
        "DELETE FROM limit_ledger_nodes WHERE level = 1 AND idx = 0",
    )
    assert deleted == 1
    document = _json(await api.client.get("/audit/export"))
    size = document["checkpoint"]["tree_size"]
    needing = [i for i in range(size) if (1, 0) in merkle.inclusion_node_ids(i, size)]
    assert needing and len(needing) < size
    verification = document["verification"]
    assert verification["failed"] == len(needing)
    assert [f["index"] for f in verification["failures"]] == needing
    assert all(
        f["problem"].startswith(f"entry {f['index']}: no proof: the ledger holds no node (1, 0)")
        for f in verification["failures"]
    )
    proven = [e for e in document["entries"] if e["index"] not in needing]
    opened = _opened(document["checkpoint"])
    for entry in proven:  # the others still prove
        _check_by_hand(entry, [_b(h) for h in entry["proof"]], opened)
