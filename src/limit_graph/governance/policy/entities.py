"""Our domain as Cedar entities, and the requests the routes and checks ask.

Every fact a policy may read travels in the request (see :class:`.AuthzRequest`):
the caller with its roles and groups, the role hierarchy, the resource, and for a
session its owner and grants.  Ids are chosen so that equal things meet: a principal
is ``Principal::"<uuid>"`` (or ``Principal::"name:<tenant>/<name>"`` for a key of the
settings that no record holds), a group ``Group::"<tenant>/<name>"`` (group names are
per tenant), a tenant ``Tenant::"<name>"``.

>>> from limit_graph.governance.auth import Principal
>>> alice = Principal("alice", "acme", frozenset({"author"}))
>>> request = tenant_request(alice, Action.SESSION_CREATE)
>>> str(request.principal), str(request.resource)
('Principal::"name:acme/alice"', 'Tenant::"acme"')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from limit_graph.core.identity import Grant, GrantPermission, Role
from limit_graph.governance.auth import Principal
from limit_graph.governance.policy.schema import ACTIONS, Action
from limit_graph.governance.policy.types import AuthzRequest, Entity, EntityRef, Value

__all__ = [
    "PLATFORM",
    "ROLE_HIERARCHY",
    "SessionLike",
    "agent_context",
    "agent_entity",
    "agent_request",
    "group_ref",
    "platform_request",
    "pool_entity",
    "pool_request",
    "principal_entities",
    "principal_ref",
    "request_for",
    "session_entity",
    "session_request",
    "target_family",
    "tenant_entity",
    "tenant_ref",
    "tenant_request",
]

PLATFORM = Entity(EntityRef("Platform", "limit-graph"))
"""The one platform entity: the resource of the platform-wide actions."""


def _role(name: str) -> EntityRef:
    return EntityRef("Role", str(name))


ROLE_HIERARCHY: tuple[Entity, ...] = (
    Entity(_role(Role.ADMIN), parents=(_role(Role.OPERATOR),)),
    Entity(_role(Role.OPERATOR), parents=(_role(Role.AUTHOR),)),
    Entity(_role(Role.AUTHOR), parents=(_role(Role.VIEWER),)),
    Entity(_role(Role.AUDITOR), parents=(_role(Role.VIEWER),)),
    Entity(_role(Role.VIEWER)),
    Entity(_role(Role.RUNNER)),
)
"""Each role is in the one below it (admin in operator in author in viewer), so
``principal in Role::"viewer"`` holds for every role that reads; runner stands alone."""

_HIERARCHY = {entity.ref.id for entity in ROLE_HIERARCHY}


class SessionLike(Protocol):
    """What the builders read of a session (:class:`~limit_graph.core.models.Session`)."""

    @property
    def id(self) -> object: ...
    @property
    def tenant(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def state(self) -> str: ...


def tenant_ref(name: str) -> EntityRef:
    return EntityRef("Tenant", name)


def tenant_entity(name: str) -> Entity:
    return Entity(tenant_ref(name))


def group_ref(tenant: str, name: str) -> EntityRef:
    return EntityRef("Group", f"{tenant}/{name}")


def principal_ref(principal: Principal) -> EntityRef:
    """The caller's entity id: its record id, else its tenant-qualified name."""
    if principal.id is not None:
        return EntityRef("Principal", str(principal.id))
    return _named_principal(principal.tenant, principal.name)


def _named_principal(tenant: str, name: str) -> EntityRef:
    return EntityRef("Principal", f"name:{tenant}/{name}")


def principal_entities(principal: Principal) -> tuple[Entity, ...]:
    """The caller, the roles it is in (with their hierarchy) and its groups."""
    groups = tuple(group_ref(principal.tenant, group) for group in sorted(principal.groups))
    roles = tuple(_role(role) for role in sorted(principal.roles))
    attrs: dict[str, Value] = {
        "tenant": tenant_ref(principal.tenant),
        "kind": principal.kind,
        "platform_admin": principal.platform_admin,
        "pools": frozenset(principal.pools or ()),
        "all_pools": principal.pools is None,
    }
    extra_roles = tuple(Entity(role) for role in roles if role.id not in _HIERARCHY)
    group_entities = tuple(
        Entity(group, {"tenant": tenant_ref(principal.tenant)}) for group in groups
    )
    caller = Entity(principal_ref(principal), attrs, roles + groups)
    return (caller, *ROLE_HIERARCHY, *extra_roles, *group_entities)


