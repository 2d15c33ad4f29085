"""``/audit``: the signed checkpoint, inclusion and consistency proofs that verify with
the platform's own kit and with an RFC 6962 verifier written here from the RFC, and the
tenant-scoped trail."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx

from limit_graph.core import merkle, notes
from limit_graph.core.identity import Role
from tests.fixtures.api import Api, assert_problem
from tests.fixtures.identity import make_member


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def _independent_root(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 6962 §2.1.1 read backwards: rebuild the root from PATH(m, D[n]) by the
    recursion's own split (k, the largest power of two below n), not RFC 9162's loop."""

    def fold(m: int, n: int, proof: list[bytes]) -> bytes:
        if n == 1:
            assert not proof, "more proof than the tree has levels"
            return leaf
        k = 1 << ((n - 1).bit_length() - 1)
        *rest, sibling = proof
        if m < k:
            left = fold(m, k, rest)
            return hashlib.sha256(b"\x01" + left + sibling).digest()
        right = fold(m - k, n - k, rest)
        return hashlib.sha256(b"\x01" + sibling + right).digest()

    return fold(index, size, list(path))


async def _run(client: httpx.AsyncClient, count: int) -> str:
    created = await client.post("/sessions", json={})
    assert created.status_code == 201, created.text
    sid = str(created.json()["id"])
    for n in range(count):
        ran = await client.post(
            f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {"n": n}}
        )
        assert ran.status_code == 200, ran.text
    return sid


async def _checkpoint(client: httpx.AsyncClient) -> tuple[dict[str, Any], notes.Checkpoint]:
    answer = await client.get("/audit/checkpoint")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    verifier = notes.Verifier.from_verifier_key(body["public_key"])
    opened = notes.parse_checkpoint(notes.open_note(body["note"], [verifier]).text)
    assert (opened.size, opened.root_hash) == (body["tree_size"], _b(body["root_hash"]))
    assert body["key_id"] == verifier.key_id.hex()
    return body, opened


async def test_proofs_verify_against_the_signed_checkpoint(api: Api) -> None:
    await _run(api.client, 3)
    first, opened = await _checkpoint(api.other)
    assert first["tree_size"] == await api.ledger_size()
    entries = await api.platform.storage.list_entries(limit=10_000)
    leaves = [_b(e.leaf_hash) for e in entries]
    assert opened.root_hash == merkle.root_of(leaves)
    for index in range(opened.size):
        answer = await api.other.get(
            "/audit/proof/inclusion", params={"index": index, "size": opened.size}
        )
        assert answer.status_code == 200, answer.text
        proof = answer.json()
        assert proof["leaf_hash"] == entries[index].leaf_hash
        path = [_b(h) for h in proof["hashes"]]
        merkle.verify_inclusion(index, opened.size, _b(proof["leaf_hash"]), path, opened.root_hash)
        assert _independent_root(index, opened.size, leaves[index], path) == opened.root_hash

    await _run(api.other, 2)
    second, later = await _checkpoint(api.client)
    assert later.size > opened.size
    answer = await api.other.get(
        "/audit/proof/consistency", params={"first": opened.size, "second": later.size}
    )
    assert answer.status_code == 200, answer.text
    hashes = [_b(h) for h in answer.json()["hashes"]]
    merkle.verify_consistency(opened.size, later.size, opened.root_hash, later.root_hash, hashes)
    tampered = [*hashes[:-1], bytes(32)]
    try:
        merkle.verify_consistency(
            opened.size, later.size, opened.root_hash, later.root_hash, tampered
        )
    except merkle.ProofError:
        pass
    else:
        raise AssertionError("a tampered consistency proof verified")
    # The same head asked again is the same checkpoint, not a new signature.
    again, _ = await _checkpoint(api.client)
    assert again == second


async def test_proofs_outside_the_tree_are_422(api: Api) -> None:
    await _run(api.client, 1)
    size = (await _checkpoint(api.client))[0]["tree_size"]
    for params in (
        {"index": size, "size": size},
        {"index": 0, "size": size + 1},
        {"index": -1, "size": size},
        {"index": 0},
    ):
        assert_problem(await api.client.get("/audit/proof/inclusion", params=params), 422)
    for params in ({"first": 0, "second": size}, {"first": size, "second": size + 1}):
        assert_problem(await api.client.get("/audit/proof/consistency", params=params), 422)


async def test_the_session_provenance_carries_proofs_in_its_checkpoint(api: Api) -> None:
    sid = await _run(api.other, 2)
    page = (await api.other.get(f"/sessions/{sid}/provenance")).json()
    checkpoint = page["checkpoint"]
    verifier = notes.Verifier.from_verifier_key(checkpoint["public_key"])
    opened = notes.parse_checkpoint(notes.open_note(checkpoint["note"], [verifier]).text)
    assert [e["action"] for e in page["items"]][0] == "session.created"
    for entry in page["items"]:
        path = [_b(h) for h in entry["proof"]]
        merkle.verify_inclusion(
            entry["index"], opened.size, _b(entry["leaf_hash"]), path, opened.root_hash
        )


async def test_the_trail_is_the_tenants_for_its_auditors_and_admins(api: Api) -> None:
    await _run(api.client, 1)
    theirs = await _run(api.other, 2)
    auditor = await make_member(api.platform, "other-tenant", "audra", roles=(Role.AUDITOR,))
    viewer = await make_member(api.platform, "other-tenant", "vic", roles=(Role.VIEWER,))
    transport = api.client._transport  # noqa: SLF001 - the same app
    async with (
        httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=auditor.headers
        ) as audits,
        httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=viewer.headers
        ) as views,
    ):
        trail = (await audits.get("/audit", params={"limit": 1000})).json()["items"]
        assert trail and {e["tenant"] for e in trail} == {"other-tenant"}
        assert {e["session_id"] for e in trail if e["session_id"]} == {theirs}
        denied = assert_problem(await views.get("/audit"), 403)
        assert denied["policy_ids"] == ["default-deny"]
        assert (await views.get("/audit/checkpoint")).status_code == 200
        # filters and paging
        started = (
            await audits.get("/audit", params={"action": "execution.started", "limit": 1})
        ).json()
        assert [e["action"] for e in started["items"]] == ["execution.started"]
        more = await audits.get(
            "/audit",
            params={"action": "execution.started", "limit": 1, "cursor": started["next_cursor"]},
        )
        assert [e["action"] for e in more.json()["items"]] == ["execution.started"]
        assert more.json()["items"][0]["index"] > started["items"][0]["index"]
    everything = (await api.client.get("/audit", params={"limit": 1000})).json()["items"]
    tenants = {e["tenant"] for e in everything}
    assert {"other-tenant", "default", None} <= tenants
    # the bob (an author) is no auditor
    assert_problem(await api.other.get("/audit"), 403)
