"""Statements shared by the interactive and the group-commit writers: the ledger head's
lock and move, the executemany updates of executions and workflow runs, and the lookup
of an execution by its idempotency key.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, bindparam, case, select, update
from sqlalchemy.sql import Select

from limit_graph.storage.ledger import LedgerHead
from limit_graph.storage.schema.ledger import ledger_head
from limit_graph.storage.schema.records import executions, workflow_runs

__all__ = [
    "LOCK_LEDGER_HEAD",
    "MOVE_LEDGER_HEAD",
    "UPDATE_EXECUTIONS",
    "UPDATE_WORKFLOW_RUNS",
    "execution_by_key",
    "head_values",
]

LOCK_LEDGER_HEAD = (
    select(ledger_head.c.size, ledger_head.c.edge).where(ledger_head.c.id == 1).with_for_update()
)

UPDATE_EXECUTIONS = update(executions).where(executions.c.id == bindparam("b_id"))
"""Executemany form: each parameter set has ``b_id`` and the columns to set."""

UPDATE_WORKFLOW_RUNS = update(workflow_runs).where(workflow_runs.c.id == bindparam("b_id"))
"""Executemany form, as :data:`UPDATE_EXECUTIONS`: ``b_id`` and the columns to set."""


MOVE_LEDGER_HEAD = (
    update(ledger_head)
    .where(ledger_head.c.id == 1)
    .values(
        size=case(
            (
                and_(
                    ledger_head.c.size == bindparam("was_size"),
                    ledger_head.c.edge == bindparam("was_edge"),
                ),
                bindparam("size"),
            ),
            else_=None,
        ),
        edge=bindparam("edge"),
    )
)
"""Parameters: :func:`head_values` of the head after the new entries.  It moves the head
only from the one it was extended from: when another writer moved it, the new size is
null, which the column refuses (an integrity error, raised by the database itself, so
that a writer sending its statements without waiting for each one's answer still
fails before it commits)."""


def head_values(head: LedgerHead, was: tuple[int, bytes]) -> dict[str, Any]:
    """The parameters of :data:`MOVE_LEDGER_HEAD` for ``head``, extended from the head
    ``was`` (its size and edge)."""
    return {
        "size": head.size,
        "edge": head.edge_bytes(),
        "was_size": was[0],
        "was_edge": was[1],
    }


def execution_by_key(session_id: uuid.UUID, idempotency_key: str) -> Select[tuple[Any]]:
    return select(executions.c.document).where(
        executions.c.session_id == session_id,
        executions.c.idempotency_key == idempotency_key,
    )