def session_entity(
    session: SessionLike, grants: Sequence[Grant], *, caller: Principal | None = None
) -> Entity:
    """A session with its owner and its grants folded into who may read, execute and
    administer it (``admin`` implies ``execute`` implies ``read``).

    The owner is ``session.owner_id`` when the session has one; a session made before
    identity existed names its owner only, who is then the caller if the names match.
    """
    owner_id = getattr(session, "owner_id", None)
    if owner_id is not None:
        owner = EntityRef("Principal", str(owner_id))
    elif caller is not None and (caller.tenant, caller.name) == (session.tenant, session.owner):
        owner = principal_ref(caller)
    else:
        owner = _named_principal(session.tenant, session.owner)
    holders: dict[GrantPermission, tuple[set[EntityRef], set[EntityRef]]] = {
        level: (set(), set()) for level in GrantPermission
    }
    implied = {
        GrantPermission.READ: (GrantPermission.READ,),
        GrantPermission.EXECUTE: (GrantPermission.READ, GrantPermission.EXECUTE),
        GrantPermission.ADMIN: tuple(GrantPermission),
    }
    for grant in grants:
        if grant.session_id != session.id or grant.tenant != session.tenant:
            raise ValueError(f"grant {grant.id} is not on session {session.id}")
        for level in implied[grant.permission]:
            principals, groups = holders[level]
            if grant.principal_id is not None:
                principals.add(EntityRef("Principal", str(grant.principal_id)))
            if grant.group is not None:
                groups.add(group_ref(session.tenant, grant.group))
    attrs: dict[str, Value] = {
        "tenant": tenant_ref(session.tenant),
        "owner": owner,
        "state": str(session.state),
    }
    for level, (principals, groups) in holders.items():
        name = {"read": "reader", "execute": "executor", "admin": "admin"}[level.value]
        attrs[f"{name}s"] = frozenset(principals)
        attrs[f"{name}_groups"] = frozenset(groups)
    return Entity(EntityRef("Session", str(session.id)), attrs)


def agent_entity(name: str) -> Entity:
    return Entity(EntityRef("Agent", name), {"name": name})


def pool_entity(name: str) -> Entity:
    return Entity(EntityRef("Pool", name), {"name": name})


def target_family(target: str | None) -> str:
    """The part of a target before ``:`` (``ibm`` of ``ibm:ibm_torino``), or all of it.

    >>> target_family("ibm:ibm_torino"), target_family("aer"), target_family(None)
    ('ibm', 'aer', '')
    """
    return (target or "").partition(":")[0]


def agent_context(
    session: Entity, *, backend: str, target: str | None, input_classes: Iterable[str] = ()
) -> dict[str, Value]:
    """The context of ``agent.execute``: where it would run and what its inputs hold."""
    return {
        "session": session.ref,
        "backend": backend,
        "target": target or "",
        "target_family": target_family(target),
        "input_classes": frozenset(input_classes),
    }


def request_for(
    principal: Principal,
    action: str,
    resource: Entity,
    *,
    context: Mapping[str, Value] | None = None,
    entities: Iterable[Entity] = (),
) -> AuthzRequest:
    """A request with the caller's entities, the resource and any others given.

    Raises ``ValueError`` for an action the schema does not declare or a resource of
    another type than the action's: that is a bug in the caller, not bad input.
    """
    expected = ACTIONS.get(action)
    if expected is None:
        raise ValueError(f"unknown action {action!r}; the schema declares {sorted(ACTIONS)}")
    if resource.ref.type != expected:
        raise ValueError(f"{action} applies to a {expected}, not to {resource.ref}")
    known: dict[EntityRef, Entity] = {}
    for entity in (*principal_entities(principal), resource, *entities):
        if known.setdefault(entity.ref, entity) != entity:
            raise ValueError(f"two different entities {entity.ref} in one request")
    return AuthzRequest(
        principal_ref(principal),
        str(action),
        resource.ref,
        dict(context or {}),
        tuple(known.values()),
    )


def tenant_request(principal: Principal, action: str, tenant: str | None = None) -> AuthzRequest:
    """An action on a tenant (by default the caller's own)."""
    return request_for(principal, action, tenant_entity(tenant or principal.tenant))


def platform_request(principal: Principal, action: str) -> AuthzRequest:
    return request_for(principal, action, PLATFORM)


def session_request(
    principal: Principal, action: str, session: SessionLike, grants: Sequence[Grant] = ()
) -> AuthzRequest:
    """An action on one session, its grants included."""
    resource = session_entity(session, grants, caller=principal)
    return request_for(principal, action, resource, entities=(tenant_entity(session.tenant),))


def agent_request(
    principal: Principal,
    agent: str,
    session: SessionLike,
    grants: Sequence[Grant] = (),
    *,
    backend: str,
    target: str | None = None,
    input_classes: Iterable[str] = (),
) -> AuthzRequest:
    """``agent.execute``: the pre-task access check (principal x agent x backend x
    target x inputs), with the session it would run in."""
    held = session_entity(session, grants, caller=principal)
    context = agent_context(held, backend=backend, target=target, input_classes=input_classes)
    return request_for(
        principal, Action.AGENT_EXECUTE, agent_entity(agent), context=context, entities=(held,)
    )


def pool_request(principal: Principal, pool: str) -> AuthzRequest:
    """``runner.claim`` on one work pool."""
    return request_for(principal, Action.RUNNER_CLAIM, pool_entity(pool))
