"""Identity administration: tenants, principals and API keys (grants: :mod:`.grants`).

Each operation asks the governance authorizer first and writes through the identity
store with its ledger entry; then this process drops what it cached at once (other
processes notice through the identity epoch).  Objects of another tenant are answered
as unknown (404), never as forbidden, so that their existence does not leak -- except
to the platform admin, who makes each tenant's first principals.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from limit_graph.core.errors import Conflict, InvalidInput, NotFound
from limit_graph.core.identity import (
    ApiKeyRecord,
    PrincipalKind,
    PrincipalRecord,
    Role,
    Tenant,
    check_name,
)
from limit_graph.core.models import BackendKind, utcnow
from limit_graph.governance.auth import Principal
from limit_graph.governance.authn import API_KEY_PURPOSE, make_api_key
from limit_graph.governance.authorizer import Authorizer
from limit_graph.governance.policy.schema import ACTIONS, Action
from limit_graph.governance.secrets import ServerSecret
from limit_graph.governance.tokens import new_client_credentials
from limit_graph.governance.watch import IdentityWatch
from limit_graph.orchestration.sessions import SessionCache
from limit_graph.storage.identity import IdentityStore
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.paging import Page

__all__ = [
    "IdentityService",
    "NewKey",
    "NewPrincipal",
    "check_scopes",
    "checked_name",
    "entry_of",
]

_PREFIXES = {name.split(".", 1)[0] for name in ACTIONS}


def check_scopes(scopes: Sequence[str]) -> list[str]:
    """Scopes are action names or ``<prefix>.*``; anything else is a 422.

    >>> check_scopes(["session.read", "session.*"])
    ['session.read', 'session.*']
    """
    bad = [
        scope
        for scope in scopes
        if scope not in ACTIONS and not (scope.endswith(".*") and scope[:-2] in _PREFIXES)
    ]
    if bad:
        raise InvalidInput(
            f"unknown scopes {bad}: a scope is an action (e.g. 'session.read') or "
            "'<prefix>.*' (e.g. 'session.*')",
            [
                {"loc": ["body", "scopes", i], "msg": "unknown scope", "type": "value_error"}
                for i, scope in enumerate(scopes)
                if scope in bad
            ],
        )
    return list(dict.fromkeys(scopes))


@dataclass(frozen=True)
class NewPrincipal:
    record: PrincipalRecord
    client_secret: str | None
    """A service account's client secret: shown this once, kept only as a digest."""


@dataclass(frozen=True)
class NewKey:
    record: ApiKeyRecord
    key: str
    """The whole key: shown this once, kept only as a digest."""


ERASABLE = frozenset({"principal"})
"""The records whose ledger payloads may hold personal data (a person's name, their
identity provider's subject), committed by salted hash so that they can be erased."""


def entry_of(actor: Principal, action: str, what: str, ident: str, **payload: Any) -> EntryDraft:
    return EntryDraft(
        actor=actor.name,
        action=action,
        resource_type=what,
        resource_id=ident,
        session_id=payload.pop("session_id", None),
        payload={"tenant": payload.pop("tenant", actor.tenant), **payload},
        erasable=what in ERASABLE,
    )


