"""Dependencies of the routes: the platform, the authenticated caller, and what it may do.

Each route names the permission it needs through one of the ``Can…`` types below; the
decision is the governance authorizer's (:mod:`limit_graph.governance.authorizer`).
They depend on :func:`get_principal`, so the OpenAPI document shows each route's security.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from limit_graph.core.errors import AuthenticationRequired
from limit_graph.governance.auth import ApiKeyAuthenticator, Principal
from limit_graph.governance.authorizer import AUTHORIZER, Permission
from limit_graph.orchestration.platform import Platform

__all__ = [
    "Authorize",
    "CanClaimWork",
    "CanReadAgents",
    "CanReadExecutions",
    "CanReadGovernance",
    "CanReadProvenance",
    "CanReadSessions",
    "CanRunExecutions",
    "CanRunMaintenance",
    "CanWriteGovernance",
    "CanWriteSessions",
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
    authenticator: ApiKeyAuthenticator = request.app.state.authenticator
    sent = [c for c in (bearer.credentials if bearer else None, api_key) if c is not None]
    if "authorization" in request.headers and bearer is None:
        raise AuthenticationRequired("the Authorization header must be 'Bearer <key>'")
    principals = [authenticator.authenticate(c) for c in sent] or [authenticator.authenticate(None)]
    if any(p != principals[0] for p in principals[1:]):
        raise AuthenticationRequired("Authorization and X-API-Key name different callers")
    return principals[0]


CurrentPlatform = Annotated[Platform, Depends(get_platform)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


class Authorize:
    """The dependency of a route that needs ``permission``: the caller, or a 403."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        AUTHORIZER.require(principal, self.permission)
        return principal


CanReadSessions = Annotated[Principal, Depends(Authorize(Permission.SESSIONS_READ))]
CanWriteSessions = Annotated[Principal, Depends(Authorize(Permission.SESSIONS_WRITE))]
CanReadExecutions = Annotated[Principal, Depends(Authorize(Permission.EXECUTIONS_READ))]
CanRunExecutions = Annotated[Principal, Depends(Authorize(Permission.EXECUTIONS_RUN))]
CanReadAgents = Annotated[Principal, Depends(Authorize(Permission.AGENTS_READ))]
CanReadProvenance = Annotated[Principal, Depends(Authorize(Permission.PROVENANCE_READ))]
CanReadGovernance = Annotated[Principal, Depends(Authorize(Permission.GOVERNANCE_READ))]
CanWriteGovernance = Annotated[Principal, Depends(Authorize(Permission.GOVERNANCE_WRITE))]
CanClaimWork = Annotated[Principal, Depends(Authorize(Permission.RUNNERS_CLAIM))]
CanRunMaintenance = Annotated[Principal, Depends(Authorize(Permission.MAINTENANCE_RUN))]
