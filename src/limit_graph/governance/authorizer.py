"""Who may do what: the one decision point every route asks.

A principal's roles grant permissions; a route names the permission it needs and the
authorizer answers with nothing or a :class:`PolicyDenied` naming the policy that
guards it.  The roles today:

* ``admin`` -- every permission, across tenants.  The operator's superset credential,
  so it may also act as a runner (outside dev mode with no runner key configured, the
  runners are handed the admin key, see :func:`~limit_graph.governance.auth.ensure_runner_key`).
* ``runner`` -- claim, heartbeat and report executions, and run maintenance; nothing else.
* a principal with no role is a tenant member: sessions, executions, agents and
  provenance of its own tenant.

>>> from limit_graph.governance.auth import Principal
>>> runner = Principal("runner", "default", frozenset({"runner"}))
>>> AUTHORIZER.allows(runner, Permission.RUNNERS_CLAIM)
True
>>> AUTHORIZER.decide(runner, Permission.SESSIONS_WRITE).policy_ids
['rbac-tenant-member']
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from limit_graph.core.errors import PolicyDenied
from limit_graph.governance.auth import Principal

__all__ = ["AUTHORIZER", "MEMBER_ROLE", "Permission", "Policy", "RoleAuthorizer"]


class Permission(StrEnum):
    SESSIONS_READ = "sessions:read"
    SESSIONS_WRITE = "sessions:write"
    EXECUTIONS_READ = "executions:read"
    EXECUTIONS_RUN = "executions:run"
    AGENTS_READ = "agents:read"
    PROVENANCE_READ = "provenance:read"
    GOVERNANCE_READ = "governance:read"
    GOVERNANCE_WRITE = "governance:write"
    RUNNERS_CLAIM = "runners:claim"
    MAINTENANCE_RUN = "maintenance:run"


MEMBER_ROLE = "member"
"""The role of a principal that names none: a user of its own tenant."""


@dataclass(frozen=True)
class Policy:
    """A rule: these roles hold these permissions.  Its id is what a denial names."""

    id: str
    permissions: frozenset[Permission]
    roles: frozenset[str]
    denial: str


_MEMBER = frozenset(
    {
        Permission.SESSIONS_READ,
        Permission.SESSIONS_WRITE,
        Permission.EXECUTIONS_READ,
        Permission.EXECUTIONS_RUN,
        Permission.AGENTS_READ,
        Permission.PROVENANCE_READ,
        Permission.GOVERNANCE_READ,
    }
)

POLICIES = (
    Policy(
        "rbac-tenant-member",
        _MEMBER,
        frozenset({"admin", MEMBER_ROLE}),
        "this needs a tenant member's or the admin's key (the runner key may only claim, "
        "heartbeat and report executions and call /maintenance)",
    ),
    Policy(
        "role-runner",
        frozenset({Permission.RUNNERS_CLAIM}),
        frozenset({"admin", "runner"}),
        "only runners and the admin may claim, heartbeat and report executions",
    ),
    Policy(
        "rbac-maintenance",
        frozenset({Permission.MAINTENANCE_RUN}),
        frozenset({"admin", "runner"}),
        "maintenance needs the admin or runner role",
    ),
    Policy(
        "rbac-admin",
        frozenset({Permission.GOVERNANCE_WRITE}),
        frozenset({"admin"}),
        "only the admin may change governance settings",
    ),
)


class RoleAuthorizer:
    """Decisions from a fixed table of role policies (no per-tenant rules yet)."""

    def __init__(self, policies: tuple[Policy, ...] = POLICIES) -> None:
        self._guard: dict[Permission, Policy] = {}
        for policy in policies:
            for permission in policy.permissions:
                if permission in self._guard:
                    raise ValueError(f"{permission} is guarded by two policies")
                self._guard[permission] = policy
        missing = set(Permission) - self._guard.keys()
        if missing:
            raise ValueError(f"no policy guards {sorted(missing)}")

    @staticmethod
    def roles_of(principal: Principal) -> frozenset[str]:
        return principal.roles or frozenset({MEMBER_ROLE})

    def decide(self, principal: Principal, permission: Permission) -> PolicyDenied | None:
        """``None`` when ``principal`` holds ``permission``; otherwise the denial."""
        policy = self._guard[permission]
        if self.roles_of(principal) & policy.roles:
            return None
        return PolicyDenied(
            f"{policy.denial} (needs {permission.value}; policy {policy.id})", [policy.id]
        )

    def allows(self, principal: Principal, permission: Permission) -> bool:
        return self.decide(principal, permission) is None

    def require(self, principal: Principal, permission: Permission) -> None:
        """Raise the denial (403, ``policy_ids`` naming the policy) unless allowed."""
        denial = self.decide(principal, permission)
        if denial is not None:
            raise denial


AUTHORIZER = RoleAuthorizer()
"""The platform's authorizer: stateless, so one instance serves every app."""
