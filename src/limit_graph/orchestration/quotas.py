"""Quotas as callers see and set them: who may read whose, who may set which.

Anyone reads the quotas that apply to them (their tenant's and their own) and, with
read access to it, a session's.  Tenant admins set the quotas of principals in their
tenant; only the platform admin sets a tenant's, so that no tenant raises its own
allowance of QPU time.  A session's quotas are in its config and never change.
"""

from __future__ import annotations

import uuid
from typing import Any

from limit_graph.core.errors import InvalidInput, NotFound
from limit_graph.core.quotas import QuotaLimits, QuotaUse, check_scope
from limit_graph.governance.auth import Principal
from limit_graph.governance.authorizer import Authorizer
from limit_graph.governance.policy import Action
from limit_graph.governance.quotas import QuotaService
from limit_graph.orchestration.sessions import SessionCache, require_visible
from limit_graph.storage.identity import IdentityStore

__all__ = ["QuotaAdmin"]


class QuotaAdmin:
    def __init__(
        self,
        quotas: QuotaService,
        authorizer: Authorizer,
        identity: IdentityStore,
        sessions: SessionCache,
    ) -> None:
        self.quotas = quotas
        self.authorizer = authorizer
        self.identity = identity
        self.sessions = sessions

    async def view(self, caller: Principal, session_id: uuid.UUID | None = None) -> list[QuotaUse]:
        """The caller's quotas with their use, and ``session_id``'s if given."""
        session = None
        if session_id is not None:
            session = require_visible(await self.sessions.load(session_id), caller, session_id)
            await self.authorizer.on_session(caller, Action.SESSION_READ, session)
        return await self.quotas.usage(
            tenant=caller.tenant, principal_id=caller.id, session=session
        )

    async def set(self, caller: Principal, scope: str, limits: dict[str, Any]) -> QuotaLimits:
        """Replace the quotas of ``scope`` (``tenant:<name>`` or ``principal:<id>``)."""
        try:
            check_scope(scope)
        except ValueError as exc:
            raise InvalidInput(
                str(exc), [{"loc": ["path", "scope"], "msg": str(exc), "type": "value_error"}]
            ) from None
        kind, _, name = scope.partition(":")
        if kind == "tenant":
            await self.authorizer.on_platform(caller, Action.TENANT_QUOTA_WRITE)
            if await self.identity.find_tenant(name) is None:
                raise NotFound(f"no tenant {name!r}")
        elif kind == "principal":
            record = await self.identity.get_principal(uuid.UUID(name))
            if record is None or record.tenant != caller.tenant:
                raise NotFound(f"no principal {name} in tenant {caller.tenant!r}")
            await self.authorizer.on_tenant(caller, Action.QUOTA_WRITE, record.tenant)
        return await self.quotas.set_limits(scope, limits, actor=caller.name)
