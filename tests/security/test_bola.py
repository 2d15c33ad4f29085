"""Broken object-level authorization: another tenant's objects are unknown, not forbidden.

For every route of the OpenAPI document with an id in its path, each caller of team-a
(viewer, author, operator, admin), the platform admin and a runner name team-b's real
objects -- a session with an execution and a finished workflow run, its artifact, a
grant, a principal, a key, a policy of team-b's own -- first all of them, then each
nested id under a parent of the caller's own (team-b's execution in team-a's session).
The answer must be a 404, the same as for an id that exists nowhere; a caller that may
not do the action at all is refused (403) before anything is looked up, for any id, so
its answer is the same 403 it gets for an id of nothing; and a policy id is a name
within the caller's own tenant, so ``PUT /policies/{id}`` with team-b's name writes a
policy of team-a's, as it would for any new name.  The one exception, by design
(``platform-admin-identity``), is the platform admin's reach into every tenant's
principals and keys, to make each tenant's first admin.

Ids travel in bodies and queries too (a session to run an agent in, a principal to make
a key for): :data:`REFERENCES` names each such route, and the same holds there.  At the
end team-b's objects are read back: nothing of them changed.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from limit_graph.api import create_app
from limit_graph.core.settings import load_settings
from tests.security.cast import MEMBER_ROLES, PLATFORM_ADMIN, RUNNER, WORKFLOW, Things, World
from tests.security.catalogue import (
    TENANT_OBJECTS,
    Answer,
    Body,
    Operation,
    Request,
    operations,
    request_for,
    send,
)

CALLERS = (*MEMBER_ROLES, PLATFORM_ADMIN, RUNNER)
REACHES_BY_DESIGN = {("DELETE", "/principals/{principal_id}"), ("DELETE", "/keys/{key_id}")}
"""``platform-admin-identity``: the platform admin manages every tenant's principals and keys."""

PUBLISHED = operations(create_app(load_settings(environ={}, storage__type="memory")).openapi())
WITH_IDS = [op for op in PUBLISHED if TENANT_OBJECTS & set(op.parameters)]


def ghost_values() -> dict[str, str]:
    """Ids of nothing: what another tenant's objects must be indistinguishable from."""
    return {
        **{name: str(uuid.uuid4()) for name in TENANT_OBJECTS},
        "key_id": secrets.token_hex(6),
        "policy_id": f"ghost-{secrets.token_hex(4)}",
        "scope": f"principal:{uuid.uuid4()}",
    }


def variants(operation: Operation) -> list[tuple[str, ...]]:
    """Which of the path's ids are team-b's: all of them, then each nested one alone."""
    ids = tuple(p for p in operation.parameters if p in TENANT_OBJECTS)
    return [ids] + [(nested,) for nested in ids[1:]]


def assert_unknown(
    operation: Operation, what: str, answer: Answer, ghost: Answer, world: World
) -> None:
    if ghost.status == 403:  # refused the action outright, before any lookup
        expected = 403
    elif operation.method == "PUT":  # a name of the caller's own tenant: it writes its own
        expected = ghost.status
    else:
        expected = 404
    assert ghost.status == expected, f"{what}, for an id of nothing: {ghost}"
    assert answer.status == expected, f"{what}: {answer} (for an id of nothing: {ghost})"
    if expected >= 400:
        answer.problem()
    for secret_of_b in ("team-b", world.member_of_b.name or "", "author-b", "admin-b"):
        assert secret_of_b not in answer.text, f"{what} names {secret_of_b}: {answer}"


