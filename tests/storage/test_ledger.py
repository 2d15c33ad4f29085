"""Ledger entries as Merkle leaves: honest entries verify, any edit of a field, the
payload or the leaf hash is named by index, and erasing an erasable payload keeps the
leaf; the tree over them (:class:`LedgerHead`) is RFC 6962's."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from limit_graph.core import ledger_leaf, merkle
from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.ledger import (
    EntryDraft,
    LedgerHead,
    build_entry,
    decode_hash,
    encode_hash,
    entry_leaf_hash,
    leaf_bytes,
    make_entry,
    verify_entries,
    verify_entry,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SESSION = uuid.UUID(int=42)


def draft(n: int, **changes: Any) -> EntryDraft:
    fields: dict[str, Any] = {
        "actor": "alice",
        "action": "execution.saved",
        "resource_type": "execution",
        "resource_id": f"exec-{n}",
        "session_id": SESSION,
        "payload": {"n": n, "state": "succeeded", "result": [0.5, None]},
    }
    return EntryDraft(**{**fields, **changes})


def build(drafts: list[EntryDraft]) -> list[ProvenanceEntry]:
    return [
        make_entry(n, each, tenant="acme", timestamp=T0 + timedelta(seconds=n))
        for n, each in enumerate(drafts)
    ]


def tampered(entry: ProvenanceEntry, *, rehash: bool = False, **changes: Any) -> ProvenanceEntry:
    """``entry`` with ``changes``; ``rehash`` recomputes its leaf hash as a forger would."""
    edited = ProvenanceEntry.model_validate({**entry.document(), **changes})
    if rehash:
        edited = edited.model_copy(update={"leaf_hash": encode_hash(entry_leaf_hash(edited))})
    return edited


def with_entry(entries: list[ProvenanceEntry], i: int, entry: ProvenanceEntry) -> list[Any]:
    return [*entries[:i], entry, *entries[i + 1 :]]


@pytest.fixture
def entries() -> list[ProvenanceEntry]:
    return build([draft(n) for n in range(5)])


def test_honest_entries_verify(entries: list[ProvenanceEntry]) -> None:
    assert [e.index for e in entries] == [0, 1, 2, 3, 4]
    assert {e.tenant for e in entries} == {"acme"}
    assert verify_entries(entries) is None
    assert verify_entries([]) is None
    assert verify_entries(entries[2:]) is None
    assert verify_entries(entries[::2], contiguous=False) is None


def test_the_leaf_is_the_rfc_6962_hash_of_the_fields_canonical_json(
    entries: list[ProvenanceEntry],
) -> None:
    """What docs/provenance.md promises a verifier, recomputed from the exported JSON
    with an independent RFC 8785 implementation."""
    for entry in entries:
        exported = json.loads(entry.model_dump_json())
        payload = exported.pop("payload")
        exported.pop("payload_salt")
        leaf = base64.b64decode(exported.pop("leaf_hash"))
        assert rfc8785.dumps(exported) == leaf_bytes(entry)
        assert leaf == hashlib.sha256(b"\x00" + rfc8785.dumps(exported)).digest()
        assert hashlib.sha256(rfc8785.dumps(payload)).hexdigest() == entry.payload_sha256
        assert set(exported) == {
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


@given(st.text(), st.text(), st.text(max_size=8))
def test_the_leaf_text_is_rfc_8785_whatever_the_fields_say(
    actor: str, resource_id: str, tenant: str
) -> None:
    """The writer writes the leaf's text straight from the fields (no float, ASCII
    names); whatever strings they hold, it is what an independent RFC 8785 writes."""
    built = build_entry(3, draft(3, actor=actor, resource_id=resource_id, tenant=tenant))
    document = ledger_leaf.leaf_document(built.entry.document())
    assert built.leaf.encode("utf-8") == rfc8785.dumps(document) == leaf_bytes(built.entry)
    assert built.leaf_hash == hashlib.sha256(b"\x00" + rfc8785.dumps(document)).digest()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"actor": "\ud800"}, "surrogate"),
        ({"actor": b"alice"}, "actor"),
        ({"erasable": 1}, "erasable"),
        ({"resource_id": 7}, "resource_id"),
    ],
)
def test_a_draft_whose_fields_have_no_leaf_is_refused(changes: dict[str, Any], named: str) -> None:
    """Refused rather than converted: an entry whose fields were converted would not
    be the one its leaf hashes."""
    with pytest.raises((InvalidInput, ValidationError, TypeError), match=named):
        build_entry(0, draft(0, **changes))


def test_a_tenant_comes_from_the_draft_the_session_or_the_payload() -> None:
    named = make_entry(0, draft(0, tenant="beta"), tenant="acme")
    from_session = make_entry(0, draft(0), tenant="acme")
    from_payload = make_entry(0, draft(0, session_id=None, payload={"tenant": "gamma"}))
    platform = make_entry(0, draft(0, session_id=None, payload={"tenant": 7}))
    assert [e.tenant for e in (named, from_session, from_payload, platform)] == [
        "beta",
        "acme",
        "gamma",
        None,
    ]


def test_entries_verify_after_a_json_round_trip(entries: list[ProvenanceEntry]) -> None:
    offset = timezone(timedelta(hours=2))
    local = make_entry(5, draft(5), timestamp=datetime.now(offset))
    for entry in [*entries, local]:
        again = ProvenanceEntry.model_validate_json(entry.model_dump_json())
        assert verify_entry(again) is None
        assert again == entry
    assert verify_entries([*entries, local]) is None


def test_a_changed_payload_is_detected(entries: list[ProvenanceEntry]) -> None:
    payload = entries[2].payload
    assert payload is not None
    edited = tampered(entries[2], payload={**payload, "state": "failed"})
    assert verify_entries(with_entry(entries, 2, edited)) == (
        "entry 2: payload does not match payload_sha256"
    )


def test_a_changed_payload_with_its_digest_recomputed_is_detected(
    entries: list[ProvenanceEntry],
) -> None:
    payload = {**(entries[2].payload or {}), "state": "failed"}
    forged = build([draft(0), draft(1), draft(2, payload=payload)])[2]
    edited = tampered(entries[2], payload=payload, payload_sha256=forged.payload_sha256)
    assert verify_entries(with_entry(entries, 2, edited)) == (
        "entry 2: leaf_hash does not match the entry's fields"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("actor", "mallory"), ("tenant", "beta"), ("timestamp", T0), ("action", "x")],
)
def test_a_changed_field_is_detected(
    entries: list[ProvenanceEntry], field: str, value: Any
) -> None:
    edited = tampered(entries[3], **{field: value})
    assert verify_entries(with_entry(entries, 3, edited)) == (
        "entry 3: leaf_hash does not match the entry's fields"
    )


def test_a_rehashed_entry_verifies_alone_but_not_in_the_tree(
    entries: list[ProvenanceEntry],
) -> None:
    """Each leaf stands alone; only the tree (and its signed checkpoints) shows that a
    consistently rewritten entry is not the one committed."""
    edited = tampered(entries[1], rehash=True, actor="mallory")
    assert verify_entry(edited) is None
    honest, forged = LedgerHead(), LedgerHead()
    honest.add(entries)
    forged.add(with_entry(entries, 1, edited))
    assert honest.root() != forged.root()


def test_a_dropped_or_reordered_entry_is_detected(entries: list[ProvenanceEntry]) -> None:
    assert verify_entries([*entries[:2], *entries[3:]]) == ("entry 2: missing (entry 3 follows 1)")
    swapped = [entries[0], entries[2], entries[1], *entries[3:]]
    assert verify_entries(swapped, contiguous=False) == "entry 1: out of order after entry 2"


def test_renumbered_entries_are_detected(entries: list[ProvenanceEntry]) -> None:
    edited = tampered(entries[2], index=7)
    assert verify_entry(edited) == "entry 7: leaf_hash does not match the entry's fields"


def test_an_erasable_payload_is_salted_and_can_be_erased() -> None:
    personal = {"tenant": "acme", "name": "Ada Lovelace"}
    first = make_entry(0, draft(0, payload=personal, erasable=True))
    second = make_entry(0, draft(0, payload=personal, erasable=True))
    assert first.payload_salt and second.payload_salt and first.payload_salt != second.payload_salt
    # The salt keeps a guess of the payload from being tested against the leaf.
    unsalted = hashlib.sha256(rfc8785.dumps(personal)).hexdigest()
    assert unsalted not in (first.payload_sha256, second.payload_sha256)
    assert first.payload_sha256 != second.payload_sha256
    assert verify_entry(first) is None
    erased = first.model_copy(update={"payload": None, "payload_salt": None})
    assert verify_entry(erased) is None
    assert erased.leaf_hash == first.leaf_hash
    # Only an erasable entry may lose its payload, and it keeps its salt while it has it.
    plain = make_entry(0, draft(0))
    assert verify_entry(plain.model_copy(update={"payload": None})) == (
        "entry 0: its payload is missing and it was not erasable"
    )
    assert verify_entry(first.model_copy(update={"payload_salt": None})) is not None


def test_the_head_is_the_rfc_6962_tree_of_the_leaves(entries: list[ProvenanceEntry]) -> None:
    head = LedgerHead()
    nodes = head.add(entries)
    leaves = [decode_hash(e.leaf_hash) for e in entries]
    assert head.size == 5 and head.root() == merkle.root_of(leaves)
    assert ((0, 4), leaves[4]) in nodes and ((2, 0), merkle.root_of(leaves[:4])) in nodes
    again = LedgerHead.stored(head.size, head.edge_bytes())
    more = build([draft(n) for n in range(6)])[5]
    again.add([more])
    assert again.root() == merkle.root_of([*leaves, decode_hash(more.leaf_hash)])
    with pytest.raises(ValueError, match="does not follow"):
        again.add([entries[0]])


# --- properties ----------------------------------------------------------------------

texts = st.text(min_size=1, max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
drafts = st.builds(
    EntryDraft,
    actor=texts,
    action=texts,
    resource_type=st.sampled_from(["session", "execution", "system"]),
    resource_id=texts,
    session_id=st.none() | st.uuids(),
    payload=st.dictionaries(texts, json_values, max_size=4),
    tenant=st.none() | texts,
    erasable=st.booleans(),
)
ledgers = st.lists(drafts, min_size=1, max_size=6).map(build)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "index": st.integers(-5, 50),
    "timestamp": st.datetimes(timezones=st.just(UTC)),
    "actor": texts,
    "tenant": st.none() | texts,
    "action": texts,
    "resource_type": texts,
    "resource_id": texts,
    "session_id": st.none() | st.uuids(),
    "payload": st.dictionaries(texts, json_values, max_size=4),
    "payload_sha256": st.text("0123456789abcdef", min_size=64, max_size=64),
    "leaf_hash": st.binary(min_size=32, max_size=32).map(encode_hash),
}


@st.composite
def single_field_tampers(
    draw: st.DrawFn,
) -> tuple[list[ProvenanceEntry], int, ProvenanceEntry]:
    """A ledger, an index in it and that entry with one field changed."""
    entries = draw(ledgers)
    i = draw(st.integers(0, len(entries) - 1))
    field = draw(st.sampled_from(sorted(FIELD_VALUES)))
    original = entries[i].document()
    value = draw(
        FIELD_VALUES[field].filter(
            lambda v: ProvenanceEntry.model_validate({**original, field: v}).document() != original
        )
    )
    return entries, i, tampered(entries[i], **{field: value})


@given(single_field_tampers())
def test_any_single_field_tamper_is_detected_and_named(
    case: tuple[list[ProvenanceEntry], int, ProvenanceEntry],
) -> None:
    entries, i, edited = case
    assert verify_entries(entries) is None
    problem = verify_entry(edited)
    assert problem is not None
    assert problem.startswith(f"entry {edited.index}:")
