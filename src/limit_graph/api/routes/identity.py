"""Tenants (platform admin), principals and API keys (tenant admins)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from limit_graph.api.deps import (
    CanCreateTenants,
    CanManageKeys,
    CanManagePrincipals,
    CanReadPrincipals,
    CanReadTenants,
    CurrentPlatform,
)
from limit_graph.api.identity_schemas import (
    KeyCreate,
    KeyCreated,
    KeyOut,
    KeyPage,
    PrincipalCreate,
    PrincipalCreated,
    PrincipalOut,
    PrincipalPage,
    TenantCreate,
    TenantList,
    TenantOut,
)
from limit_graph.api.ijson import IJSONRoute

router = APIRouter(tags=["identity"], route_class=IJSONRoute)


@router.post("/tenants", status_code=status.HTTP_201_CREATED, response_model=TenantOut)
async def create_tenant(
    body: TenantCreate, platform: CurrentPlatform, principal: CanCreateTenants
) -> TenantOut:
    tenant = await platform.identity.create_tenant(principal, body.name)
    return TenantOut.model_validate(tenant.model_dump())


@router.get("/tenants", response_model=TenantList)
async def list_tenants(platform: CurrentPlatform, principal: CanReadTenants) -> TenantList:
    tenants = await platform.identity.list_tenants(principal)
    return TenantList(items=[TenantOut.model_validate(t.model_dump()) for t in tenants])


@router.post("/principals", status_code=status.HTTP_201_CREATED, response_model=PrincipalCreated)
async def create_principal(
    body: PrincipalCreate, platform: CurrentPlatform, principal: CanManagePrincipals
) -> PrincipalCreated:
    """A user or a service account; a service account's ``client_secret`` is shown once."""
    made = await platform.identity.create_principal(
        principal,
        name=body.name,
        tenant=body.tenant,
        kind=body.kind,
        roles=body.roles,
        groups=body.groups,
        pools=body.pools,
    )
    out = PrincipalOut.of(made.record)
    return PrincipalCreated(**out.model_dump(), client_secret=made.client_secret)


@router.get("/principals", response_model=PrincipalPage)
async def list_principals(
    platform: CurrentPlatform,
    principal: CanReadPrincipals,
    tenant: str | None = Query(default=None, max_length=128),
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=512),
) -> PrincipalPage:
    page = await platform.identity.list_principals(
        principal, tenant=tenant, limit=limit, cursor=cursor
    )
    return PrincipalPage(
        items=[PrincipalOut.of(p) for p in page.items], next_cursor=page.next_cursor
    )


@router.delete("/principals/{principal_id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_principal(
    principal_id: uuid.UUID, platform: CurrentPlatform, principal: CanManagePrincipals
) -> Response:
    """Deleted at once: its keys are revoked and its tokens refused."""
    await platform.identity.delete_principal(principal, principal_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create_key(
    body: KeyCreate, platform: CurrentPlatform, principal: CanManageKeys
) -> KeyCreated:
    """A new API key; ``key`` is shown this once and kept only as a digest."""
    made = await platform.identity.create_key(
        principal, body.principal_id, scopes=body.scopes, expires_at=body.expires_at
    )
    return KeyCreated(**KeyOut.of(made.record).model_dump(), key=made.key)


@router.get("/keys", response_model=KeyPage)
async def list_keys(
    platform: CurrentPlatform,
    principal: CanManageKeys,
    principal_id: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=512),
) -> KeyPage:
    page = await platform.identity.list_keys(
        principal, principal_id=principal_id, limit=limit, cursor=cursor
    )
    return KeyPage(items=[KeyOut.of(k) for k in page.items], next_cursor=page.next_cursor)


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: str, platform: CurrentPlatform, principal: CanManageKeys) -> Response:
    """Revoked: refused on every API process sharing the database within a second."""
    await platform.identity.revoke_key(principal, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
