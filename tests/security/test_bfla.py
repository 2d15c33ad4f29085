"""Broken function-level authorization: every route, as every kind of caller, gets exactly
what the default policies give it.

:data:`EXPECTED` says, for each route of the OpenAPI document, which callers the default
policies (``governance/policy/defaults/*.cedar``) let through; every other authenticated
caller must get a 403 problem naming the deciding policies, and a caller with no
credentials a 401 with ``WWW-Authenticate`` (routes marked :data:`OPEN` need none).  A
route missing from the table fails, naming it.  Each caller acts on things of its own
tenant: team-a's members on a session team-a's author owns (so ownership counts, as it
does in the policies), the platform admin and the runner on the platform tenant's.
"Let through" means the answer is neither 401 nor 403 (nor a 5xx): a 404, 409 or 422
past the decision is the route's business, not authorization's.
"""

from __future__ import annotations

import httpx
import pytest

from limit_graph.api import create_app
from limit_graph.core.settings import load_settings
from tests.security.cast import ANONYMOUS, PLATFORM_ADMIN, ROLES, RUNNER, World
from tests.security.catalogue import Answer, Operation, document_of, operations, request_for, send

OPEN = frozenset(ROLES)
"""Needs no credentials: everyone, the anonymous caller included."""
READERS = frozenset({"viewer", "author", "operator", "admin", PLATFORM_ADMIN})
"""``viewers-read`` (every member role is in viewer; the platform admin is its tenant's admin)."""
MAKERS = frozenset({"author", "operator", "admin", PLATFORM_ADMIN})
"""``authors-create-sessions`` and ``admins-manage-tenant``."""
OWNERS = frozenset({"author", "admin", PLATFORM_ADMIN})
"""``authors-manage-sessions`` / ``authors-run-work`` on a session the author owns (the
operator is an author but not its owner, and holds no grant), and the tenant's admins."""
TENANT_ADMINS = frozenset({"admin", PLATFORM_ADMIN})
"""``admins-manage-tenant`` and ``platform-admin-identity``."""
PLATFORM = frozenset({PLATFORM_ADMIN})
"""``platform-admin-tenants``."""
RUNNERS = frozenset({RUNNER, PLATFORM_ADMIN})
"""``runners-claim-pools`` / ``runners-maintenance`` and ``platform-admin-runs-work``."""

EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/health"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("POST", "/auth/token"): OPEN,
    ("GET", "/.well-known/jwks.json"): OPEN,
    ("POST", "/sessions"): MAKERS,
    ("GET", "/sessions"): READERS,
    ("POST", "/sessions/restore"): MAKERS,
    ("GET", "/sessions/{session_id}"): READERS,
    ("PATCH", "/sessions/{session_id}"): OWNERS,
    ("DELETE", "/sessions/{session_id}"): OWNERS,
    ("POST", "/sessions/{session_id}/complete"): OWNERS,
    ("POST", "/sessions/{session_id}/archive"): OWNERS,
    ("GET", "/sessions/{session_id}/archive"): READERS,
    ("POST", "/sessions/{session_id}/execute"): OWNERS,
    ("GET", "/sessions/{session_id}/results"): READERS,
    ("GET", "/sessions/{session_id}/status"): READERS,
    ("GET", "/sessions/{session_id}/executions/{execution_id}"): READERS,
    ("POST", "/sessions/{session_id}/executions/{execution_id}/cancel"): OWNERS,
    ("POST", "/sessions/{session_id}/executions/{execution_id}/replay"): OWNERS,
    # agent.read, then session.execute on the execution's session
    ("POST", "/executions/{execution_id}/replay"): OWNERS,
    ("GET", "/sessions/{session_id}/events"): READERS,
    ("GET", "/sessions/{session_id}/provenance"): READERS,
    ("GET", "/sessions/{session_id}/lineage"): READERS,
    # session.list on the caller's tenant
    ("GET", "/lineage"): READERS,
    ("GET", "/sessions/{session_id}/workflows"): READERS,
    ("GET", "/sessions/{session_id}/workflows/{run_id}"): READERS,
    ("POST", "/sessions/{session_id}/workflows/{run_id}/cancel"): OWNERS,
    ("POST", "/sessions/{session_id}/workflows/{run_id}/resume"): OWNERS,
    ("GET", "/sessions/{session_id}/workflows/{run_id}/artifacts"): READERS,
    ("GET", "/sessions/{session_id}/workflows/{run_id}/artifacts/{name}"): READERS,
    ("POST", "/sessions/{session_id}/grants"): OWNERS,
    ("GET", "/sessions/{session_id}/grants"): READERS,
    ("DELETE", "/sessions/{session_id}/grants/{grant_id}"): OWNERS,
    ("GET", "/agents"): READERS,
    ("GET", "/agents/{agent_id}"): READERS,
    # agent.read, then session.execute on the session named in the body
    ("POST", "/agents/{agent_id}/execute"): OWNERS,
    ("GET", "/workflows/schema"): READERS,
    ("POST", "/workflows/validate"): READERS,
    ("POST", "/runners/claim"): RUNNERS,
    ("POST", "/runners/heartbeat"): RUNNERS,
    ("POST", "/runners/report"): RUNNERS,
    ("POST", "/maintenance/archive-idle"): RUNNERS,
    ("POST", "/maintenance/verify-ledger"): RUNNERS,
    ("POST", "/maintenance/expire-caches"): RUNNERS,
    ("POST", "/auth/signing-keys/rotate"): PLATFORM,
    ("GET", "/data-keys"): PLATFORM,
    ("POST", "/data-keys/rotate"): PLATFORM,
    ("GET", "/tenants"): PLATFORM,
    ("POST", "/tenants"): PLATFORM,
    ("POST", "/principals"): TENANT_ADMINS,
    ("GET", "/principals"): READERS,
    ("DELETE", "/principals/{principal_id}"): TENANT_ADMINS,
    ("POST", "/keys"): TENANT_ADMINS,
    ("GET", "/keys"): TENANT_ADMINS,
    ("DELETE", "/keys/{key_id}"): TENANT_ADMINS,
    ("GET", "/policies"): READERS,
    ("GET", "/policies/{policy_id}/versions"): READERS,
    ("PUT", "/policies/{policy_id}"): TENANT_ADMINS,
    ("GET", "/quotas"): READERS,
    # audit.read: the tenant's admins (admins-manage-tenant) and auditors
    ("GET", "/audit"): TENANT_ADMINS,
    ("GET", "/audit/export"): TENANT_ADMINS,
    # ledger.read: everyone who reads (readers-read-ledger-proofs)
    ("GET", "/audit/checkpoint"): READERS,
    ("GET", "/audit/proof/inclusion"): READERS,
    ("GET", "/audit/proof/consistency"): READERS,
    ("PUT", "/quotas/{scope}"): TENANT_ADMINS,
}

