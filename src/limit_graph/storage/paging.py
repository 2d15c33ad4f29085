"""Opaque cursors: a keyset page ends at (timestamp, id), a ledger page at an entry's
index, and the next page starts after it."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from limit_graph.core.errors import InvalidInput

__all__ = ["Page", "decode_cursor", "decode_index_cursor", "encode_cursor", "encode_index_cursor"]

T = TypeVar("T")

SortKey = tuple[datetime, uuid.UUID]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


_LEDGER = "ledger"


def _pack(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def _unpack(cursor: str) -> Any:
    padded = cursor + "=" * (-len(cursor) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode()))


def _malformed() -> InvalidInput:
    return InvalidInput(
        "cursor is not one this server issued",
        [{"loc": ["query", "cursor"], "msg": "malformed cursor", "type": "value_error"}],
    )


def encode_cursor(key: SortKey) -> str:
    return _pack([key[0].isoformat(), str(key[1])])


def decode_cursor(cursor: str) -> SortKey:
    try:
        stamp, ident = _unpack(cursor)
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("cursor timestamp has no time zone")
        return moment, uuid.UUID(ident)
    except (ValueError, TypeError, binascii.Error):
        raise _malformed() from None


def encode_index_cursor(index: int) -> str:
    """The next page starts after ledger entry ``index``.

    >>> decode_index_cursor(encode_index_cursor(41))
    41
    """
    return _pack([_LEDGER, index])


def decode_index_cursor(cursor: str) -> int:
    try:
        kind, index = _unpack(cursor)
        if kind != _LEDGER or type(index) is not int or index < 0:
            raise ValueError("not a ledger cursor")
        return index
    except (ValueError, TypeError, binascii.Error):
        raise _malformed() from None
