"""The callers and the things the security tests act on, made over HTTP as a user would.

A :class:`World` is three tenants of one live platform: ``team-a`` with a member of each
role (viewer, author, operator, admin), ``team-b`` with its own things (the other tenant
whose objects must stay unknown to ``team-a``), and the platform's own tenant with its
admin and a runner service account.  Each tenant's :class:`Home` holds one set of
:class:`Things` (a session owned by the tenant's author, with an execution, a finished
workflow run and its artifact, a grant; a spare principal with a key; a service
account; a policy of the tenant's own) and makes fresh ones for calls that change them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from tests.fixtures.api import ADMIN_KEY

__all__ = [
    "ANONYMOUS",
    "MEMBER_ROLES",
    "NOOP_POLICY",
    "PLATFORM_ADMIN",
    "ROLES",
    "RUNNER",
    "WORKFLOW",
    "Caller",
    "Home",
    "Things",
    "World",
    "build_world",
    "make_member",
]

ANONYMOUS = "anonymous"
PLATFORM_ADMIN = "platform-admin"
RUNNER = "runner"
MEMBER_ROLES = ("viewer", "author", "operator", "admin")
"""The roles of a tenant's members, weakest first."""
ROLES = (ANONYMOUS, *MEMBER_ROLES, PLATFORM_ADMIN, RUNNER)
"""Every kind of caller the tests try each route as."""

WORKFLOW = {"name": "security", "steps": [{"id": "a", "agent": "echo", "inputs": {"n": 1}}]}
NOOP_POLICY = (
    'forbid (principal, action == Action::"session.delete", resource is Session)\n'
    'when { resource.state == "no-such-state" };'
)
"""A valid policy that changes no decision: what a policy write may store harmlessly."""


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Caller:
    """Someone calling the API: a role, its headers, and who it is (``None``: nobody)."""

    role: str
    headers: dict[str, str] = field(default_factory=dict)
    tenant: str | None = None
    name: str | None = None
    id: str | None = None
    key: str | None = field(default=None, repr=False)


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def make_member(
    http: httpx.Client,
    admin: Caller,
    tenant: str,
    role: str,
    *,
    name: str | None = None,
    kind: str = "user",
) -> tuple[Caller, dict[str, Any]]:
    """A principal of ``tenant`` holding ``role``, with a key, made by ``admin``; the
    caller and the principal as ``POST /principals`` answered (client secret included)."""
    body = {"name": name or unique(role), "tenant": tenant, "kind": kind, "roles": [role]}
    principal = created(http.post("/principals", json=body, headers=admin.headers))
    key = created(http.post("/keys", json={"principal_id": principal["id"]}, headers=admin.headers))
    caller = Caller(
        role=role,
        headers={"X-API-Key": key["key"]},
        tenant=tenant,
        name=principal["name"],
        id=principal["id"],
        key=key["key"],
    )
    return caller, principal


@dataclass(frozen=True)
class Things:
    """One tenant's objects, by the path parameter that names each."""

    tenant: str
    session_id: str
    execution_id: str
    run_id: str
    grant_id: str
    principal_id: str
    key_id: str
    policy_id: str
    client_id: str
    client_secret: str = field(repr=False)
    name: str = "summary"
    agent_id: str = "echo"

    def values(self) -> dict[str, str]:
        """Each path parameter's value."""
        return {
            "session_id": self.session_id,
            "execution_id": self.execution_id,
            "run_id": self.run_id,
            "name": self.name,
            "grant_id": self.grant_id,
            "principal_id": self.principal_id,
            "scope": f"principal:{self.principal_id}",
            "key_id": self.key_id,
            "policy_id": self.policy_id,
            "agent_id": self.agent_id,
        }


