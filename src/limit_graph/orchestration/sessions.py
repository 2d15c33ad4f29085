"""The session service: create, read, list, complete, delete, archive and restore.

Sessions are tenant-isolated: a caller sees the sessions of its own tenant only
(nobody crosses tenants, the platform admin included), and an unknown or foreign id is
the same :class:`NotFound`.  What a caller may do with a visible session is the
governance authorizer's to decide, before these are called.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from limit_graph.core.errors import Conflict, InvalidInput, NotFound
from limit_graph.core.models import (
    Session,
    SessionConfig,
    SessionState,
    utcnow,
)
from limit_graph.governance.auth import Principal
from limit_graph.governance.compliance import ComplianceChecks
from limit_graph.orchestration.archive import (
    ArchiveBundle,
    build_bundle,
    parse_bundle,
    verify_bundle,
)
from limit_graph.orchestration.events import SessionEvents
from limit_graph.storage.base import SessionFilter, Storage, StorageTransaction
from limit_graph.storage.paging import Page

__all__ = [
    "SessionCache",
    "SessionService",
    "require_visible",
    "visible_to",
]

CACHE_SIZE = 10_000


def visible_to(
    session: Session | None, principal: Principal, *, include_deleted: bool = False
) -> bool:
    """A live session of the caller's tenant.

    Deleted sessions are gone from every read but the listing filtered by
    ``state=deleted`` and their provenance (``include_deleted``); their ledger entries stay.
    """
    return (
        session is not None
        and (include_deleted or session.state is not SessionState.DELETED)
        and session.tenant == principal.tenant
    )


def require_visible(
    session: Session | None,
    principal: Principal,
    session_id: uuid.UUID,
    *,
    include_deleted: bool = False,
) -> Session:
    """``session`` if the caller may see it; otherwise the same NotFound as for no session."""
    if session is None or not visible_to(session, principal, include_deleted=include_deleted):
        raise NotFound(f"no session {session_id}")
    return session


class SessionCache:
    """Recently used sessions, so that the execute path skips a database read.

    A session's id, tenant and config never change; its state may, possibly in another
    process, so whatever decides on the state must check it again where it writes (the
    execution write does, inside its transaction).  This process's own session writes
    refresh the cache.
    """

    def __init__(self, storage: Storage, size: int = CACHE_SIZE) -> None:
        self.storage = storage
        self.size = size
        self._sessions: OrderedDict[uuid.UUID, Session] = OrderedDict()

    def forget(self, session_id: uuid.UUID) -> None:
        self._sessions.pop(session_id, None)

    def remember(self, session: Session) -> Session:
        self._sessions[session.id] = session
        self._sessions.move_to_end(session.id)
        if len(self._sessions) > self.size:
            self._sessions.popitem(last=False)
        return session

    async def load(self, session_id: uuid.UUID) -> Session | None:
        cached = self._sessions.get(session_id)
        if cached is not None:
            return cached
        found = await self.storage.get_session(session_id)
        return self.remember(found) if found is not None else None


class SessionService:
    def __init__(
        self,
        storage: Storage,
        events: SessionEvents,
        cache: SessionCache,
        compliance: ComplianceChecks,
    ) -> None:
        self.storage = storage
        self.events = events
        self.cache = cache
        self.compliance = compliance

    async def _check_policies(self, config: SessionConfig, loc: list[str]) -> None:
        """Every compliance check the config declares exists and is well set (else 422)."""
        await self.compliance.aparse(config.policies, "session", [*loc, "policies"])

    async def create(
        self, principal: Principal, config: SessionConfig, name: str | None = None
    ) -> Session:
        """A new active session owned by ``principal``.

        >>> # await sessions.create(principal, SessionConfig(tags=["demo"]))
        """
        await self._check_policies(config, ["body", "config"])
        if config.default_backend is not None and config.default_backend not in config.backends:
            raise InvalidInput(
                "default_backend must be one of the session's backends",
                [
                    {
                        "loc": ["body", "config", "default_backend"],
                        "msg": f"{config.default_backend.value!r} is not in backends",
                        "type": "value_error",
                    }
                ],
            )
        session_id = uuid.uuid4()
        now = utcnow()
        session = Session(
            id=session_id,
            name=name or f"session-{session_id.hex[:8]}",
            state=SessionState.ACTIVE,
            config=config,
            config_sha256=config.sha256(),
            owner=principal.name,
            owner_id=principal.id,
            tenant=principal.tenant,
            created_at=now,
            updated_at=now,
        )
        created = await self.storage.write_new_session(
            session, actor=principal.name, action="session.created"
        )
        self.events.notify(created.id)
        return created

    async def get(self, principal: Principal, session_id: uuid.UUID) -> Session:
        return require_visible(await self.storage.get_session(session_id), principal, session_id)

    async def list(
        self,
        principal: Principal,
        *,
        state: SessionState | None = None,
        tag: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Session]:
        tenant = principal.tenant
        hidden = SessionState.DELETED if state is None else None
        return await self.storage.list_sessions(
            SessionFilter(tenant=tenant, state=state, tag=tag, exclude_state=hidden),
            limit=limit,
            cursor=cursor,
        )

    @asynccontextmanager
    async def _write(self, session_id: uuid.UUID) -> AsyncIterator[StorageTransaction]:
        """A write transaction on one session; its cached copy is dropped afterwards."""
        try:
            async with self.events.write(session_id) as tx:
                yield tx
        finally:
            self.cache.forget(session_id)

    async def _locked(
        self, tx: StorageTransaction, principal: Principal, session_id: uuid.UUID
    ) -> Session:
        return require_visible(await tx.get_session(session_id), principal, session_id)

    async def _transition(
        self,
        tx: StorageTransaction,
        principal: Principal,
        session: Session,
        state: SessionState,
        **changes: Any,
    ) -> Session:
        updated = session.model_copy(update={"state": state, "updated_at": utcnow(), **changes})
        return await tx.save_session(updated, actor=principal.name, action=f"session.{state.value}")

    async def update(
        self,
        principal: Principal,
        session_id: uuid.UUID,
        *,
        name: str | None = None,
        config: SessionConfig | None = None,
    ) -> Session:
        """Rename a session; its config never changes (a different one is a Conflict)."""
        async with self._write(session_id) as tx:
            session = await self._locked(tx, principal, session_id)
            if config is not None and config.sha256() != session.config_sha256:
                raise Conflict(
                    f"session {session_id}'s config is immutable "
                    f"(sha256 {session.config_sha256}); create a new session instead"
                )
            if name is None or name == session.name:
                return session
            updated = session.model_copy(update={"name": name, "updated_at": utcnow()})
            return await tx.save_session(updated, actor=principal.name, action="session.renamed")

    async def complete(self, principal: Principal, session_id: uuid.UUID) -> Session:
        async with self._write(session_id) as tx:
            session = await self._locked(tx, principal, session_id)
            if session.state is not SessionState.ACTIVE:
                raise Conflict(f"session {session_id} is {session.state.value}, not active")
            return await self._transition(tx, principal, session, SessionState.COMPLETED)

    async def delete(self, principal: Principal, session_id: uuid.UUID) -> Session:
        async with self._write(session_id) as tx:
            session = await self._locked(tx, principal, session_id)
            return await self._transition(tx, principal, session, SessionState.DELETED)

    async def archive(self, principal: Principal, session_id: uuid.UUID) -> dict[str, Any]:
        """Freeze the session into a bundle and mark it archived."""
        async with self._write(session_id) as tx:
            session = await self._locked(tx, principal, session_id)
            if session.state not in (SessionState.ACTIVE, SessionState.COMPLETED):
                raise Conflict(f"session {session_id} is {session.state.value}; cannot archive")
            executions = await tx.session_executions(session_id)
            unfinished = [e for e in executions if not e.state.is_final]
            if unfinished:
                raise Conflict(
                    f"session {session_id} has {len(unfinished)} unfinished executions; "
                    "wait for them or cancel them first"
                )
            runs = await tx.session_workflow_runs(session_id)
            running = [r for r in runs if not r.state.is_final]
            if running:
                raise Conflict(
                    f"session {session_id} has {len(running)} unfinished workflow runs; "
                    "wait for them or cancel them first"
                )
            entries = await tx.session_entries(session_id)
            bundle = build_bundle(session, executions, entries, runs)
            await tx.save_archive(session_id, bundle)
            await self._transition(tx, principal, session, SessionState.ARCHIVED)
        return {
            "session_id": str(session_id),
            "bundle_sha256": bundle["bundle_sha256"],
            "entries": len(entries),
            "executions": len(executions),
        }

    async def get_archive(self, principal: Principal, session_id: uuid.UUID) -> dict[str, Any]:
        session = await self.get(principal, session_id)
        bundle = await self.storage.get_archive(session_id)
        if bundle is None:
            raise Conflict(
                f"session {session_id} is {session.state.value} and has no archive yet; "
                f"POST /sessions/{session_id}/archive makes one"
            )
        return bundle

    @staticmethod
    async def _match_ledger(tx: StorageTransaction, bundle: ArchiveBundle) -> None:
        """Where this ledger holds the session's entries, the bundle must hold the same."""
        if not bundle.entries:
            return
        last = bundle.entries[-1].index
        known = {e.index: e for e in await tx.session_entries(bundle.session.id) if e.index <= last}
        carried = {e.index: e for e in bundle.entries}
        for index, entry in sorted(known.items()):
            if index not in carried:
                raise InvalidInput(
                    f"archive bundle does not verify: entry {index} of this ledger is missing"
                )
            if carried[index].leaf_hash != entry.leaf_hash:
                raise InvalidInput(
                    f"archive bundle does not verify: entry {index} differs from this ledger"
                )

    async def restore(self, principal: Principal, document: Any) -> Session:
        """Verify a bundle and bring its session back in the state it was archived from.

        Every hash is checked before anything is written; a bundle whose entries are
        also in this ledger must match them exactly.
        """
        bundle = parse_bundle(document)
        verify_bundle(bundle)
        original = bundle.session
        if original.tenant != principal.tenant:
            raise NotFound(f"no session {original.id}")
        if original.state not in (SessionState.ACTIVE, SessionState.COMPLETED):
            raise InvalidInput(f"bundle holds a session in state {original.state.value}")
        await self._check_policies(original.config, ["body", "session", "config"])
        async with self._write(original.id) as tx:
            await self._match_ledger(tx, bundle)
            current = await tx.get_session(original.id)
            if current is not None and not (
                current.state is SessionState.ARCHIVED or visible_to(current, principal)
            ):
                raise Conflict(f"session {original.id} exists and was deleted")
            if current is not None and current.state is not SessionState.ARCHIVED:
                raise Conflict(f"session {original.id} exists and is {current.state.value}")
            if current is not None and current.config_sha256 != original.config_sha256:
                raise Conflict(f"session {original.id} exists with another config")
            if any(not e.state.is_final for e in bundle.executions):
                raise InvalidInput("archive bundle holds unfinished executions")
            if any(not r.state.is_final for r in bundle.workflow_runs):
                raise InvalidInput("archive bundle holds unfinished workflow runs")
            restored = original.model_copy(
                update={"updated_at": utcnow(), "restored_from": bundle.bundle_sha256}
            )
            restored = await tx.save_session(
                restored, actor=principal.name, action="session.restored"
            )
            for execution in bundle.executions:
                if await tx.get_execution(execution.id) is None:
                    await tx.save_execution(
                        execution, actor=principal.name, action="execution.restored"
                    )
            for run in bundle.workflow_runs:
                if await tx.get_workflow_run(run.id) is None:
                    await tx.save_workflow_run(
                        run, actor=principal.name, action="workflow.restored"
                    )
            return restored
