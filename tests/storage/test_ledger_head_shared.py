"""The group-commit writer's head: read once it is the only writer it has seen, checked
every time it moves, read again (locked) as soon as another writer moved it.

Two stores on one database are two API processes; each one's writer extends the head
it committed last without reading it once it has found it there
(:data:`~limit_graph.storage.database.ledger_append.TRUSTED_AFTER` batches in a row).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limit_graph.core.canonical import canonical_json
from limit_graph.core.ledger_leaf import entry_leaf_hash, payload_problem
from limit_graph.core.models import utcnow
from limit_graph.orchestration.ledger_verify import verify_ledger
from limit_graph.storage.base import Storage
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.database.ledger_append import TRUSTED_AFTER, LedgerAppend
from limit_graph.storage.database.transaction import DatabaseTransaction
from limit_graph.storage.ledger import EntryDraft, build_entry, leaf_bytes
from limit_graph.storage.schema.rows import ledger_row
from tests.fixtures.tree import assert_tree


def _draft(n: int) -> EntryDraft:
    return EntryDraft(
        actor="alice",
        action="thing.done",
        resource_type="thing",
        resource_id=f"t-{n}",
        session_id=None,
        payload={"n": n},
    )


def _head_of(store: Storage) -> LedgerAppend:
    assert isinstance(store, DatabaseStorage)
    committer = store._committer  # the writer's own state is what is under test
    assert committer is not None
    return committer._statements.ledger


async def _trust(store: Storage, start: int) -> int:
    """Write alone until the store's writer stops reading the head; the next ``n``."""
    n = start
    for n in range(start, start + TRUSTED_AFTER + 2):
        await store.write_entry(_draft(n))
    assert _head_of(store).trusting
    return n + 1


async def test_a_writer_that_stopped_reading_the_head_notices_another_writer(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    n = await _trust(first, 0)
    written = await second.write_entry(_draft(n))  # moves the head under first's writer
    after = await first.write_entry(_draft(n + 1))
    assert after.index == written.index + 1  # no gap, no index written twice
    assert not _head_of(first).trusting  # it reads the head again
    await assert_tree(first)
    assert (await verify_ledger(second)).ok


async def test_writers_of_two_stores_interleaving_keep_one_gapless_tree(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    n = await _trust(first, 0)
    n = await _trust(second, n)
    assert _head_of(first).trusting  # and so wrong: second has moved the head since

    async def burst(store: Storage, base: int) -> list[int]:
        done = await asyncio.gather(*(store.write_entry(_draft(base + i)) for i in range(40)))
        return [e.index for e in done]

    indexes = await asyncio.gather(burst(first, n), burst(second, n + 40), burst(first, n + 80))
    written = sorted(i for run in indexes for i in run)
    assert written == list(range(written[0], written[0] + 120))
    await assert_tree(second)
    assert (await verify_ledger(first)).ok


async def test_an_entry_written_through_a_transaction_is_noticed_by_the_writer(
    two_stores: tuple[Storage, Storage],
) -> None:
    """A store's own transactions move the head without its writer."""
    first, _ = two_stores
    assert isinstance(first, DatabaseStorage)
    n = await _trust(first, 0)
    async with first.transaction() as txn:
        assert isinstance(txn, DatabaseTransaction)
        inside = await txn.append_entry(_draft(n))
    after = await first.write_entry(_draft(n + 1))
    assert after.index == inside.index + 1
    await assert_tree(first)


@pytest.mark.parametrize("erasable", [False, True])
@settings(max_examples=60, deadline=None)
@given(
    payload=st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=12),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
            max_leaves=6,
        ),
        max_size=5,
    ),
    actor=st.text(min_size=1, max_size=10),
    session=st.none() | st.uuids(),
    microsecond=st.integers(0, 999_999),
)
def test_a_built_entry_keeps_exactly_the_texts_its_document_hashes(
    erasable: bool,
    payload: dict[str, object],
    actor: str,
    session: uuid.UUID | None,
    microsecond: int,
) -> None:
    """The row's leaf and payload, made once while hashing, are the entry document's."""
    draft = EntryDraft(
        actor=actor,
        action="thing.done",
        resource_type="thing",
        resource_id="t",
        session_id=session,
        payload=payload,
        erasable=erasable,
    )
    built = build_entry(3, draft, timestamp=utcnow().replace(microsecond=microsecond))
    document = built.entry.document()
    assert built.leaf.encode("utf-8") == leaf_bytes(built.entry)
    assert built.leaf_hash == entry_leaf_hash(document)
    assert built.payload == canonical_json(payload)
    assert payload_problem(document) is None
    row = ledger_row(built)
    assert row == ledger_row(built.entry)  # the same row as the entry alone would make