class IdentityService:
    def __init__(
        self,
        identity: IdentityStore,
        authorizer: Authorizer,
        secret: ServerSecret,
        watch: IdentityWatch,
        sessions: SessionCache,
    ) -> None:
        self.identity = identity
        self.authorizer = authorizer
        self.secret = secret
        self.watch = watch
        self.sessions = sessions

    # Tenants

    async def create_tenant(self, caller: Principal, name: str) -> Tenant:
        await self.authorizer.on_platform(caller, Action.TENANT_CREATE)
        tenant = Tenant(
            id=uuid.uuid4(), name=checked_name(name, "tenant", "name"), created_at=utcnow()
        )
        created = await self.identity.create_tenant(
            tenant,
            entry=entry_of(
                caller, "tenant.created", "tenant", str(tenant.id), tenant=tenant.name, name=name
            ),
        )
        await self.watch.changed()
        return created

    async def list_tenants(self, caller: Principal) -> list[Tenant]:
        await self.authorizer.on_platform(caller, Action.TENANT_READ)
        return await self.identity.list_tenants()

    async def ensure_tenant(self, name: str) -> Tenant:
        """The tenant ``name``, made when missing (start-up: the platform's own)."""
        found = await self.identity.find_tenant(name)
        if found is not None:
            return found
        tenant = Tenant(id=uuid.uuid4(), name=name, created_at=utcnow())
        try:
            return await self.identity.create_tenant(
                tenant,
                entry=EntryDraft(
                    "platform", "tenant.created", "tenant", str(tenant.id), None, {"name": name}
                ),
            )
        except Conflict:  # another process made it first
            again = await self.identity.find_tenant(name)
            if again is None:
                raise
            return again

    async def _visible_tenant(self, caller: Principal, ref: str) -> Tenant:
        tenant = await self.identity.find_tenant(ref)
        if tenant is None or not (caller.platform_admin or tenant.name == caller.tenant):
            raise NotFound(f"no tenant {ref}")
        return tenant

    # Principals

    async def create_principal(
        self,
        caller: Principal,
        *,
        name: str,
        tenant: str,
        kind: PrincipalKind,
        roles: Sequence[Role],
        groups: Sequence[str] = (),
        pools: Sequence[str] | None = None,
    ) -> NewPrincipal:
        home = await self._visible_tenant(caller, tenant)
        await self.authorizer.on_tenant(caller, Action.PRINCIPAL_MANAGE, home.name)
        if Role.RUNNER in roles and not caller.platform_admin:
            raise InvalidInput(
                "only the platform admin makes runner service accounts (a runner claims "
                "work of every tenant)",
                [{"loc": ["body", "roles"], "msg": "runner is reserved", "type": "value_error"}],
            )
        if Role.RUNNER in roles and kind is not PrincipalKind.SERVICE:
            raise InvalidInput(
                "a runner is a service account",
                [{"loc": ["body", "kind"], "msg": "must be service", "type": "value_error"}],
            )
        if pools is not None and Role.RUNNER not in roles:
            raise InvalidInput(
                "pools are for runners",
                [{"loc": ["body", "pools"], "msg": "only with role runner", "type": "value_error"}],
            )
        unknown = sorted(set(pools or ()) - {kind.value for kind in BackendKind})
        if unknown:
            raise InvalidInput(
                f"unknown pools {unknown}: the pools are "
                + ", ".join(kind.value for kind in BackendKind),
                [{"loc": ["body", "pools"], "msg": "unknown pool", "type": "value_error"}],
            )
        credentials = new_client_credentials(self.secret) if kind is PrincipalKind.SERVICE else None
        record = PrincipalRecord(
            id=uuid.uuid4(),
            name=checked_name(name, "principal", "name"),
            tenant=home.name,
            kind=kind,
            roles=list(dict.fromkeys(roles)),
            groups=[checked_name(g, "group", "groups") for g in dict.fromkeys(groups)],
            client_id=credentials.client_id if credentials else None,
            client_secret_digest=credentials.client_secret_digest if credentials else None,
            pools=list(pools) if pools is not None else None,
            created_at=utcnow(),
        )
        created = await self.identity.create_principal(
            record,
            entry=entry_of(
                caller,
                "principal.created",
                "principal",
                str(record.id),
                tenant=home.name,
                name=record.name,
                kind=kind.value,
                roles=[r.value for r in record.roles],
                groups=record.groups,
            ),
        )
        await self.watch.changed()
        return NewPrincipal(created, credentials.client_secret if credentials else None)

    async def ensure_principal(self, record: PrincipalRecord) -> PrincipalRecord:
        """``record`` by (tenant, name), made when missing (start-up: admin and runner)."""
        found = await self.identity.find_principal(record.tenant, record.name)
        if found is not None:
            return found
        try:
            return await self.identity.create_principal(
                record,
                entry=EntryDraft(
                    "platform",
                    "principal.created",
                    "principal",
                    str(record.id),
                    None,
                    {"tenant": record.tenant, "name": record.name, "roles": record.roles},
                ),
            )
        except Conflict:
            again = await self.identity.find_principal(record.tenant, record.name)
            if again is None:
                raise
            return again

    async def list_principals(
        self, caller: Principal, *, tenant: str | None, limit: int, cursor: str | None
    ) -> Page[PrincipalRecord]:
        home = await self._visible_tenant(caller, tenant or caller.tenant)
        await self.authorizer.on_tenant(caller, Action.PRINCIPAL_READ, home.name)
        return await self.identity.list_principals(home.name, limit=limit, cursor=cursor)

    async def _visible_principal(
        self, caller: Principal, principal_id: uuid.UUID
    ) -> PrincipalRecord:
        found = await self.identity.get_principal(principal_id)
        if (
            found is None
            or found.deleted_at is not None
            or not (caller.platform_admin or found.tenant == caller.tenant)
        ):
            raise NotFound(f"no principal {principal_id}")
        return found

    async def delete_principal(self, caller: Principal, principal_id: uuid.UUID) -> None:
        found = await self._visible_principal(caller, principal_id)
        await self.authorizer.on_tenant(caller, Action.PRINCIPAL_MANAGE, found.tenant)
        if found.platform_admin:
            raise Conflict("the platform admin cannot be deleted")
        await self.identity.delete_principal(
            principal_id,
            at=utcnow(),
            entry=entry_of(
                caller, "principal.deleted", "principal", str(principal_id), tenant=found.tenant
            ),
        )
        await self.watch.changed()

    # API keys

    async def create_key(
        self,
        caller: Principal,
        principal_id: uuid.UUID,
        *,
        scopes: Sequence[str] = (),
        expires_at: datetime | None = None,
    ) -> NewKey:
        owner = await self._visible_principal(caller, principal_id)
        await self.authorizer.on_tenant(caller, Action.KEY_MANAGE, owner.tenant)
        now = utcnow()
        if expires_at is not None and expires_at <= now:
            raise InvalidInput(
                "expires_at must be in the future",
                [{"loc": ["body", "expires_at"], "msg": "in the past", "type": "value_error"}],
            )
        key_id, key = make_api_key()
        record = ApiKeyRecord(
            id=key_id,
            principal_id=owner.id,
            tenant=owner.tenant,
            digest=self.secret.digest(key, purpose=API_KEY_PURPOSE),
            scopes=check_scopes(scopes),
            created_at=now,
            expires_at=expires_at,
        )
        created = await self.identity.create_api_key(
            record,
            entry=entry_of(
                caller,
                "key.created",
                "api_key",
                key_id,
                tenant=owner.tenant,
                principal_id=str(owner.id),
                scopes=record.scopes,
                expires_at=expires_at.isoformat() if expires_at else None,
            ),
        )
        await self.watch.changed()
        return NewKey(created, key)

    async def list_keys(
        self,
        caller: Principal,
        *,
        principal_id: uuid.UUID | None,
        limit: int,
        cursor: str | None,
    ) -> Page[ApiKeyRecord]:
        await self.authorizer.on_tenant(caller, Action.KEY_MANAGE)
        if principal_id is not None:
            await self._visible_principal(caller, principal_id)
        tenant = None if caller.platform_admin and principal_id is not None else caller.tenant
        return await self.identity.list_api_keys(
            tenant, principal_id=principal_id, limit=limit, cursor=cursor
        )

    async def revoke_key(self, caller: Principal, key_id: str) -> None:
        found = await self.identity.get_api_key(key_id)
        if found is None or not (caller.platform_admin or found.tenant == caller.tenant):
            raise NotFound(f"no API key {key_id}")
        await self.authorizer.on_tenant(caller, Action.KEY_MANAGE, found.tenant)
        await self.identity.revoke_api_key(
            key_id,
            at=utcnow(),
            entry=entry_of(caller, "key.revoked", "api_key", key_id, tenant=found.tenant),
        )
        await self.watch.changed()


def checked_name(value: str, what: str, field: str) -> str:
    """``value`` if it is a valid name, else a 422 naming the field."""
    try:
        return check_name(value, what)
    except ValueError as exc:
        raise InvalidInput(
            str(exc), [{"loc": ["body", field], "msg": str(exc), "type": "value_error"}]
        ) from None
