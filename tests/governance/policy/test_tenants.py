"""A tenant's own policies apply to its own principals only, add to the platform's, and
never outrank the platform's forbids or reach platform actions."""

from __future__ import annotations

import pytest

from limit_graph.core.models import SessionState
from limit_graph.governance.policy import (
    Action,
    CedarEngine,
    Decision,
    agent_request,
    default_policies,
    platform_request,
    pool_request,
    session_request,
    tenant_request,
)

VIEWERS_RUN = """
permit (principal in Role::"viewer", action == Action::"session.execute", resource is Session);
"""
NO_PII = """
// Inputs classed as personal data never go to an agent in this tenant.
forbid (principal, action == Action::"agent.execute", resource)
when { context.input_classes.contains("pii") };
"""
NOTHING_IN_ARCHIVES = """
forbid (principal, action, resource is Session) when { resource.state == "archived" };
"""
EVERYTHING = "permit (principal, action, resource);"


@pytest.fixture
def tenant_engine(cast) -> CedarEngine:
    return CedarEngine(
        [
            *default_policies(),
            cast.policy("viewers-run", VIEWERS_RUN, tenant="acme"),
            cast.policy("no-pii", NO_PII, tenant="acme"),
            cast.policy("nothing-in-archives", NOTHING_IN_ARCHIVES, tenant="beta"),
        ]
    )


def test_a_tenant_permit_applies_to_that_tenants_principals_only(
    tenant_engine, people, cast
) -> None:
    acme_viewer = people.viewer
    beta_viewer = cast.person("vic", "beta", "viewer")
    acme_session = cast.session_of(people.admin)
    beta_session = cast.session_of(people.stranger)
    ran = tenant_engine.decide(
        session_request(acme_viewer, Action.SESSION_EXECUTE, acme_session), tenant="acme"
    )
    assert ran == Decision(True, ("viewers-run",))
    refused = tenant_engine.decide(
        session_request(beta_viewer, Action.SESSION_EXECUTE, beta_session), tenant="beta"
    )
    assert refused == Decision(False, ("default-deny",))


def test_a_tenant_forbid_restricts_its_own_principals_only(tenant_engine, people, cast) -> None:
    alice = people.author
    mine = cast.session_of(alice)
    pii = agent_request(alice, "echo", mine, backend="local", input_classes={"pii"})
    assert tenant_engine.decide(pii, tenant="acme") == Decision(False, ("no-pii",))
    plain = agent_request(alice, "echo", mine, backend="local", input_classes={"public"})
    assert tenant_engine.decide(plain, tenant="acme").allowed
    beta_author = cast.person("ben", "beta", "author")
    theirs = cast.session_of(beta_author)
    beta_pii = agent_request(beta_author, "echo", theirs, backend="local", input_classes={"pii"})
    assert tenant_engine.decide(beta_pii, tenant="beta") == Decision(True, ("authors-run-work",))


def test_a_tenant_policy_reads_the_sessions_state(tenant_engine, cast) -> None:
    ben = cast.person("ben", "beta", "author")
    archived = cast.session_of(ben, state=SessionState.ARCHIVED)
    active = cast.session_of(ben)
    read = session_request(ben, Action.SESSION_READ, archived)
    assert tenant_engine.decide(read, tenant="beta") == Decision(False, ("nothing-in-archives",))
    assert tenant_engine.decide(
        session_request(ben, Action.SESSION_READ, active), tenant="beta"
    ).allowed


def test_a_tenant_permit_cannot_outrank_the_platforms_forbids(people, cast) -> None:
    engine = CedarEngine(
        [*default_policies(), cast.policy("everything", EVERYTHING, tenant="acme")]
    )
    vera = people.viewer
    mine = cast.session_of(vera)
    ibm = agent_request(vera, "echo", mine, backend="quantum", target="ibm:ibm_torino")
    assert engine.decide(ibm, tenant="acme") == Decision(False, ("ibm-targets-need-operator",))
    beta = cast.session_of(people.stranger)
    assert engine.decide(
        session_request(vera, Action.SESSION_DELETE, beta), tenant="acme"
    ).policy_ids == ("tenant-isolation",)
    # Inside its own tenant the permit does reach everything the tenant owns.
    assert engine.decide(tenant_request(vera, Action.POLICY_WRITE), tenant="acme") == Decision(
        True, ("everything",)
    )


def test_an_unscoped_tenant_permit_does_not_reach_platform_actions(people, cast) -> None:
    """Platform actions stay the platform's: an unscoped tenant permit is bounded to the
    tenant's own actions when it is loaded, sliced or not."""
    for sliced in (True, False):
        engine = CedarEngine(
            [*default_policies(), cast.policy("everything", EVERYTHING, tenant="acme")],
            sliced=sliced,
        )
        vera = people.viewer
        for action in (
            Action.TENANT_CREATE,
            Action.TENANT_READ,
            Action.MAINTENANCE_RUN,
            Action.RUNNER_MANAGE,
        ):
            assert not engine.decide(platform_request(vera, action), tenant="acme").allowed, action
        assert not engine.decide(pool_request(vera, "quantum"), tenant="acme").allowed


def test_the_tenant_given_must_be_the_principals(tenant_engine, people, cast) -> None:
    """Tenant policies are picked by ``tenant``: a request naming another is refused."""
    beta_viewer = cast.person("vic", "beta", "viewer")
    theirs = cast.session_of(people.stranger)
    request = session_request(beta_viewer, Action.SESSION_EXECUTE, theirs)
    decision = tenant_engine.decide(request, tenant="acme")
    assert not decision.allowed and decision.policy_ids == ("default-deny",)
    assert "is not of tenant 'acme'" in decision.errors[0]
