"""Each stored ledger row checked on its own, apart from the tree: its leaf hash, the
index its leaf says, and its payload's hash.

These checks are most of what verifying a whole ledger costs, and each row's is
independent of the others', so :func:`~limit_graph.orchestration.ledger_verify.verify_ledger`
runs :func:`first_problem` on a page of rows in a second process while it extends the
tree over the page before: ``python -m limit_graph.core.ledger_rows`` (:func:`serve`).
Standard library only, so that process imports next to nothing.

A row is ``(index, leaf, leaf_hash, payload, salt)`` as the store holds it (``payload``
``None``: erased).

>>> from limit_graph.core.ledger_leaf import text_digest
>>> from limit_graph.core.merkle import leaf_hash
>>> leaf = (
...     b'{"action":"a","actor":"x","erasable":false,"index":0,"payload_sha256":"'
...     + text_digest(b"{}", None).encode() + b'","resource_id":"r","resource_type":"t",'
...     b'"session_id":null,"tenant":null,"timestamp":"2026-03-01T12:00:00Z"}'
... )
>>> first_problem([(0, leaf, leaf_hash(leaf), b"{}", None)], 0) is None
True
>>> first_problem([(0, leaf, leaf_hash(leaf), b"[]", None)], 0)
(0, 'entry 0: its payload does not match payload_sha256')
>>> first_problem([(0, leaf, leaf_hash(leaf), b"{}", None)], 1)
(0, 'entry 1 is missing (the next stored entry is 0)')
"""

from __future__ import annotations

import base64
import json
import pickle
import re
import sys
from collections.abc import Sequence
from hashlib import sha256
from typing import BinaryIO

__all__ = ["Row", "first_problem", "frame", "leaf_fields", "row_problem", "serve"]

Row = tuple[int, bytes, bytes, bytes | None, str | None]
"""``(index, leaf, leaf_hash, payload, salt)``."""

_STRING = rb'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"'
"""A JSON string, exactly as RFC 8259 and :func:`json.loads` (strict) take one, as bytes
(a string of UTF-8 is valid only when the whole leaf decodes, checked apart)."""
_LEAF = re.compile(
    rb'\{"action":' + _STRING + rb',"actor":' + _STRING + rb',"erasable":(true|false),'
    rb'"index":(0|[1-9][0-9]*),"payload_sha256":"([0-9a-f]{64})",'
    rb'"resource_id":'
    + _STRING
    + rb',"resource_type":'
    + _STRING
    + rb',"session_id":(?:null|'
    + _STRING
    + rb'),"tenant":(?:null|'
    + _STRING
    + rb'),"timestamp":'
    + _STRING
    + rb"\}"
)
"""A leaf as the platform writes it: its ten fields' canonical JSON.  A leaf it matches
is JSON with exactly those members, whose ``erasable``, ``index`` and ``payload_sha256``
are its groups, so it is read without :func:`json.loads` (three times slower); any other
leaf is parsed and judged as JSON."""


def _utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def leaf_fields(leaf: bytes) -> tuple[object, bool, object] | str:
    """A leaf's ``index``, ``erasable`` and ``payload_sha256`` as :func:`json.loads`
    reads them, or what it is not.

    >>> leaf_fields(b'[1]'), leaf_fields(b'{"index": 3, "erasable": true}')
    ('a JSON object', (3, True, None))
    """
    matched = _LEAF.fullmatch(leaf) if _utf8(leaf) else None
    if matched is not None:
        return int(matched[2]), matched[1] == b"true", matched[3].decode()
    try:
        fields = json.loads(leaf)
    except ValueError:
        return "JSON"
    if not isinstance(fields, dict):
        return "a JSON object"
    return fields.get("index"), fields.get("erasable") is True, fields.get("payload_sha256")


def row_problem(row: Row, expected: int) -> str | None:
    """What is wrong with ``row`` as entry ``expected``, or ``None``."""
    index, leaf, leaf_hash, payload, salt = row
    if index != expected:
        return f"entry {expected} is missing (the next stored entry is {index})"
    if sha256(b"\x00" + leaf).digest() != leaf_hash:
        return f"entry {expected}: its leaf_hash does not match the entry's fields"
    fields = leaf_fields(leaf)
    if isinstance(fields, str):
        return f"entry {expected}: its fields are not {fields}"
    said, erasable, payload_sha256 = fields
    if said != expected:
        return f"entry {expected}: its fields say it is entry {said}"
    if payload is None:
        return None if erasable else f"entry {expected}: its payload is missing"
    if erasable != (salt is not None):
        return f"entry {expected}: an erasable payload needs its salt, and only it"
    if salt is not None:
        payload = base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4)) + payload
    if sha256(payload).hexdigest() != payload_sha256:
        return f"entry {expected}: its payload does not match payload_sha256"
    return None


def first_problem(rows: Sequence[Row], start: int) -> tuple[int, str] | None:
    """The first of ``rows`` (which should be entries ``start``, ``start + 1``, ...) that
    is wrong, as its offset in ``rows`` and what is wrong; ``None`` when none is."""
    for offset, row in enumerate(rows):
        problem = row_problem(row, start + offset)
        if problem is not None:
            return offset, problem
    return None


def _read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(8)
    if len(head) < 8:
        return None
    body = stream.read(int.from_bytes(head, "big"))
    return body if len(body) == int.from_bytes(head, "big") else None


def frame(data: bytes) -> bytes:
    """``data`` as one frame of :func:`serve`'s pipes: its length in 8 bytes, then it."""
    return len(data).to_bytes(8, "big") + data


def serve(given: BinaryIO, answers: BinaryIO) -> None:
    """Answer each frame of ``(rows, start)`` (pickled by the process that started this
    one: nothing else writes to this pipe) with the frame of its :func:`first_problem`,
    until the input ends."""
    while (data := _read_frame(given)) is not None:
        rows, start = pickle.loads(data)  # noqa: S301 - from our own parent, over a pipe
        answers.write(frame(pickle.dumps(first_problem(rows, start))))
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
