"""The hash chain: honest chains verify, and any edit, drop or swap is named by index."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.ledger import (
    GENESIS_HASH,
    EntryDraft,
    LedgerHead,
    chain_entry,
    compute_entry_hash,
    verify_chain,
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


def build_chain(drafts: list[EntryDraft]) -> list[ProvenanceEntry]:
    entries: list[ProvenanceEntry] = []
    for n, each in enumerate(drafts):
        head = LedgerHead.after(entries[-1] if entries else None)
        entries.append(chain_entry(head, each, T0 + timedelta(seconds=n)))
    return entries


def tampered(entry: ProvenanceEntry, *, reseal: bool = False, **changes: Any) -> ProvenanceEntry:
    """``entry`` with ``changes``; ``reseal`` recomputes its entry_hash as a forger would."""
    edited = ProvenanceEntry.model_validate({**entry.document(), **changes})
    if reseal:
        edited = edited.model_copy(update={"entry_hash": compute_entry_hash(edited.document())})
    return edited


def with_entry(chain: list[ProvenanceEntry], i: int, entry: ProvenanceEntry) -> list[Any]:
    return [*chain[:i], entry, *chain[i + 1 :]]


@pytest.fixture
def chain() -> list[ProvenanceEntry]:
    return build_chain([draft(n) for n in range(5)])


def test_an_honest_chain_verifies(chain: list[ProvenanceEntry]) -> None:
    assert [e.index for e in chain] == [0, 1, 2, 3, 4]
    assert chain[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.entry_hash for a, b in zip(chain, chain[1:], strict=False))
    assert verify_chain(chain) is None
    assert verify_chain([]) is None
    assert verify_chain(chain[2:]) is None
    assert verify_chain(chain[::2], contiguous=False) is None


def test_entries_verify_after_a_json_round_trip(chain: list[ProvenanceEntry]) -> None:
    """Stored entries come back from JSON; their hashes must still match."""
    offset = timezone(timedelta(hours=2))
    local = chain_entry(LedgerHead.after(chain[-1]), draft(5), datetime.now(offset))
    for entry in [*chain, local]:
        again = ProvenanceEntry.model_validate_json(entry.model_dump_json())
        assert verify_entry(again) is None
        assert again == entry
    assert verify_chain([*chain, local]) is None


def test_a_changed_payload_is_detected(chain: list[ProvenanceEntry]) -> None:
    edited = tampered(chain[2], payload={**chain[2].payload, "state": "failed"})
    assert verify_chain(with_entry(chain, 2, edited)) == (
        "entry 2: payload does not match payload_sha256"
    )


def test_a_changed_payload_with_its_digest_recomputed_is_detected(
    chain: list[ProvenanceEntry],
) -> None:
    payload = {**chain[2].payload, "state": "failed"}
    forged = build_chain([draft(0), draft(1), draft(2, payload=payload)])[2]
    edited = tampered(chain[2], payload=payload, payload_sha256=forged.payload_sha256)
    assert verify_chain(with_entry(chain, 2, edited)) == (
        "entry 2: entry_hash does not match the entry's fields"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("actor", "mallory"), ("prev_hash", "f" * 64), ("timestamp", T0), ("action", "x")],
)
def test_a_changed_field_is_detected(chain: list[ProvenanceEntry], field: str, value: Any) -> None:
    edited = tampered(chain[3], **{field: value})
    assert verify_chain(with_entry(chain, 3, edited)) == (
        "entry 3: entry_hash does not match the entry's fields"
    )


def test_a_resealed_entry_breaks_the_link_from_the_next(chain: list[ProvenanceEntry]) -> None:
    edited = tampered(chain[1], reseal=True, actor="mallory")
    assert verify_entry(edited) is None
    assert verify_chain(with_entry(chain, 1, edited)) == "entry 2: does not link to entry 1"


def test_a_resealed_prev_hash_is_detected(chain: list[ProvenanceEntry]) -> None:
    edited = tampered(chain[3], reseal=True, prev_hash="f" * 64)
    assert verify_chain(with_entry(chain, 3, edited)) == "entry 3: does not link to entry 2"
    first = tampered(chain[0], reseal=True, prev_hash="f" * 64)
    assert verify_chain(with_entry(chain, 0, first)) == (
        "entry 0: does not start from the genesis hash"
    )


def test_a_dropped_entry_is_detected(chain: list[ProvenanceEntry]) -> None:
    assert verify_chain([*chain[:2], *chain[3:]]) == "entry 3: does not link to entry 1"


def test_reordered_entries_are_detected(chain: list[ProvenanceEntry]) -> None:
    swapped = [chain[0], chain[2], chain[1], *chain[3:]]
    assert verify_chain(swapped) == "entry 2: does not link to entry 0"
    assert verify_chain(swapped, contiguous=False) == "entry 1: out of order after entry 2"


def test_renumbered_entries_are_detected(chain: list[ProvenanceEntry]) -> None:
    edited = tampered(chain[2], index=7)
    assert verify_chain(with_entry(chain, 2, edited)) == (
        "entry 7: entry_hash does not match the entry's fields"
    )


# --- properties ----------------------------------------------------------------------

texts = st.text(min_size=1, max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
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
)
chains = st.lists(drafts, min_size=1, max_size=6).map(build_chain)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "index": st.integers(-5, 50),
    "timestamp": st.datetimes(timezones=st.just(UTC)),
    "actor": texts,
    "action": texts,
    "resource_type": texts,
    "resource_id": texts,
    "session_id": st.none() | st.uuids(),
    "payload": st.dictionaries(texts, json_values, max_size=4),
    "payload_sha256": st.text("0123456789abcdef", min_size=64, max_size=64),
    "prev_hash": st.text("0123456789abcdef", min_size=64, max_size=64),
    "entry_hash": st.text("0123456789abcdef", min_size=64, max_size=64),
}


@st.composite
def single_field_tampers(
    draw: st.DrawFn, *, followed: bool = False
) -> tuple[list[ProvenanceEntry], int, ProvenanceEntry]:
    """A chain, an index in it and that entry with one field changed.

    With ``followed`` the entry has a successor and its ``entry_hash`` is left alone
    (resealing would undo an edit of that field alone).
    """
    entries = draw(chains.filter(lambda c: len(c) > 1) if followed else chains)
    i = draw(st.integers(0, len(entries) - (2 if followed else 1)))
    fields = sorted(set(FIELD_VALUES) - ({"entry_hash"} if followed else set()))
    field = draw(st.sampled_from(fields))
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
    assert verify_chain(entries) is None
    problem = verify_chain(with_entry(entries, i, edited))
    assert problem is not None
    assert problem.startswith(f"entry {edited.index}:")


@given(single_field_tampers(followed=True))
def test_a_resealed_tamper_is_detected_by_the_next_entry(
    case: tuple[list[ProvenanceEntry], int, ProvenanceEntry],
) -> None:
    entries, i, edited = case
    assert verify_chain(with_entry(entries, i, tampered(edited, reseal=True))) is not None
