"""Slicing by (tenant, action) decides exactly as evaluating every policy would."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limit_graph.core.identity import Grant, GrantPermission, PolicyRecord
from limit_graph.governance.auth import Principal
from limit_graph.governance.policy import (
    ACTIONS,
    AuthzRequest,
    CedarEngine,
    default_policies,
    platform_request,
    pool_request,
    request_for,
    session_entity,
    tenant_request,
)
from limit_graph.governance.policy.entities import agent_context, agent_entity, tenant_entity
from limit_graph.governance.policy.slices import scope_actions
from tests.fixtures.records import T0

TENANTS = ["acme", "beta", "gamma"]
IDS = [uuid.UUID(int=n) for n in range(1, 5)]
NAMES = ["alice", "bob", "carol"]
GROUPS = ["ops", "dev"]

TENANT_POLICIES = [
    (
        "acme",
        "viewers-run",
        'permit (principal in Role::"viewer", action == Action::"session.execute", resource);',
    ),
    (
        "acme",
        "no-pii",
        'forbid (principal, action == Action::"agent.execute", resource) '
        'when { context.input_classes.contains("pii") };',
    ),
    (
        "acme",
        "ops-read-audit",
        'permit (principal in Group::"acme/ops", action == Action::"audit.read", resource);',
    ),
    (
        "beta",
        "nothing-in-archives",
        'forbid (principal, action, resource is Session) when { resource.state == "archived" };',
    ),
    (
        "beta",
        "aer-only",
        'forbid (principal, action == Action::"agent.execute", resource) '
        'unless { context.target_family == "aer" };',
    ),
    ("gamma", "everything", "permit (principal, action, resource);"),
]


def library() -> list[PolicyRecord]:
    tenant_records = [
        PolicyRecord(id=pid, version=1, tenant=tenant, text=text, updated_by="t", updated_at=T0)
        for tenant, pid, text in TENANT_POLICIES
    ]
    return [*default_policies(at=T0), *tenant_records]


SLICED = CedarEngine(library())
WHOLE = CedarEngine(library(), sliced=False)

principals = st.builds(
    lambda name, tenant, roles, groups, admin, pools, with_id: Principal(
        name,
        tenant,
        frozenset(roles),
        id=with_id,
        groups=frozenset(groups),
        platform_admin=admin,
        pools=None if pools is None else frozenset(pools),
    ),
    st.sampled_from(NAMES),
    st.sampled_from(TENANTS),
    st.sets(st.sampled_from(["viewer", "author", "operator", "admin", "runner", "auditor"])),
    st.sets(st.sampled_from(GROUPS)),
    st.booleans(),
    st.none() | st.sets(st.sampled_from(["quantum", "remote"])),
    st.none() | st.sampled_from(IDS),
)


class _Session:
    def __init__(self, tenant: str, owner: str, state: str, owner_id: uuid.UUID | None) -> None:
        self.id = uuid.uuid4()
        self.tenant, self.owner, self.state, self.owner_id = tenant, owner, state, owner_id


@st.composite
def sessions_with_grants(draw: st.DrawFn) -> tuple[_Session, list[Grant]]:
    session = _Session(
        draw(st.sampled_from(TENANTS)),
        draw(st.sampled_from(NAMES)),
        draw(st.sampled_from(["active", "completed", "archived", "deleted"])),
        draw(st.none() | st.sampled_from(IDS)),
    )
    grants = []
    for _ in range(draw(st.integers(0, 3))):
        to_group = draw(st.booleans())
        grants.append(
            Grant(
                id=uuid.uuid4(),
                session_id=session.id,
                tenant=session.tenant,
                principal_id=None if to_group else draw(st.sampled_from(IDS)),
                group=draw(st.sampled_from(GROUPS)) if to_group else None,
                permission=draw(st.sampled_from(list(GrantPermission))),
                created_by="t",
                created_at=T0,
            )
        )
    return session, grants


@st.composite
def requests(draw: st.DrawFn) -> tuple[Principal, AuthzRequest]:
    who = draw(principals)
    action = draw(st.sampled_from(sorted(ACTIONS)))
    kind = ACTIONS[action]
    if kind == "Platform":
        return who, platform_request(who, action)
    if kind == "Tenant":
        return who, tenant_request(who, action, draw(st.sampled_from(TENANTS)))
    if kind == "Pool":
        return who, pool_request(who, draw(st.sampled_from(["quantum", "remote", "local"])))
    session, grants = draw(sessions_with_grants())
    held = session_entity(session, grants, caller=who)
    if kind == "Session":
        return who, request_for(who, action, held, entities=(tenant_entity(session.tenant),))
    context = agent_context(
        held,
        backend=draw(st.sampled_from(["local", "quantum"])),
        target=draw(st.sampled_from([None, "aer", "fake:fake_brisbane", "ibm:ibm_torino"])),
        input_classes=draw(st.sets(st.sampled_from(["pii", "public"]))),
    )
    return who, request_for(who, action, agent_entity("echo"), context=context, entities=(held,))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_a_slice_decides_as_the_whole_set_does(drawn: tuple[Principal, AuthzRequest]) -> None:
    who, request = drawn
    assert SLICED.decide(request, tenant=who.tenant) == WHOLE.decide(request, tenant=who.tenant)


def test_a_slice_holds_only_the_policies_its_action_can_match() -> None:
    assert SLICED.applicable("acme", "tenant.create") == (
        "platform-admin-tenants",
        "tenant-isolation",
    )
    assert SLICED.applicable("acme", "audit.read") == (
        "admins-manage-tenant",
        "auditors-read-audit",
        "ops-read-audit",
        "tenant-isolation",
    )
    # A tenant without policies of its own for an action shares the platform's slice;
    # gamma's unscoped permit is bounded to the tenant's actions.
    assert SLICED.applicable("acme", "policy.read") == SLICED.applicable("nowhere", "policy.read")
    assert "everything" in SLICED.applicable("gamma", "session.delete")
    assert "everything" not in SLICED.applicable("gamma", "tenant.create")
    # beta's unscoped forbid goes everywhere beta decides.
    assert "nothing-in-archives" in SLICED.applicable("beta", "maintenance.run")
    whole = WHOLE.applicable("acme", "audit.read")
    assert len(whole) == len(default_policies()) + 3


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"op": "==", "entity": {"type": "Action", "id": "session.read"}}, {"session.read"}),
        ({"op": "in", "entity": {"type": "Action", "id": "session.read"}}, {"session.read"}),
        ({"op": "in", "entities": [{"type": "Action", "id": "audit.read"}]}, {"audit.read"}),
        ({"op": "All"}, set(ACTIONS)),
        ({"op": "in", "entities": [{"type": "Action", "id": "no.such"}]}, set(ACTIONS)),
        ({"op": "something new"}, set(ACTIONS)),
    ],
)
def test_an_unexpected_scope_counts_as_any_action(scope: dict, expected: set[str]) -> None:
    assert scope_actions(scope) == expected
