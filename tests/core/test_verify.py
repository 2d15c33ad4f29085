"""The offline verification kit against a real platform over HTTP: what ``/audit``,
provenance pages and archive bundles serve verifies with nothing but the note and the
key; every corruption is refused by the check it breaks; an independent RFC 6962 tree
(pymerkle) agrees with every root and proof; the command and the bare import work."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785

try:
    import pymerkle
except ImportError:  # the dev extra has it; without it the independent check is skipped
    pymerkle = None

from limit_graph.core import notes
from limit_graph.core.verify import (
    ConsistencyFailed,
    InclusionFailed,
    LeafMismatch,
    MalformedInput,
    OriginMismatch,
    PayloadMismatch,
    ProofMismatch,
    SignatureInvalid,
    TreeSizeMismatch,
    VerificationError,
    VerifiedCheckpoint,
    verify_checkpoint,
    verify_consistency_proof,
    verify_entry,
)
from tests.fixtures import api as app
from tests.fixtures.api import Api

api = app.api  # the API tests' app

_LEAF_FIELDS = {
    "index",
    "timestamp",
    "actor",
    "tenant",
    "action",
    "resource_type",
    "resource_id",
    "session_id",
    "payload_sha256",
    "erasable",
}
"""The ten fields docs/provenance.md says a leaf hashes."""


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def _flip(text: str) -> str:
    """A base64 hash with its lowest bit flipped."""
    raw = bytearray(_b(text))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


async def _get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    answer = await client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


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


async def _archived(client: httpx.AsyncClient, count: int) -> tuple[str, list[dict[str, Any]]]:
    """A session run and archived, and the entries of its bundle (payloads included)."""
    sid = await _run(client, count)
    archived = await client.post(f"/sessions/{sid}/archive")
    assert archived.status_code == 200, archived.text
    bundle = await _get(client, f"/sessions/{sid}/archive")
    return sid, bundle["entries"]


async def test_what_the_api_serves_verifies_offline(api: Api) -> None:
    sid, bundled = await _archived(api.client, 3)
    checkpoint = await _get(api.other, "/audit/checkpoint")
    note, key, size = checkpoint["note"], checkpoint["public_key"], checkpoint["tree_size"]
    origin = api.platform.checkpoints.origin
    assert verify_checkpoint(note, key, origin=origin) == VerifiedCheckpoint(
        origin, size, _b(checkpoint["root_hash"])
    )

    page = await _get(api.client, f"/sessions/{sid}/provenance", limit=500)
    assert page["checkpoint"]["note"] == note
    for item in page["items"]:
        # the provenance entry with its own proof, as served and as JSON text
        shown = verify_entry(item, None, note, key, origin=origin)
        assert (shown.index, shown.tree_size, shown.origin) == (item["index"], size, origin)
        assert shown.root == _b(checkpoint["root_hash"])
        assert verify_entry(json.dumps(item), item["proof"], note.encode(), key) == shown
    for entry in bundled:
        # the bundle's entries carry the payloads: those are checked too
        assert entry["payload"] is not None
        proof = await _get(api.client, "/audit/proof/inclusion", index=entry["index"], size=size)
        assert verify_entry(entry, proof, note, key).index == entry["index"]
    trail = await _get(api.client, "/audit", limit=1000)
    for entry in [e for e in trail["items"] if e["index"] < size][:5]:
        proof = await _get(api.client, "/audit/proof/inclusion", index=entry["index"], size=size)
        assert verify_entry(entry, json.dumps(proof), note, key).tree_size == size


async def test_an_erasable_entry_verifies_with_its_salt_and_once_erased(api: Api) -> None:
    """``bob`` (the fixture's member) was made by an erasable ``principal.created`` entry:
    its payload is committed after a salt, and erasing both leaves the leaf."""
    entries = await api.platform.storage.list_entries(limit=1000)
    made = next(e for e in entries if e.erasable and e.payload is not None)
    exported = made.document()
    checkpoint = await _get(api.client, "/audit/checkpoint")
    note, key, size = checkpoint["note"], checkpoint["public_key"], checkpoint["tree_size"]
    proof = await _get(api.client, "/audit/proof/inclusion", index=made.index, size=size)
    assert verify_entry(exported, proof, note, key).index == made.index
    erased = (await api.platform.storage.ledger.erase_payload(made.index)).document()
    assert (erased["payload"], erased["payload_salt"]) == (None, None)
    assert verify_entry(erased, proof, note, key).index == made.index
    for changed, problem in [
        ({"payload_salt": "AAAAAAAAAAAAAAAAAAAAAA"}, "payload does not match payload_sha256"),
        ({"payload_salt": None}, "needs its salt"),
        ({"payload": {**exported["payload"], "name": "someone else"}}, "does not match"),
    ]:
        with pytest.raises(PayloadMismatch, match=problem):
            verify_entry({**exported, **changed}, proof, note, key)


@pytest.fixture
async def served(api: Api) -> dict[str, Any]:
    """One entry with its payload, its proof, the checkpoint note and the key, as served."""
    _, bundled = await _archived(api.client, 2)
    checkpoint = await _get(api.client, "/audit/checkpoint")
    entry = next(e for e in bundled if e["action"] == "execution.succeeded")
    size = checkpoint["tree_size"]
    proof = await _get(api.client, "/audit/proof/inclusion", index=entry["index"], size=size)
    smaller = await _get(api.client, "/audit/proof/inclusion", index=entry["index"], size=size - 1)
    other = await _get(api.client, "/audit/proof/inclusion", index=entry["index"] - 1, size=size)
    return {
        "entry": entry,
        "proof": proof,
        "smaller": smaller,
        "other": other,
        "note": checkpoint["note"],
        "key": checkpoint["public_key"],
        "origin": api.platform.checkpoints.origin,
        "signer": api.platform.checkpoints.key.signer,
    }


def _body_and_signatures(note: str) -> tuple[str, str]:
    split = note.rindex("\n\n")
    return note[: split + 1], note[split + 1 :]


def _resigned(note: str, signer: notes.Signer, **changes: Any) -> str:
    """The note's checkpoint with ``changes`` (origin, size, root_hash), signed again."""
    body, _ = _body_and_signatures(note)
    old = notes.parse_checkpoint(body)
    fields = {"origin": old.origin, "size": old.size, "root_hash": old.root_hash, **changes}
    return notes.sign_note(notes.Checkpoint(**fields).text(), signer)


def _corruptions(served: dict[str, Any]) -> list[tuple[str, dict[str, Any], type, str]]:
    """(what, the arguments changed, the error, a part of its message)."""
    entry, proof, note = served["entry"], served["proof"], served["note"]
    body, signatures = _body_and_signatures(note)
    lines = body.split("\n")
    flipped_root = "\n".join([*lines[:2], _flip(lines[2]), *lines[3:]]) + signatures
    forged = {**entry, "actor": "mallory"}
    forged["leaf_hash"] = base64.b64encode(
        hashlib.sha256(
            b"\x00" + rfc8785.dumps({k: v for k, v in forged.items() if k in _LEAF_FIELDS})
        ).digest()
    ).decode()
    flipped_path = {**proof, "hashes": [_flip(proof["hashes"][0]), *proof["hashes"][1:]]}
    stranger = notes.Signer.generate(served["origin"])
    return [
        ("a changed field", {"entry": {**entry, "actor": "mallory"}}, LeafMismatch, "changed"),
        ("a changed index", {"entry": {**entry, "index": 0}}, LeafMismatch, "entry 0"),
        (
            "a changed payload",
            {"entry": {**entry, "payload": {**entry["payload"], "state": "failed"}}},
            PayloadMismatch,
            "payload does not match payload_sha256",
        ),
        (
            "an erased payload of an entry that is not erasable",
            {"entry": {**entry, "payload": None}},
            PayloadMismatch,
            "not erasable",
        ),
        (
            "a flipped bit in the leaf hash",
            {"entry": {**entry, "leaf_hash": _flip(entry["leaf_hash"])}},
            LeafMismatch,
            "not to its leaf_hash",
        ),
        ("a field changed and rehashed", {"entry": forged}, ProofMismatch, "leaf_hash"),
        (
            "a field changed and rehashed, against the bare path",
            {"entry": forged, "proof": proof["hashes"]},
            InclusionFailed,
            "root mismatch",
        ),
        ("a proof of another size", {"proof": served["smaller"]}, TreeSizeMismatch, "holds"),
        (
            "a proof of another size that claims this one",
            {"proof": {**served["smaller"], "tree_size": proof["tree_size"]}},
            InclusionFailed,
            "is not shown in the checkpoint's tree",
        ),
        ("a proof of another entry", {"proof": served["other"]}, ProofMismatch, "of entry"),
        ("a flipped bit in the path", {"proof": flipped_path}, InclusionFailed, "root mismatch"),
        (
            "a flipped bit in the signed root",
            {"note": flipped_root},
            SignatureInvalid,
            "does not verify",
        ),
        (
            "a note signed by another key",
            {"note": notes.sign_note(body, stranger)},
            SignatureInvalid,
            "not signed by",
        ),
        (
            "a note of another origin",
            {"note": _resigned(note, served["signer"], origin="elsewhere.example/ledger")},
            OriginMismatch,
            "elsewhere.example/ledger",
        ),
        ("a line before the note", {"note": "hello\n" + note}, MalformedInput, "tree size"),
        ("a line after the note", {"note": note + "bye\n"}, MalformedInput, "signature line"),
        ("a blank line after the note", {"note": note + "\n"}, MalformedInput, "no signature"),
        ("no final newline", {"note": note[:-1]}, MalformedInput, "newline"),
        ("CR-LF line ends", {"note": note.replace("\n", "\r\n")}, MalformedInput, "U+000D"),
        (
            "a second note after the note",
            {"note": note + _resigned(note, served["signer"], size=1)},
            MalformedInput,
            "line 4 is empty",
        ),
        ("a key that is not one", {"key": "limit+00+AA=="}, MalformedInput, "public key"),
        (
            "another key",
            {"key": stranger.verifier_key()},
            SignatureInvalid,
            "not signed by",
        ),
        ("an entry that is not JSON", {"entry": "{"}, MalformedInput, "not JSON"),
        (
            "an entry with a member twice",
            {"entry": json.dumps(entry)[:-1] + ', "actor": "mallory"}'},
            MalformedInput,
            "twice",
        ),
        (
            "an entry without its actor",
            {"entry": {k: v for k, v in entry.items() if k != "actor"}},
            MalformedInput,
            "has no actor",
        ),
        (
            "an index that is not a number",
            {"entry": {**entry, "index": "7"}},
            MalformedInput,
            "index",
        ),
        (
            "a hash that is not base64",
            {"proof": {**proof, "hashes": ["not base64!", *proof["hashes"][1:]]}},
            MalformedInput,
            "hashes[0]",
        ),
    ]


async def test_every_corruption_is_refused_by_the_check_it_breaks(served: dict[str, Any]) -> None:
    base = {k: served[k] for k in ("entry", "proof", "note", "key")}
    shown = verify_entry(*base.values(), origin=served["origin"])
    assert shown.index == served["entry"]["index"]
    untouched = copy.deepcopy(base)
    for what, changes, error, words in _corruptions(served):
        arguments = {**base, **changes}
        with pytest.raises(error, match=re.escape(words)) as raised:
            verify_entry(
                arguments["entry"],
                arguments["proof"],
                arguments["note"],
                arguments["key"],
                origin=served["origin"],
            )
        assert isinstance(raised.value, VerificationError), what
    assert base == untouched  # nothing given was changed by checking it
    # Without an expected origin the origin is not checked: the key alone binds the note.
    elsewhere = _resigned(served["note"], served["signer"], origin="elsewhere.example/ledger")
    assert verify_checkpoint(elsewhere, served["key"]).origin == "elsewhere.example/ledger"


async def test_two_checkpoints_are_consistent_and_a_bad_proof_is_refused(api: Api) -> None:
    await _run(api.client, 2)
    old = await _get(api.client, "/audit/checkpoint")
    await _run(api.other, 2)
    new = await _get(api.client, "/audit/checkpoint")
    first, second = old["tree_size"], new["tree_size"]
    assert second > first
    proof = await _get(api.client, "/audit/proof/consistency", first=first, second=second)
    key, origin = new["public_key"], api.platform.checkpoints.origin
    shown = verify_consistency_proof(old["note"], new["note"], proof, key, origin=origin)
    assert (shown.first, shown.second, shown.origin) == (first, second, origin)
    assert (shown.first_root, shown.second_root) == (_b(old["root_hash"]), _b(new["root_hash"]))
    assert verify_consistency_proof(old["note"], new["note"], proof["hashes"], key) == shown

    rest = proof["hashes"][1:]
    shorter = await _get(api.client, "/audit/proof/consistency", first=first, second=second - 1)
    stranger = notes.Signer.generate(origin)
    signer = api.platform.checkpoints.key.signer
    for what, (old_note, new_note, given), error, words in [
        (
            "a flipped bit",
            (old["note"], new["note"], {**proof, "hashes": [_flip(proof["hashes"][0]), *rest]}),
            ConsistencyFailed,
            "root mismatch",
        ),
        ("the notes swapped", (new["note"], old["note"], proof), TreeSizeMismatch, "from"),
        (
            "the notes swapped, the bare hashes",
            (new["note"], old["note"], proof["hashes"]),
            ConsistencyFailed,
            "more than",
        ),
        ("a proof of other sizes", (old["note"], new["note"], shorter), TreeSizeMismatch, "from"),
        (
            "a new note by another key",
            (old["note"], notes.sign_note(_body_and_signatures(new["note"])[0], stranger), proof),
            SignatureInvalid,
            "not signed by",
        ),
        (
            "a new note of another tree",
            (old["note"], _resigned(new["note"], signer, root_hash=bytes(32)), proof),
            ConsistencyFailed,
            f"size {second}",
        ),
        (
            "a new note of another log",
            (old["note"], _resigned(new["note"], signer, origin="elsewhere.example/ledger"), proof),
            OriginMismatch,
            "two logs",
        ),
        ("a proof that is not JSON", (old["note"], new["note"], "[1,"), MalformedInput, "JSON"),
    ]:
        with pytest.raises(error, match=re.escape(words)):
            verify_consistency_proof(old_note, new_note, given, key)
        assert what


# --- the same proofs, checked by an independent RFC 6962 implementation ------------------


def _independent_leaf(entry: dict[str, Any]) -> bytes:
    """The leaf data docs/provenance.md describes, made with rfc8785 (not our canonical
    JSON): the entry's ten leaf fields."""
    return rfc8785.dumps({k: v for k, v in entry.items() if k in _LEAF_FIELDS})


def _mth(data: list[bytes]) -> bytes:
    """MTH(D) (RFC 6962 §2.1), as pymerkle computes it."""
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    tree.append_entries(data)
    root: bytes = tree.get_root()
    return root


def _subproof(m: int, data: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2, its subtree hashes pymerkle's."""
    n = len(data)
    if m == n:
        return [] if complete else [_mth(data)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_subproof(m, data[:k], complete), _mth(data[k:])]
    return [*_subproof(m - k, data[k:], False), _mth(data[:k])]


async def _all_entries(client: httpx.AsyncClient, size: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = await _get(client, "/audit", **params)
        entries += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return [e for e in entries if e["index"] < size]


async def test_an_independent_rfc_6962_tree_agrees_with_every_root_and_proof(api: Api) -> None:
    """pymerkle hashes leaves as SHA-256(0x00 || data) and nodes as SHA-256(0x01 || l ||
    r), splitting at the largest power of two below n: RFC 6962's tree.  Its verifier
    checks our audit paths (with the layout it derives itself); its subtree roots make up
    RFC 6962's consistency proof, which must be ours hash for hash."""
    if pymerkle is None:
        pytest.skip("pymerkle (the dev extra's independent RFC 6962 tree) is not installed")
    await _run(api.client, 2)
    old = await _get(api.client, "/audit/checkpoint")
    await _run(api.other, 3)
    new = await _get(api.client, "/audit/checkpoint")
    first, second = old["tree_size"], new["tree_size"]
    entries = await _all_entries(api.client, second)
    assert [e["index"] for e in entries] == list(range(second))
    data = [_independent_leaf(e) for e in entries]
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    tree.append_entries(data)
    assert [tree.get_leaf(i + 1) for i in range(second)] == [_b(e["leaf_hash"]) for e in entries]
    assert tree.get_root(first) == _b(old["root_hash"])
    assert tree.get_root(second) == _b(new["root_hash"])

    for entry in entries:
        index = entry["index"]
        ours = await _get(api.client, "/audit/proof/inclusion", index=index, size=second)
        theirs = tree.prove_inclusion(index + 1, second)
        checked = pymerkle.InclusionProof(
            "sha256",
            True,
            second,
            index + 1,
            theirs.rule,
            [_b(ours["leaf_hash"]), *(_b(h) for h in ours["hashes"])],
        )
        pymerkle.verify_inclusion(
            tree.get_leaf(index + 1), _b(new["root_hash"]), checked, index=index + 1, size=second
        )
        assert verify_entry(entry, ours, new["note"], new["public_key"]).index == index
        wrong = [*checked.path[:-1], bytes(32)]
        with pytest.raises(pymerkle.InvalidProof):
            pymerkle.verify_inclusion(
                checked.path[0],
                _b(new["root_hash"]),
                pymerkle.InclusionProof("sha256", True, second, index + 1, theirs.rule, wrong),
            )

    for before in sorted({1, first // 2 or 1, first, second - 1}):
        ours = await _get(api.client, "/audit/proof/consistency", first=before, second=second)
        assert [_b(h) for h in ours["hashes"]] == _subproof(before, data, True)
        theirs = tree.prove_consistency(before, second)
        pymerkle.verify_consistency(tree.get_root(before), tree.get_root(second), theirs)
    proof = await _get(api.client, "/audit/proof/consistency", first=first, second=second)
    verify_consistency_proof(old["note"], new["note"], proof, new["public_key"])


# --- the command, and the import on its own ---------------------------------------------


def _command(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "limit_graph.core.verify", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_command_verifies_an_entry_and_says_why_not(
    served: dict[str, Any], tmp_path: Path
) -> None:
    entry, proof, note = tmp_path / "entry.json", tmp_path / "proof.json", tmp_path / "cp.note"
    entry.write_text(json.dumps(served["entry"]))
    proof.write_text(json.dumps(served["proof"]))
    note.write_bytes(served["note"].encode())
    key = tmp_path / "ledger.pub"
    key.write_text(served["key"] + "\n")

    ok = _command(entry, proof, note, "--key", key, "--origin", served["origin"])
    assert ok.returncode == 0, ok.stderr
    index, size = served["entry"]["index"], served["proof"]["tree_size"]
    assert ok.stdout.startswith(f"verified: entry {index} is in the tree of {size} entries")
    as_json = _command(entry, proof, note, "--key", served["key"], "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["index"] == index

    entry.write_text(json.dumps({**served["entry"], "actor": "mallory"}))
    changed = _command(entry, proof, note, "--key", key)
    assert changed.returncode == 1
    assert changed.stderr.startswith("not verified (LeafMismatch): entry ")
    assert changed.stdout == ""
    missing = _command(tmp_path / "nothing.json", proof, note, "--key", key)
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr and "nothing.json" in missing.stderr
    other = notes.Signer.generate(served["origin"]).verifier_key()
    entry.write_text(json.dumps(served["entry"]))
    stranger = _command(entry, proof, note, "--key", other)
    assert (stranger.returncode, "SignatureInvalid" in stranger.stderr) == (1, True)


PLATFORM = ("sqlalchemy", "fastapi", "prefect", "qiskit", "httpx", "pydantic", "starlette")
OUR_LAYERS = ("storage", "governance", "orchestration", "api", "cli", "flows", "blocks")


def test_the_module_imports_on_its_own() -> None:
    code = "import json, sys, limit_graph.core.verify; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(done.stdout)
    assert "limit_graph.core.verify" in loaded
    banned = [*PLATFORM, *(f"limit_graph.{layer}" for layer in OUR_LAYERS)]
    found = [m for m in loaded if any(m == b or m.startswith(b + ".") for b in banned)]
    assert found == []
    ours = sorted(m for m in loaded if m.startswith("limit_graph."))
    assert all(m.split(".")[1] == "core" for m in ours), ours
    assert "limit_graph.core.models" not in ours
