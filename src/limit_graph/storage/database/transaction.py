"""An interactive write transaction on the database backend.

Rows it reads for an update are locked (``FOR UPDATE`` on Postgres; SQLite's
transaction holds the whole database), and its first entry locks the ledger head, so
ledger appends are serialised and a record's entry always links to the entry before it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.core.models import Execution, ProvenanceEntry, Session, WorkflowRun
from limit_graph.storage import schema as t
from limit_graph.storage.base import execution_draft, session_draft, workflow_run_draft
from limit_graph.storage.database.sealing import DatabaseSeals
from limit_graph.storage.ledger import EntryDraft, LedgerHead, make_entry
from limit_graph.storage.sealed import with_salts

__all__ = ["DatabaseTransaction"]


class DatabaseTransaction:
    """:class:`~limit_graph.storage.base.StorageTransaction` on one connection; sensitive
    executions and archives pass through ``seals`` on their way in and out."""

    def __init__(self, conn: AsyncConnection, seals: DatabaseSeals) -> None:
        self.conn = conn
        self.seals = seals
        self._head: LedgerHead | None = None

    async def get_session(self, session_id: uuid.UUID) -> Session | None:
        row = await self.conn.scalar(
            select(t.sessions.c.document).where(t.sessions.c.id == session_id).with_for_update()
        )
        return Session.model_validate(row) if row is not None else None

    async def get_execution(self, execution_id: uuid.UUID) -> Execution | None:
        row = await self.conn.scalar(
            select(t.executions.c.document)
            .where(t.executions.c.id == execution_id)
            .with_for_update()
        )
        return await self.seals.open_execution(row, self.conn) if row is not None else None

    async def find_execution_by_key(
        self, session_id: uuid.UUID, idempotency_key: str
    ) -> Execution | None:
        row = await self.conn.scalar(t.execution_by_key(session_id, idempotency_key))
        return await self.seals.open_execution(row, self.conn) if row is not None else None

    async def session_executions(self, session_id: uuid.UUID) -> list[Execution]:
        rows = await self.conn.scalars(
            select(t.executions.c.document)
            .where(t.executions.c.session_id == session_id)
            .order_by(t.executions.c.submitted_us, t.executions.c.id)
        )
        return await self.seals.open_executions(list(rows), self.conn)

    async def get_workflow_run(self, run_id: uuid.UUID) -> WorkflowRun | None:
        row = await self.conn.scalar(
            select(t.workflow_runs.c.document)
            .where(t.workflow_runs.c.id == run_id)
            .with_for_update()
        )
        return WorkflowRun.model_validate(row) if row is not None else None

    async def session_workflow_runs(self, session_id: uuid.UUID) -> list[WorkflowRun]:
        c = t.workflow_runs.c
        rows = await self.conn.scalars(
            select(c.document).where(c.session_id == session_id).order_by(c.created_us, c.id)
        )
        return [WorkflowRun.model_validate(r) for r in rows]

    async def session_entries(self, session_id: uuid.UUID) -> list[ProvenanceEntry]:
        c = t.ledger.c
        rows = await self.conn.execute(
            select(*t.ENTRY_COLUMNS).where(c.session_id == session_id).order_by(c.idx)
        )
        return [t.ledger_entry(*row) for row in rows]

    async def get_entry(self, index: int) -> ProvenanceEntry | None:
        c = t.ledger.c
        row = (await self.conn.execute(select(*t.ENTRY_COLUMNS).where(c.idx == index))).first()
        return t.ledger_entry(*row) if row is not None else None

    async def append_entry(self, draft: EntryDraft) -> ProvenanceEntry:
        if self._head is None:
            size, edge = (await self.conn.execute(t.LOCK_LEDGER_HEAD)).one()
            self._head = LedgerHead.stored(size, edge)
        tenant = None
        if draft.tenant is None and draft.session_id is not None:
            tenant = await self.conn.scalar(
                select(t.sessions.c.tenant).where(t.sessions.c.id == draft.session_id)
            )
        was = (self._head.size, self._head.edge_bytes())
        entry = make_entry(self._head.size, draft, tenant=tenant)
        await self.conn.execute(insert(t.ledger).values(**t.ledger_row(entry)))
        nodes = t.node_rows(self._head.add([entry]))
        if nodes:
            await self.conn.execute(insert(t.ledger_nodes), nodes)
        await self.conn.execute(t.MOVE_LEDGER_HEAD, t.head_values(self._head, was))
        return entry

    async def save_session(self, session: Session, *, actor: str, action: str) -> Session:
        exists = await self.conn.scalar(
            select(func.count()).select_from(t.sessions).where(t.sessions.c.id == session.id)
        )
        row = t.session_row(session)
        if exists:
            await self.conn.execute(
                update(t.sessions).where(t.sessions.c.id == session.id).values(**row)
            )
        else:
            await self.conn.execute(insert(t.sessions).values(**row))
            tags = t.tag_rows(session)
            if tags:
                await self.conn.execute(insert(t.session_tags), tags)
        await self.append_entry(session_draft(session, actor=actor, action=action))
        return session

    async def save_execution(self, execution: Execution, *, actor: str, action: str) -> Execution:
        execution = with_salts(execution)
        sealed = await self.seals.seal_execution(execution, self.conn)
        entry = await self.append_entry(execution_draft(execution, actor=actor, action=action))
        stored = execution.model_copy(update={"provenance_entry": entry.index})
        changes = t.execution_changes(stored)
        if sealed is not None:
            changes["document"] = {**sealed, "provenance_entry": entry.index}
        changed = await self.conn.execute(t.UPDATE_EXECUTIONS, changes)
        if changed.rowcount == 0:
            row = t.execution_row(stored)
            row["document"] = changes["document"]
            await self.conn.execute(insert(t.executions).values(**row))
        return stored

    async def save_workflow_run(self, run: WorkflowRun, *, actor: str, action: str) -> WorkflowRun:
        await self.append_entry(workflow_run_draft(run, actor=actor, action=action))
        changed = await self.conn.execute(t.UPDATE_WORKFLOW_RUNS, t.workflow_run_changes(run))
        if changed.rowcount == 0:
            await self.conn.execute(insert(t.workflow_runs).values(**t.workflow_run_row(run)))
        return run

    async def save_archive(self, session_id: uuid.UUID, bundle: dict[str, Any]) -> None:
        bundle = await self.seals.seal_archive(session_id, bundle, self.conn)
        changed = await self.conn.execute(
            update(t.archives).where(t.archives.c.session_id == session_id).values(document=bundle)
        )
        if changed.rowcount == 0:
            await self.conn.execute(
                insert(t.archives).values(session_id=session_id, document=bundle)
            )
