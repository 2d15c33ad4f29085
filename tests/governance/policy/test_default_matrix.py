"""The default policies decide every role x action x resource as docs/governance.md says.

The expected table is written out here from the description, not derived from the
policies, so that a policy that drifts from it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from limit_graph.governance.auth import Principal
from limit_graph.governance.policy import (
    ACTIONS,
    Action,
    AuthzRequest,
    CedarEngine,
    Decision,
    agent_request,
    platform_request,
    pool_request,
    session_request,
    tenant_request,
)

A = Action
VIEWER_TENANT = {
    A.SESSION_LIST,
    A.PRINCIPAL_READ,
    A.POLICY_READ,
    A.WORKFLOW_VALIDATE,
    A.QUOTA_READ,
}
ALL_TENANT = {action for action, kind in ACTIONS.items() if kind == "Tenant"}
ALL_SESSION = {action for action, kind in ACTIONS.items() if kind == "Session"}
RUN = {A.SESSION_EXECUTE, A.WORKFLOW_RUN}
MANAGE = {
    A.SESSION_UPDATE,
    A.SESSION_COMPLETE,
    A.SESSION_ARCHIVE,
    A.SESSION_DELETE,
    A.SESSION_GRANT,
}
IDENTITY = {A.PRINCIPAL_MANAGE, A.PRINCIPAL_READ, A.KEY_MANAGE}

# What each role may do, by resource: "own"/"other" are sessions of its tenant that it
# owns or that someone else owns; agent runs are in such a session on a target.
READS = {A.AGENT_READ, A.LEDGER_READ}
VIEWER = {
    "platform": READS,
    "tenant": VIEWER_TENANT,
    "own": {A.SESSION_READ},
    "other": {A.SESSION_READ},
}
# An auditor reads what a viewer reads, and its tenant's audit trail.
AUDITOR = {**VIEWER, "tenant": VIEWER_TENANT | {A.AUDIT_READ}}
AUTHOR = {
    "platform": READS,
    "tenant": VIEWER_TENANT | {A.SESSION_CREATE, A.SESSION_RESTORE},
    "own": {A.SESSION_READ} | RUN | MANAGE,
    "other": {A.SESSION_READ},
    "run-own-aer": {A.AGENT_EXECUTE},
}
OPERATOR = {
    **AUTHOR,
    "platform": READS | {A.RUNNER_MANAGE},
    "run-own-ibm": {A.AGENT_EXECUTE},
}
ADMIN = {
    "platform": READS | {A.RUNNER_MANAGE},
    "tenant": ALL_TENANT,
    "own": ALL_SESSION,
    "other": ALL_SESSION,
    **{
        run: {A.AGENT_EXECUTE}
        for run in ("run-own-aer", "run-own-ibm", "run-other-aer", "run-other-ibm")
    },
}
# The owner of a session holds admin on it, so whoever owns one reads it, whatever
# its roles (a role may have been taken away since, or the owner holds none).
OWNER_READS = {A.SESSION_READ}
PLATFORM_ADMIN = {
    "platform": {
        A.TENANT_CREATE,
        A.TENANT_READ,
        A.TENANT_QUOTA_WRITE,
        A.SIGNING_KEY_ROTATE,
        A.DATA_KEY_READ,
        A.DATA_KEY_ROTATE,
        A.MAINTENANCE_RUN,
        A.AUDIT_READ_ALL,
        A.LEDGER_READ,
    },
    "tenant": IDENTITY,
    "beta": IDENTITY,
    "own": OWNER_READS,
    "pool-quantum": {A.RUNNER_CLAIM},  # runners may carry its key (platform-admin-runs-work)
    "pool-remote": {A.RUNNER_CLAIM},
}
RUNNER = {
    "platform": {A.MAINTENANCE_RUN},
    "pool-quantum": {A.RUNNER_CLAIM},
    "pool-remote": {A.RUNNER_CLAIM},
    "own": OWNER_READS,
}
QUANTUM_RUNNER = {
    "platform": {A.MAINTENANCE_RUN},
    "pool-quantum": {A.RUNNER_CLAIM},
    "own": OWNER_READS,
}
NOBODY = {"own": OWNER_READS}


@dataclass(frozen=True)
class Case:
    where: str
    action: str
    request: AuthzRequest


def cases(who: Principal, someone_else: Principal, cast) -> Iterator[Case]:
    own = cast.session_of(who)
    other = cast.session_of(someone_else)
    beta = cast.session_of(cast.person("bea", "beta", "admin"))
    for action, kind in ACTIONS.items():
        if kind == "Platform":
            yield Case("platform", action, platform_request(who, action))
        elif kind == "Tenant":
            yield Case("tenant", action, tenant_request(who, action))
            yield Case("beta", action, tenant_request(who, action, "beta"))
        elif kind == "Session":
            for where, session in (("own", own), ("other", other), ("beta-session", beta)):
                yield Case(where, action, session_request(who, action, session))
        elif kind == "Pool":
            for pool in ("quantum", "remote"):
                yield Case(f"pool-{pool}", action, pool_request(who, pool))
        else:
            for where, session in (("own", own), ("other", other), ("beta", beta)):
                for family, target in (("aer", "aer"), ("ibm", "ibm:ibm_torino")):
                    request = agent_request(who, "echo", session, backend="quantum", target=target)
                    yield Case(f"run-{where}-{family}", action, request)


ROLES = {
    "viewer": VIEWER,
    "author": AUTHOR,
    "operator": OPERATOR,
    "admin": ADMIN,
    "auditor": AUDITOR,
    "platform_admin": PLATFORM_ADMIN,
    "runner": RUNNER,
    "quantum_runner": QUANTUM_RUNNER,
    "nobody": NOBODY,
}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_gets_exactly_what_the_defaults_describe(
    role: str, engine: CedarEngine, people, cast
) -> None:
    who: Principal = getattr(people, role)
    expected = ROLES[role]
    wrong = []
    for case in cases(who, people.viewer if who is not people.viewer else people.author, cast):
        decision = engine.decide(case.request, tenant=who.tenant)
        should = case.action in expected.get(case.where, set())
        if decision.allowed is not should or decision.errors:
            wrong.append((case.where, case.action, decision))
    assert wrong == []


@pytest.mark.parametrize("role", ["viewer", "author", "operator", "admin", "runner", "nobody"])
def test_nothing_of_another_tenant_is_reachable_and_isolation_says_so(
    role: str, engine: CedarEngine, people, cast
) -> None:
    who: Principal = getattr(people, role)
    for case in cases(who, people.author, cast):
        if case.where.startswith(("beta", "run-beta")):
            decision = engine.decide(case.request, tenant=who.tenant)
            assert not decision.allowed and not decision.errors, (case.where, case.action)
            # An ibm run there meets both forbids; Cedar names every one that matched.
            assert "tenant-isolation" in decision.policy_ids, (case.where, case.action)


def test_the_platform_admin_crosses_tenants_only_for_identity_work(
    engine: CedarEngine, people, cast
) -> None:
    root = people.platform_admin
    beta_session = cast.session_of(people.stranger)
    for action in IDENTITY:
        decision = engine.decide(tenant_request(root, action, "beta"), tenant=root.tenant)
        assert decision == Decision(True, ("platform-admin-identity",))
    for action in ALL_TENANT - IDENTITY:
        decision = engine.decide(tenant_request(root, action, "beta"), tenant=root.tenant)
        assert decision.policy_ids == ("tenant-isolation",)
    read = engine.decide(session_request(root, A.SESSION_READ, beta_session), tenant="default")
    assert read.policy_ids == ("tenant-isolation",)


def test_the_policies_that_decided_are_named(engine: CedarEngine, people, cast) -> None:
    alice, oscar = people.author, people.operator
    own = cast.session_of(alice)

    def decide(request: AuthzRequest, who: Principal = alice) -> Decision:
        return engine.decide(request, tenant=who.tenant)

    ibm = agent_request(alice, "echo", own, backend="quantum", target="ibm:ibm_torino")
    assert decide(ibm) == Decision(False, ("ibm-targets-need-operator",))
    aer = agent_request(alice, "echo", own, backend="quantum", target="aer")
    assert decide(aer) == Decision(True, ("authors-run-work",))
    assert decide(session_request(alice, A.SESSION_DELETE, own)).policy_ids == (
        "authors-manage-sessions",
    )
    # Two permits match an owner's read; both are named.
    assert decide(session_request(alice, A.SESSION_READ, own)).policy_ids == (
        "session-grants-read",
        "viewers-read",
    )
    runners = decide(platform_request(oscar, A.RUNNER_MANAGE), oscar)
    assert runners == Decision(True, ("operators-manage-runners",))
    viewer = people.viewer
    denied = decide(session_request(viewer, A.SESSION_EXECUTE, own), viewer)
    assert denied == Decision(False, ("default-deny",))
    claim = decide(pool_request(people.quantum_runner, "quantum"), people.quantum_runner)
    assert claim == Decision(True, ("runners-claim-pools",))


def test_an_ibm_target_is_refused_even_where_run_is_not_configured(
    engine: CedarEngine, people, cast
) -> None:
    """Authorization comes before validation: the target need not exist to be refused."""
    alice = people.author
    own = cast.session_of(alice)
    for target in ("ibm:no_such_device", "ibm"):
        request = agent_request(alice, "echo", own, backend="quantum", target=target)
        assert engine.decide(request, tenant="acme").policy_ids == ("ibm-targets-need-operator",)
    for target in ("fake:fake_brisbane", None, "ibmish:x"):
        request = agent_request(alice, "echo", own, backend="quantum", target=target)
        assert engine.decide(request, tenant="acme").allowed