KNOWN_BUGS: dict[tuple[str, str], str] = {}
"""Routes whose answer to some caller is wrong today (outside these tests' files): the
test of each is a strict xfail naming the bug, so that it shows until it is fixed."""

PUBLISHED = operations(create_app(load_settings(environ={}, storage__type="memory")).openapi())


def _param(operation: Operation) -> object:
    reason = KNOWN_BUGS.get(operation.key)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(operation, id=str(operation), marks=marks)


def assert_let_through(operation: Operation, role: str, answer: Answer) -> None:
    assert answer.status not in (401, 403) and answer.status < 500, (
        f"{operation} as {role}: the default policies let it through, got {answer}"
    )


def assert_denied(operation: Operation, role: str, answer: Answer) -> None:
    assert answer.status == 403, f"{operation} as {role}: should be 403, got {answer}"
    problem = answer.problem()
    assert isinstance(problem.get("policy_ids"), list) and problem["policy_ids"], problem


def assert_unauthenticated(operation: Operation, answer: Answer) -> None:
    assert answer.status == 401, f"{operation} with no credentials: should be 401, got {answer}"
    assert answer.headers.get("www-authenticate", "").startswith("Bearer"), answer.headers
    answer.problem()


def test_the_table_names_exactly_the_published_routes(http: httpx.Client) -> None:
    served = {op.key for op in operations(document_of(http))}
    assert served == {op.key for op in PUBLISHED}, "the live document differs from the app's"
    stale = sorted(set(EXPECTED) - served)
    assert not stale, f"EXPECTED names routes that are not published: {stale}"
    for op in PUBLISHED:
        if op.key in EXPECTED:
            assert op.open == (EXPECTED[op.key] == OPEN), (
                f"{op}: the document says it needs {'no ' if op.open else ''}credentials"
            )
    assert set(KNOWN_BUGS) <= served


@pytest.mark.parametrize("operation", [_param(op) for op in PUBLISHED])
def test_each_caller_gets_what_the_default_policies_give_it(
    operation: Operation, world: World
) -> None:
    if operation.key not in EXPECTED:
        pytest.fail(
            f"{operation} is not in EXPECTED (tests/security/test_bfla.py): say which "
            "callers the default policies let through"
        )
    allowed = EXPECTED[operation.key]
    for role in ROLES:
        home = world.home(role)
        changes = operation.changes and role in allowed
        things = home.fresh(operation.parameters) if changes else home.shared()
        caller = world.callers[role]
        answer = send(world.http, request_for(operation, things), caller.headers)
        if role in allowed:
            assert_let_through(operation, role, answer)
        elif role == ANONYMOUS:
            assert_unauthenticated(operation, answer)
        else:
            assert_denied(operation, role, answer)
