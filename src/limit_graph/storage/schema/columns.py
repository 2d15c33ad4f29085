"""What every table of the schema shares: the :data:`metadata` they are declared on, the
JSON :data:`Document` column each record is kept whole in, and the microsecond sort keys
(:func:`to_micros`, :func:`from_micros`), which order the same way on SQLite and Postgres.

>>> moment = datetime(2024, 5, 27, 15, 27, 23, 5, tzinfo=UTC)
>>> to_micros(moment)
1716823643000005
>>> from_micros(to_micros(moment)) == moment
True
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import JSON, MetaData

__all__ = ["EPOCH", "Document", "from_micros", "metadata", "to_micros"]

metadata = MetaData()

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Plain ``json`` on Postgres too: it keeps the text as written, while ``jsonb`` turns
# 1e+20 into an integer and -0.0 into 0, which changes a document's SHA-256.
Document = JSON()


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: a sort key equal on every database."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """The UTC moment :func:`to_micros` made ``micros`` of."""
    return EPOCH + timedelta(microseconds=micros)
