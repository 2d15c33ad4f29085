"""Session grants: the owner (or a holder of ``admin`` on the session) lets a principal
or a group of the session's tenant ``read``, ``execute`` or ``admin`` it.  The policies
read them as the session's readers, executors and admins."""

from __future__ import annotations

import uuid

from limit_graph.core.errors import InvalidInput, NotFound
from limit_graph.core.identity import Grant, GrantPermission
from limit_graph.core.models import utcnow
from limit_graph.governance.auth import Principal
from limit_graph.governance.authorizer import Authorizer
from limit_graph.governance.policy.schema import Action
from limit_graph.governance.watch import IdentityWatch
from limit_graph.orchestration.identity import checked_name, entry_of
from limit_graph.orchestration.sessions import SessionCache, require_visible
from limit_graph.storage.identity import IdentityStore

__all__ = ["GrantService"]


class GrantService:
    def __init__(
        self,
        identity: IdentityStore,
        authorizer: Authorizer,
        watch: IdentityWatch,
        sessions: SessionCache,
    ) -> None:
        self.identity = identity
        self.authorizer = authorizer
        self.watch = watch
        self.sessions = sessions

    async def create(
        self,
        caller: Principal,
        session_id: uuid.UUID,
        *,
        permission: GrantPermission,
        principal_id: uuid.UUID | None = None,
        group: str | None = None,
    ) -> Grant:
        session = require_visible(await self.sessions.load(session_id), caller, session_id)
        await self.authorizer.on_session(caller, Action.SESSION_GRANT, session)
        if (principal_id is None) == (group is None):
            raise InvalidInput(
                "name exactly one of principal_id and group",
                [{"loc": ["body"], "msg": "principal_id or group", "type": "value_error"}],
            )
        if principal_id is not None:
            subject = await self.identity.get_principal(principal_id)
            if (
                subject is None
                or subject.deleted_at is not None
                or subject.tenant != session.tenant
            ):
                raise NotFound(f"no principal {principal_id}")
        grant = Grant(
            id=uuid.uuid4(),
            session_id=session.id,
            tenant=session.tenant,
            principal_id=principal_id,
            group=checked_name(group, "group", "group") if group is not None else None,
            permission=permission,
            created_by=caller.name,
            created_at=utcnow(),
        )
        created = await self.identity.create_grant(
            grant,
            entry=entry_of(
                caller,
                "grant.created",
                "grant",
                str(grant.id),
                tenant=session.tenant,
                session_id=session.id,
                permission=permission.value,
                principal_id=str(principal_id) if principal_id else None,
                group=grant.group,
            ),
        )
        self.authorizer.forget_grants(session.id)
        await self.watch.changed()
        return created

    async def list(self, caller: Principal, session_id: uuid.UUID) -> list[Grant]:
        session = require_visible(await self.sessions.load(session_id), caller, session_id)
        await self.authorizer.on_session(caller, Action.SESSION_READ, session)
        return await self.identity.list_grants(session_id)

    async def delete(self, caller: Principal, session_id: uuid.UUID, grant_id: uuid.UUID) -> None:
        session = require_visible(await self.sessions.load(session_id), caller, session_id)
        await self.authorizer.on_session(caller, Action.SESSION_GRANT, session)
        if not any(g.id == grant_id for g in await self.identity.list_grants(session_id)):
            raise NotFound(f"no grant {grant_id} on session {session_id}")
        await self.identity.delete_grant(
            grant_id,
            entry=entry_of(
                caller,
                "grant.deleted",
                "grant",
                str(grant_id),
                tenant=session.tenant,
                session_id=session.id,
            ),
        )
        self.authorizer.forget_grants(session.id)
        await self.watch.changed()