@pytest.mark.parametrize("operation", WITH_IDS, ids=str)
def test_another_tenants_objects_are_unknown_by_path(operation: Operation, world: World) -> None:
    theirs = world.theirs
    for role in CALLERS:
        caller = world.callers[role]
        mine = world.home(role).shared()
        for taken in variants(operation):
            if role == PLATFORM_ADMIN and operation.key in REACHES_BY_DESIGN:
                target = theirs.fresh(operation.parameters).values()
                request = request_for(operation, mine, values=target)
                reached = send(world.http, request, caller.headers)
                assert reached.status == 204, f"{operation} as the platform admin: {reached}"
                continue
            target = theirs.shared().values()
            request = request_for(operation, mine, values={p: target[p] for p in taken})
            ghost = ghost_values()
            nothing = request_for(operation, mine, values={p: ghost[p] for p in taken})
            what = f"{operation} as {role} with team-b's {', '.join(taken)}"
            assert_unknown(
                operation,
                what,
                send(world.http, request, caller.headers),
                send(world.http, nothing, caller.headers),
                world,
            )


Reference = Callable[[Things, Things], Request]

REFERENCES: dict[str, tuple[tuple[str, ...], Reference]] = {
    "an agent run in their session": (
        ("author", "admin"),
        lambda _, theirs: Request(
            "POST",
            "/agents/echo/execute",
            Body({"inputs": {"n": 1}, "session_id": theirs.session_id}),
        ),
    ),
    "a workflow validated against their session": (
        MEMBER_ROLES,
        lambda _, theirs: Request(
            "POST",
            "/workflows/validate",
            Body({"workflow": WORKFLOW, "session_id": theirs.session_id}),
        ),
    ),
    "a grant on my session to their principal": (
        ("author", "admin"),
        lambda mine, theirs: Request(
            "POST",
            f"/sessions/{mine.session_id}/grants",
            Body({"principal_id": theirs.principal_id, "permission": "read"}),
        ),
    ),
    "a key for their principal": (
        ("admin",),
        lambda _, theirs: Request("POST", "/keys", Body({"principal_id": theirs.principal_id})),
    ),
    "the keys of their principal": (
        ("admin",),
        lambda _, theirs: Request("GET", "/keys", params={"principal_id": theirs.principal_id}),
    ),
    "the principals of their tenant": (
        MEMBER_ROLES,
        lambda _, theirs: Request("GET", "/principals", params={"tenant": theirs.tenant}),
    ),
    "a principal made in their tenant": (
        ("admin",),
        lambda _, theirs: Request(
            "POST",
            "/principals",
            Body({"name": "intruder", "tenant": theirs.tenant, "kind": "user", "roles": []}),
        ),
    ),
}
"""Routes that take another object's id in the body or the query, and who may call them."""


@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_another_tenants_objects_are_unknown_by_reference(reference: str, world: World) -> None:
    roles, build = REFERENCES[reference]
    theirs = world.theirs.shared()
    for role in roles:
        answer = send(
            world.http, build(world.home(role).shared(), theirs), world.callers[role].headers
        )
        assert answer.status == 404, f"{reference} as {role}: {answer}"
        answer.problem()


def test_nothing_of_theirs_changed(world: World) -> None:
    """Run last in this module: every call above left team-b's objects as they were."""
    http, theirs = world.http, world.theirs.shared()
    owner, admin = world.theirs.owner.headers, world.theirs.admin.headers

    def read(path: str, headers: dict[str, str], **params: Any) -> Any:
        response = http.get(path, headers=headers, params=params)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    session = f"/sessions/{theirs.session_id}"
    assert read(session, owner)["state"] == "active"
    assert read(f"{session}/executions/{theirs.execution_id}", owner)["state"] == "succeeded"
    assert read(f"{session}/workflows/{theirs.run_id}", owner)["state"] == "succeeded"
    grants = read(f"{session}/grants", owner)["items"]
    assert [g["id"] for g in grants] == [theirs.grant_id]
    principals = read("/principals", admin)["items"]
    assert theirs.principal_id in {p["id"] for p in principals}
    keys = {k["id"]: k for k in read("/keys", admin, principal_id=theirs.principal_id)["items"]}
    assert keys[theirs.key_id]["revoked_at"] is None
    versions = read(f"/policies/{theirs.policy_id}/versions", admin)["items"]
    assert [v["version"] for v in versions] == [1]
    assert "intruder" not in {p["name"] for p in principals}
