"""The authorizer's table: what each role may do, and that every permission is guarded."""

from __future__ import annotations

import pytest

from limit_graph.core.errors import PolicyDenied
from limit_graph.governance.auth import Principal
from limit_graph.governance.authorizer import (
    AUTHORIZER,
    MEMBER_ROLE,
    Permission,
    Policy,
    RoleAuthorizer,
)


def test_every_permission_is_decided_for_every_role() -> None:
    admin = Principal("admin", "default", frozenset({"admin"}))
    runner = Principal("runner", "default", frozenset({"runner"}))
    member = Principal("bob", "acme")
    stranger = Principal("eve", "acme", frozenset({"no-such-role"}))
    runner_may = {Permission.RUNNERS_CLAIM, Permission.MAINTENANCE_RUN}
    for permission in Permission:
        assert AUTHORIZER.allows(admin, permission)
        assert AUTHORIZER.allows(runner, permission) is (permission in runner_may)
        member_may = permission not in runner_may | {Permission.GOVERNANCE_WRITE}
        assert AUTHORIZER.allows(member, permission) is member_may
        assert not AUTHORIZER.allows(stranger, permission)


def test_a_denial_names_the_guarding_policy_and_the_permission() -> None:
    runner = Principal("runner", "default", frozenset({"runner"}))
    with pytest.raises(PolicyDenied) as denied:
        AUTHORIZER.require(runner, Permission.SESSIONS_WRITE)
    assert denied.value.policy_ids == ["rbac-tenant-member"]
    assert "sessions:write" in denied.value.detail


def test_a_table_must_guard_each_permission_exactly_once() -> None:
    everything = frozenset(Permission)
    with pytest.raises(ValueError, match="no policy guards"):
        RoleAuthorizer((Policy("p", frozenset({Permission.AGENTS_READ}), everything, "no"),))
    twice = (
        Policy("a", everything, frozenset({MEMBER_ROLE}), "no"),
        Policy("b", frozenset({Permission.AGENTS_READ}), frozenset({MEMBER_ROLE}), "no"),
    )
    with pytest.raises(ValueError, match="two policies"):
        RoleAuthorizer(twice)
