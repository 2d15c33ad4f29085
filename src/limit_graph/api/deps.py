"""Dependencies of the routes: the platform, the authenticated caller, and the decision.

Every route that needs credentials names its action through one dependency,
:class:`Authorize` (``Can…`` below): it authenticates the caller, finds the resource
the action is on -- the platform, the caller's tenant, or the session of the path,
which must be visible to the caller (another tenant's is a 404, like none) -- and asks
the governance authorizer, which records and raises a denial (403 with ``policy_ids``).
Before that it takes the request's tokens from the rate limits of the action's route
class (``execute``, ``read``, ``write``), once per request: a 429 with ``Retry-After``.
This runs before the body is looked at, so authorization comes before validation.
Routes whose resource is named in the body (a principal of a given tenant, a runner's
pool) have their services ask the same authorizer about it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from limit_graph.core.errors import AuthenticationRequired, NotFound
from limit_graph.core.governance_settings import RouteClass
from limit_graph.governance.auth import Principal
from limit_graph.governance.policy.schema import ACTIONS, Action
from limit_graph.governance.rates import route_class_of
from limit_graph.orchestration.platform import Platform
from limit_graph.orchestration.sessions import require_visible

__all__ = [
    "Authorize",
    "CanArchiveSessions",
    "CanClaimWork",
    "CanCompleteSessions",
    "CanCreateSessions",
    "CanCreateTenants",
    "CanDeleteSessions",
    "CanExecuteAgents",
    "CanExecuteInSessions",
    "CanGrantSessions",
    "CanListSessions",
    "CanManageKeys",
    "CanManagePrincipals",
    "CanReadAgents",
    "CanReadAudit",
    "CanReadLedger",
    "CanReadPolicies",
    "CanReadPrincipals",
    "CanReadSessions",
    "CanReadSessionsIncludingDeleted",
    "CanReadTenants",
    "CanRestoreSessions",
    "CanRotateSigningKeys",
    "CanRunMaintenance",
    "CanUpdateSessions",
    "CanValidateWorkflows",
    "CanWritePolicies",
    "CurrentPlatform",
    "CurrentPrincipal",
]

_bearer = HTTPBearer(auto_error=False, description="An API key or a JWT.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def get_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    """Every credential sent must be valid; sending two that disagree is refused."""
    platform: Platform = request.app.state.platform
    authenticator = platform.authenticator
    sent = [c for c in (bearer.credentials if bearer else None, api_key) if c is not None]
    if "authorization" in request.headers and bearer is None:
        raise AuthenticationRequired("the Authorization header must be 'Bearer <credential>'")
    if not sent:
        return await authenticator.authenticate(None)
    principals = [await authenticator.authenticate(c) for c in sent]
    if any(p != principals[0] for p in principals[1:]):
        raise AuthenticationRequired("Authorization and X-API-Key name different callers")
    return principals[0]


CurrentPlatform = Annotated[Platform, Depends(get_platform)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


class Authorize:
    """The dependency of a route doing ``action``: the caller, once allowed.

    The resource is the one the schema gives the action: the platform, the caller's
    tenant, or the session named by the path's ``session_id``.  ``route_class`` names the
    rate limits the request draws from when the action's own do not fit the route.
    """

    def __init__(
        self,
        action: Action,
        *,
        include_deleted: bool = False,
        route_class: RouteClass | None = None,
    ) -> None:
        self.action = action
        self.on = ACTIONS[action]
        self.include_deleted = include_deleted
        self.route_class = route_class or route_class_of(action)

    async def __call__(
        self, request: Request, principal: CurrentPrincipal, platform: CurrentPlatform
    ) -> Principal:
        await platform.rates.check_caller(self.route_class, principal)
        authorizer = platform.authorizer
        if self.on == "Platform":
            await authorizer.on_platform(principal, self.action)
        elif self.on == "Tenant":
            await authorizer.on_tenant(principal, self.action)
        elif self.on == "Session":
            session_id = _path_session(request)
            session = require_visible(
                await platform.sessions.cache.load(session_id),
                principal,
                session_id,
                include_deleted=self.include_deleted,
            )
            await authorizer.on_session(principal, self.action, session)
        else:  # Pool and Agent resources are named in bodies: their services ask
            raise TypeError(f"{self.action} is not decided by a route dependency")
        return principal


def _path_session(request: Request) -> uuid.UUID:
    raw = request.path_params.get("session_id")
    if isinstance(raw, uuid.UUID):
        return raw
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise NotFound(f"no session {raw}") from None


CanCreateTenants = Annotated[Principal, Depends(Authorize(Action.TENANT_CREATE))]
CanReadTenants = Annotated[Principal, Depends(Authorize(Action.TENANT_READ))]
CanRotateSigningKeys = Annotated[Principal, Depends(Authorize(Action.SIGNING_KEY_ROTATE))]
CanReadAgents = Annotated[Principal, Depends(Authorize(Action.AGENT_READ))]
CanExecuteAgents = Annotated[
    Principal, Depends(Authorize(Action.AGENT_READ, route_class="execute"))
]
"""``POST /agents/{id}/execute``: the platform decides the session's action; the
request draws from the execute rates."""
CanRunMaintenance = Annotated[Principal, Depends(Authorize(Action.MAINTENANCE_RUN))]
CanCreateSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_CREATE))]
CanListSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_LIST))]
CanRestoreSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_RESTORE))]
CanReadPrincipals = Annotated[Principal, Depends(Authorize(Action.PRINCIPAL_READ))]
CanManagePrincipals = Annotated[Principal, Depends(Authorize(Action.PRINCIPAL_MANAGE))]
CanManageKeys = Annotated[Principal, Depends(Authorize(Action.KEY_MANAGE))]
CanReadPolicies = Annotated[Principal, Depends(Authorize(Action.POLICY_READ))]
CanWritePolicies = Annotated[Principal, Depends(Authorize(Action.POLICY_WRITE))]
CanReadAudit = Annotated[Principal, Depends(Authorize(Action.AUDIT_READ))]
CanReadLedger = Annotated[Principal, Depends(Authorize(Action.LEDGER_READ))]
CanReadQuotas = Annotated[Principal, Depends(Authorize(Action.QUOTA_READ))]
CanSetQuotas = Annotated[Principal, Depends(Authorize(Action.QUOTA_WRITE))]
"""A tenant admin; the quota service asks again for the scope (a tenant's quotas are the
platform admin's to set)."""
CanValidateWorkflows = Annotated[Principal, Depends(Authorize(Action.WORKFLOW_VALIDATE))]
CanReadSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_READ))]
CanReadSessionsIncludingDeleted = Annotated[
    Principal, Depends(Authorize(Action.SESSION_READ, include_deleted=True))
]
CanUpdateSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_UPDATE))]
CanCompleteSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_COMPLETE))]
CanArchiveSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_ARCHIVE))]
CanDeleteSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_DELETE))]
CanGrantSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_GRANT))]
CanExecuteInSessions = Annotated[Principal, Depends(Authorize(Action.SESSION_EXECUTE))]
CanClaimWork = CurrentPrincipal
"""Runner routes: the pool is in the body, so the dispatcher's caller asks about it."""
