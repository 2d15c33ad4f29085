"""The lineage store contract: one suite, run against every backend's ``storage.lineage``.

Each test gets a started, empty store of one kind (memory, file, SQLite, Postgres; the
fixtures are in ``tests/fixtures/backends.py``).  A batch lands with its cursor or not
at all; applying it again changes nothing; cursors only move forward; content is found
by hash across sessions, a tenant at a time; a reopened store has what was written; the
file store's log survives a torn append and refuses a damaged one.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from limit_graph.core.errors import InvalidInput
from limit_graph.storage.base import Storage
from limit_graph.storage.file import FileStorage
from limit_graph.storage.file_lineage import LOG_NAME
from limit_graph.storage.lineage import (
    GRAPH_CURSOR,
    OPENLINEAGE_CURSOR,
    LineageBatch,
    LineageEdge,
    LineageNode,
    NodeKind,
    check_hash,
    execution_node_id,
)
from tests.fixtures.backends import Backend

ACME, OTHER = "acme", "other"
S1, S2, S3 = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


CIRCUIT = digest("OPENQASM 3.0; qubit q; h q;")


def content(
    session: uuid.UUID, kind: NodeKind, hashed: str, *, tenant: str = ACME, entry: int = 0
) -> LineageNode:
    return LineageNode(session, f"sha256:{hashed}", kind, hashed, tenant, kind, {}, entry=entry)


def execution(
    session: uuid.UUID, number: int, *, tenant: str = ACME, entry: int = 0, state: str = "ok"
) -> LineageNode:
    node_id = execution_node_id(uuid.UUID(int=100 + number))
    attributes = {"agent": "quantum.sample", "state": state}
    return LineageNode(session, node_id, "execution", None, tenant, "sample", attributes, entry)


def edge(
    session: uuid.UUID, source: str, target: str, kind: str, *, tenant: str = ACME
) -> LineageEdge:
    return LineageEdge(session, source, target, kind, tenant, {"names": ["pubs[0].circuit"]})  # type: ignore[arg-type]


def run_of(session: uuid.UUID, number: int, *, tenant: str = ACME, entry: int = 0) -> LineageBatch:
    """An execution that used the circuit and produced a result of its own."""
    circuit = content(session, "circuit", CIRCUIT, tenant=tenant, entry=entry)
    ran = execution(session, number, tenant=tenant, entry=entry)
    result = content(session, "output", digest(f"counts {number}"), tenant=tenant, entry=entry)
    edges = [
        edge(session, circuit.id, ran.id, "used", tenant=tenant),
        edge(session, ran.id, result.id, "produced", tenant=tenant),
    ]
    return LineageBatch([circuit, ran, result], edges, entry)


async def test_a_batch_lands_with_its_cursor_and_reads_back_as_the_session_graph(
    storage: Storage,
) -> None:
    lineage = storage.lineage
    assert await lineage.cursor() == -1
    batch = run_of(S1, 1, entry=4)
    await lineage.apply(batch)

    assert await lineage.cursor() == 4
    graph = await lineage.session_graph(S1)
    assert graph.nodes == sorted(batch.nodes, key=lambda n: n.id)
    assert graph.edges == sorted(batch.edges, key=lambda e: (e.source, e.target, e.kind))
    assert graph.nodes[0].attributes == {"agent": "quantum.sample", "state": "ok"}
    assert (await lineage.session_graph(S2)).nodes == []


async def test_applying_a_batch_again_changes_nothing_and_cursors_only_move_forward(
    storage: Storage,
) -> None:
    lineage = storage.lineage
    batch = run_of(S1, 1, entry=9)
    await lineage.apply(batch)
    before = await lineage.session_graph(S1)
    await lineage.apply(batch)
    await lineage.apply(LineageBatch([], [], 3))  # a slower follower's older batch

    assert await lineage.session_graph(S1) == before
    assert len(before.nodes) == 3 and len(before.edges) == 2
    assert await lineage.cursor() == 9
    assert await lineage.cursor(OPENLINEAGE_CURSOR) == -1
    await lineage.apply(LineageBatch([], [], 5, OPENLINEAGE_CURSOR))
    assert (await lineage.cursor(GRAPH_CURSOR), await lineage.cursor(OPENLINEAGE_CURSOR)) == (9, 5)


async def test_content_given_then_produced_becomes_an_output_and_executions_follow_their_last_entry(
    storage: Storage,
) -> None:
    lineage = storage.lineage
    value = digest("[1, 2, 3]")
    given = content(S1, "input", value, entry=1)
    first = execution(S1, 1, entry=1, state="running")
    await lineage.apply(LineageBatch([given, first], [], 1))
    produced = content(S1, "output", value, entry=2)
    later = execution(S1, 1, entry=5, state="cancelled")
    stale = execution(S1, 1, entry=3, state="failed")
    circuit = content(S1, "circuit", CIRCUIT, entry=2)
    again = content(S1, "input", CIRCUIT, entry=6)
    # One batch may hold a key twice (the database folds them first).
    await lineage.apply(LineageBatch([produced, later, stale, circuit, again, given], [], 6))

    nodes = {n.id: n for n in (await lineage.session_graph(S1)).nodes}
    assert nodes[given.id].kind == "output" and nodes[given.id].entry == 2
    assert nodes[first.id].attributes["state"] == "cancelled"
    assert nodes[circuit.id].kind == "circuit"


async def test_uses_of_a_hash_span_sessions_of_one_tenant_and_page_by_key(
    storage: Storage,
) -> None:
    lineage = storage.lineage
    await lineage.apply(run_of(S1, 1, entry=1))
    await lineage.apply(run_of(S1, 2, entry=2))
    await lineage.apply(run_of(S2, 3, entry=3))
    await lineage.apply(run_of(S3, 4, tenant=OTHER, entry=4))

    uses = await lineage.uses_of(CIRCUIT, tenant=ACME)
    assert [(u.content.session_id, u.edge.target, u.edge.kind) for u in uses] == [
        (S1, execution_node_id(uuid.UUID(int=101)), "used"),
        (S1, execution_node_id(uuid.UUID(int=102)), "used"),
        (S2, execution_node_id(uuid.UUID(int=103)), "used"),
    ]
    assert all(u.content.kind == "circuit" and u.content.hash == CIRCUIT for u in uses)
    assert uses[0].execution is not None and uses[0].execution.attributes["state"] == "ok"
    assert uses[0].edge.attributes == {"names": ["pubs[0].circuit"]}
    assert [u.content.tenant for u in await lineage.uses_of(CIRCUIT, tenant=OTHER)] == [OTHER]
    assert len(await lineage.uses_of(CIRCUIT, tenant=None)) == 4
    assert await lineage.uses_of(CIRCUIT, tenant="nobody") == []

    first = await lineage.uses_of(CIRCUIT, tenant=ACME, limit=2)
    rest = await lineage.uses_of(CIRCUIT, tenant=ACME, limit=2, after=first[-1].key)
    assert first + rest == uses

    produced = await lineage.uses_of(digest("counts 3"), tenant=ACME)
    assert [(u.edge.kind, u.edge.source) for u in produced] == [
        ("produced", execution_node_id(uuid.UUID(int=103)))
    ]


async def test_a_reopened_store_has_the_graph_and_cursors(durable_backend: Backend) -> None:
    store = durable_backend.open()
    await store.start()
    try:
        await store.lineage.apply(run_of(S1, 1, entry=7))
        await store.lineage.apply(LineageBatch([], [], 6, OPENLINEAGE_CURSOR))
        written = await store.lineage.session_graph(S1)
    finally:
        await store.close()
    reopened = durable_backend.open()
    await reopened.start()
    try:
        assert await reopened.lineage.session_graph(S1) == written
        assert await reopened.lineage.cursor() == 7
        assert await reopened.lineage.cursor(OPENLINEAGE_CURSOR) == 6
    finally:
        await reopened.close()


async def _file_store(root: Path) -> FileStorage:
    store = FileStorage(root)
    await store.start()
    return store


async def test_the_file_log_drops_a_torn_last_batch_and_appends_after_it(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = await _file_store(root)
    await store.lineage.apply(run_of(S1, 1, entry=1))
    await store.close()
    log = root / "lineage" / LOG_NAME
    whole = log.read_bytes()
    log.write_bytes(whole + whole[: len(whole) // 2])  # a second append, cut short

    store = await _file_store(root)
    try:
        assert await store.lineage.cursor() == 1
        assert log.read_bytes() == whole
        await store.lineage.apply(run_of(S1, 2, entry=2))
        assert len((await store.lineage.session_graph(S1)).nodes) == 5
    finally:
        await store.close()
    store = await _file_store(root)
    try:
        assert await store.lineage.cursor() == 2
    finally:
        await store.close()


async def test_the_file_log_refuses_a_damaged_batch_before_others(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = await _file_store(root)
    await store.lineage.apply(run_of(S1, 1, entry=1))
    await store.lineage.apply(run_of(S1, 2, entry=2))
    await store.close()
    log = root / "lineage" / LOG_NAME
    damaged = bytearray(log.read_bytes())
    damaged[80] ^= 0x01
    log.write_bytes(bytes(damaged))

    store = await _file_store(root)
    try:
        with pytest.raises(OSError, match="damaged at byte 0"):
            await store.lineage.cursor()
        assert log.read_bytes() == bytes(damaged)  # nothing was cut away
    finally:
        await store.close()


async def test_a_long_file_log_is_compacted_to_the_state_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("limit_graph.storage.file_lineage.COMPACT_LINES", 3)
    root = tmp_path / "store"
    store = await _file_store(root)
    for number in range(1, 6):
        await store.lineage.apply(run_of(S1, number, entry=number))
    await store.lineage.apply(LineageBatch([], [], 4, OPENLINEAGE_CURSOR))
    written = await store.lineage.session_graph(S1)
    await store.close()
    log = root / "lineage" / LOG_NAME
    assert len(log.read_bytes().splitlines()) == 6

    for _ in range(2):  # compacted on the first start; the second reads the compacted log
        store = await _file_store(root)
        try:
            assert await store.lineage.session_graph(S1) == written
            assert await store.lineage.cursor() == 5
            assert await store.lineage.cursor(OPENLINEAGE_CURSOR) == 4
        finally:
            await store.close()
        assert len(log.read_bytes().splitlines()) == 1


def test_a_content_hash_is_64_hex_digits_or_refused() -> None:
    assert check_hash(" " + "AB" * 32 + "\n") == "ab" * 32
    for bad in ("", "ab" * 31, "zz" * 32, "ab" * 33):
        with pytest.raises(InvalidInput, match="64 hexadecimal digits"):
            check_hash(bad)
