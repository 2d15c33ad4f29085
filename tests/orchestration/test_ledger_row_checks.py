"""The ledger's rows checked in a process of their own: the same answers as here, in
the order the pages were sent, and pages still checked when that process dies."""

from __future__ import annotations

import pytest

from limit_graph.core.ledger_leaf import text_digest
from limit_graph.core.ledger_rows import first_problem
from limit_graph.core.merkle import leaf_hash
from limit_graph.orchestration.ledger_verify import _RowChecks
from limit_graph.storage.ledger_store import LeafRow


def _row(index: int, payload: bytes = b"{}") -> LeafRow:
    leaf = (
        b'{"action":"a","actor":"x","erasable":false,"index":%d,"payload_sha256":"%s",'
        b'"resource_id":"r","resource_type":"t","session_id":null,"tenant":null,'
        b'"timestamp":"2026-03-01T12:00:00Z"}' % (index, text_digest(b"{}", None).encode())
    )
    return LeafRow(index, leaf, leaf_hash(leaf), payload, None)


PAGES = [
    [_row(0), _row(1)],
    [_row(2), _row(3, b"[]")],
    [_row(5), _row(6)],
]


def _here() -> list[tuple[int, str] | None]:
    rows = [[(r.index, r.leaf, r.leaf_hash, r.payload, r.salt) for r in page] for page in PAGES]
    return [first_problem(page, 2 * n) for n, page in enumerate(rows)]


async def test_another_process_answers_as_this_one_in_order() -> None:
    checks = _RowChecks(apart=True)
    await checks.start()
    try:
        assert checks._child is not None
        sent = [checks.check(page, 2 * n) for n, page in enumerate(PAGES)]
        answers = [await answer for answer in sent]
    finally:
        await checks.close()
    assert answers == _here()
    assert answers[1] == (1, "entry 3: its payload does not match payload_sha256")
    assert answers[2] == (0, "entry 4 is missing (the next stored entry is 5)")


@pytest.mark.parametrize("when", ["before", "between"])
async def test_pages_are_checked_here_once_that_process_dies(when: str) -> None:
    checks = _RowChecks(apart=True)
    await checks.start()
    try:
        child = checks._child
        assert child is not None
        answers = []
        if when == "between":
            answers.append(await checks.check(PAGES[0], 0))
        child.kill()
        await child.wait()
        for n, page in enumerate(PAGES[len(answers) :], start=len(answers)):
            answers.append(await checks.check(page, 2 * n))
    finally:
        await checks.close()
    assert answers == _here()
