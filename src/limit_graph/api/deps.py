"""Dependencies of the routes: the platform, and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from limit_graph.core.errors import AuthenticationRequired
from limit_graph.governance.auth import ApiKeyAuthenticator, Principal
from limit_graph.orchestration.platform import Platform

__all__ = ["CurrentPrincipal", "CurrentPlatform"]

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
