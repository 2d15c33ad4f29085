"""Opaque keyset cursors: a page ends at (timestamp, id) and the next starts after it."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from limit_graph.core.errors import InvalidInput

__all__ = ["Page", "decode_cursor", "encode_cursor"]

T = TypeVar("T")

SortKey = tuple[datetime, uuid.UUID]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: SortKey) -> str:
    raw = json.dumps([key[0].isoformat(), str(key[1])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("cursor timestamp has no time zone")
        return moment, uuid.UUID(ident)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InvalidInput(
            "cursor is not one this server issued",
            [{"loc": ["query", "cursor"], "msg": "malformed cursor", "type": "value_error"}],
        ) from None