@dataclass
class Home:
    """A tenant, the caller who owns its sessions, the one who administers it, and its
    things; :meth:`fresh` makes new ones for a call that would change them."""

    http: httpx.Client
    tenant: str
    owner: Caller
    admin: Caller
    things: Things | None = None

    def session(self) -> str:
        made = created(self.http.post("/sessions", json={}, headers=self.owner.headers))
        session_id: str = made["id"]
        return session_id

    def execution(self, session_id: str) -> str:
        body = {"agent": "echo", "inputs": {"n": 1}, "wait_s": 30}
        ran = self.http.post(
            f"/sessions/{session_id}/execute", json=body, headers=self.owner.headers
        )
        execution_id: str = created(ran)["id"]
        return execution_id

    def run(self, session_id: str) -> str:
        body = {"workflow": WORKFLOW, "wait_s": 30}
        ran = created(
            self.http.post(f"/sessions/{session_id}/execute", json=body, headers=self.owner.headers)
        )
        assert ran["state"] == "succeeded", ran
        run_id: str = ran["id"]
        return run_id

    def grant(self, session_id: str, principal_id: str) -> str:
        body = {"principal_id": principal_id, "permission": "read"}
        made = self.http.post(
            f"/sessions/{session_id}/grants", json=body, headers=self.owner.headers
        )
        grant_id: str = created(made)["id"]
        return grant_id

    def principal(self) -> str:
        body = {"name": unique("spare"), "tenant": self.tenant, "kind": "user", "roles": []}
        principal_id: str = created(
            self.http.post("/principals", json=body, headers=self.admin.headers)
        )["id"]
        return principal_id

    def key(self, principal_id: str) -> str:
        made = self.http.post(
            "/keys", json={"principal_id": principal_id}, headers=self.admin.headers
        )
        key_id: str = created(made)["id"]
        return key_id

    def policy(self) -> str:
        policy_id = unique("own-policy")
        body = {"text": NOOP_POLICY, "expected_version": 0}
        stored = self.http.put(f"/policies/{policy_id}", json=body, headers=self.admin.headers)
        created(stored)
        return policy_id

    def make_things(self) -> Things:
        session_id = self.session()
        principal_id = self.principal()
        _, service = make_member(self.http, self.admin, self.tenant, "viewer", kind="service")
        self.things = Things(
            tenant=self.tenant,
            session_id=session_id,
            execution_id=self.execution(session_id),
            run_id=self.run(session_id),
            grant_id=self.grant(session_id, principal_id),
            principal_id=principal_id,
            key_id=self.key(principal_id),
            policy_id=self.policy(),
            client_id=service["client_id"],
            client_secret=service["client_secret"],
        )
        return self.things

    def shared(self) -> Things:
        return self.things if self.things is not None else self.make_things()

    def fresh(self, parameters: tuple[str, ...]) -> Things:
        """The shared things with new ones in place of those ``parameters`` name."""
        things = self.shared()
        changes: dict[str, str] = {}
        if "session_id" in parameters:
            session_id = changes["session_id"] = self.session()
            if "execution_id" in parameters:
                changes["execution_id"] = self.execution(session_id)
            if "run_id" in parameters:
                changes["run_id"] = self.run(session_id)
            if "grant_id" in parameters:
                changes["grant_id"] = self.grant(session_id, things.principal_id)
        if "principal_id" in parameters:
            changes["principal_id"] = self.principal()
        if "key_id" in parameters:
            changes["key_id"] = self.key(things.principal_id)
        if "policy_id" in parameters:
            changes["policy_id"] = unique("new-policy")
        return replace(things, **changes)


@dataclass
class World:
    """Tenant A's members by role, the platform admin and a runner, and each one's home."""

    http: httpx.Client
    callers: dict[str, Caller]
    homes: dict[str, Home]
    """By role: where that role's own things are (team-a, or the platform's tenant)."""
    theirs: Home
    """Tenant B: the other tenant."""
    member_of_b: Caller

    def home(self, role: str) -> Home:
        return self.homes[role]


def build_world(http: httpx.Client, *, platform_tenant: str = "default") -> World:
    """Tenants ``team-a`` and ``team-b`` and their members, made by the platform admin."""
    platform_admin = Caller(
        PLATFORM_ADMIN, {"X-API-Key": ADMIN_KEY}, platform_tenant, "admin", key=ADMIN_KEY
    )
    for tenant in ("team-a", "team-b"):
        created(http.post("/tenants", json={"name": tenant}, headers=platform_admin.headers))
    callers: dict[str, Caller] = {ANONYMOUS: Caller(ANONYMOUS), PLATFORM_ADMIN: platform_admin}
    for role in MEMBER_ROLES:
        callers[role], _ = make_member(http, platform_admin, "team-a", role, name=f"{role}-a")
    callers[RUNNER], _ = make_member(
        http, platform_admin, platform_tenant, RUNNER, name="runner-sec", kind="service"
    )
    home_a = Home(http, "team-a", owner=callers["author"], admin=callers["admin"])
    home_platform = Home(http, platform_tenant, owner=platform_admin, admin=platform_admin)
    author_b, _ = make_member(http, platform_admin, "team-b", "author", name="author-b")
    admin_b, _ = make_member(http, platform_admin, "team-b", "admin", name="admin-b")
    theirs = Home(http, "team-b", owner=author_b, admin=admin_b)
    for home in (home_a, home_platform, theirs):
        home.make_things()
    homes = dict.fromkeys((ANONYMOUS, *MEMBER_ROLES), home_a)
    homes |= {PLATFORM_ADMIN: home_platform, RUNNER: home_platform}
    return World(http, callers, homes, theirs, author_b)
