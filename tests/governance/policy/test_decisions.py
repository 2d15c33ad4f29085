"""Deny wins on doubt: what Cedar cannot evaluate is a denial with its errors, and the
request helpers refuse requests the schema could never hold."""

from __future__ import annotations

import dataclasses

import pytest

from limit_graph.core.errors import PolicyDenied
from limit_graph.governance.policy import (
    Action,
    AuthzRequest,
    CedarEngine,
    Decision,
    EntityRef,
    PolicyEngine,
    agent_entity,
    agent_request,
    default_policies,
    request_for,
    session_request,
    tenant_entity,
    tenant_request,
)


def test_the_engine_is_a_policy_engine(engine: CedarEngine) -> None:
    assert isinstance(engine, PolicyEngine)


def test_an_engine_with_no_policies_denies_everything(people) -> None:
    empty = CedarEngine()
    assert empty.generation == 0
    decision = empty.decide(tenant_request(people.admin, Action.AUDIT_READ), tenant="acme")
    assert decision == Decision(False, ("default-deny",))


def test_each_load_moves_the_generation(people) -> None:
    engine = CedarEngine()
    engine.load(default_policies())
    engine.load(default_policies())
    assert engine.generation == 2
    assert engine.decide(tenant_request(people.admin, Action.AUDIT_READ), tenant="acme").allowed


def test_an_unknown_action_is_denied_not_raised(engine: CedarEngine, people) -> None:
    request = dataclasses.replace(
        tenant_request(people.admin, Action.AUDIT_READ), action="audit.erase"
    )
    decision = engine.decide(request, tenant="acme")
    assert decision == Decision(False, ("default-deny",), ("unknown action 'audit.erase'",))


def test_a_request_without_its_principal_is_denied(engine: CedarEngine, people) -> None:
    request = tenant_request(people.admin, Action.AUDIT_READ)
    bare = dataclasses.replace(request, entities=(tenant_entity("acme"),))
    decision = engine.decide(bare, tenant="acme")
    assert not decision.allowed and "holds no entity for its principal" in decision.errors[0]


def test_a_context_the_schema_does_not_hold_is_denied_with_cedars_error(
    engine: CedarEngine, people, cast
) -> None:
    alice = people.author
    request = agent_request(alice, "echo", cast.session_of(alice), backend="local")
    for context in ({**request.context, "target": 7}, {**request.context, "colour": "red"}):
        decision = engine.decide(dataclasses.replace(request, context=context), tenant="acme")
        assert decision.policy_ids == ("default-deny",) and not decision.allowed
        assert decision.errors and "context" in decision.errors[0]


def test_an_entity_the_schema_does_not_hold_is_denied(engine: CedarEngine, people) -> None:
    request = tenant_request(people.admin, Action.AUDIT_READ)
    caller, *rest = request.entities
    wrong = dataclasses.replace(caller, attrs={**caller.attrs, "platform_admin": "yes"})
    decision = engine.decide(dataclasses.replace(request, entities=(wrong, *rest)), tenant="acme")
    assert not decision.allowed and decision.policy_ids == ("default-deny",)
    (error,) = decision.errors
    assert error.startswith("failed to parse entities: entity does not conform to the schema")
    assert "platform_admin" in error and '"uid"' not in error


def test_a_missing_session_fails_closed_even_for_an_admin(
    engine: CedarEngine, people, cast
) -> None:
    """Cedar skips a policy that errors; a skipped forbid would let through what it
    guards, so any evaluation error denies and names the policies that failed."""
    ada = people.admin
    request = agent_request(ada, "echo", cast.session_of(ada), backend="local")
    without_session = tuple(entity for entity in request.entities if entity.ref.type != "Session")
    decision = engine.decide(dataclasses.replace(request, entities=without_session), tenant="acme")
    assert not decision.allowed
    assert "tenant-isolation" in decision.policy_ids
    assert decision.errors and all(
        "does not exist" in error or "Session" in error for error in decision.errors
    )


def test_a_permit_with_a_failing_forbid_beside_it_is_a_denial(people, cast) -> None:
    permit = cast.policy(
        "run-anything", 'permit(principal, action == Action::"agent.execute", resource);'
    )
    guard = cast.policy(
        "no-archived-runs",
        'forbid(principal, action == Action::"agent.execute", resource) '
        'when { context.session.state == "archived" };',
    )
    engine = CedarEngine([permit, guard])
    alice = people.author
    request = agent_request(alice, "echo", cast.session_of(alice), backend="local")
    assert engine.decide(request, tenant="acme") == Decision(True, ("run-anything",))
    without_session = tuple(entity for entity in request.entities if entity.ref.type != "Session")
    decision = engine.decide(dataclasses.replace(request, entities=without_session), tenant="acme")
    assert (decision.allowed, decision.policy_ids) == (False, ("no-archived-runs",))
    assert "no-archived-runs#0" in decision.errors[0]


def test_request_helpers_refuse_what_the_schema_cannot_hold(people, cast) -> None:
    alice = people.author
    with pytest.raises(ValueError, match="unknown action 'session.frobnicate'"):
        request_for(alice, "session.frobnicate", tenant_entity("acme"))
    with pytest.raises(ValueError, match="session.read applies to a Session"):
        request_for(alice, Action.SESSION_READ, tenant_entity("acme"))
    with pytest.raises(ValueError, match="two different entities"):
        request_for(
            alice,
            Action.AGENT_EXECUTE,
            agent_entity("echo"),
            entities=(dataclasses.replace(agent_entity("echo"), attrs={"name": "other"}),),
        )
    request = session_request(alice, Action.SESSION_READ, cast.session_of(alice))
    assert len({entity.ref for entity in request.entities}) == len(request.entities)


def test_a_denial_becomes_the_403_problem(engine: CedarEngine, people, cast) -> None:
    alice = people.author
    request = agent_request(
        alice, "echo", cast.session_of(alice), backend="quantum", target="ibm:ibm_torino"
    )
    decision = engine.decide(request, tenant="acme")
    with pytest.raises(PolicyDenied) as denied:
        decision.raise_if_denied("running echo on ibm:ibm_torino")
    assert denied.value.policy_ids == ["ibm-targets-need-operator"]
    assert denied.value.status_code == 403
    Decision(True, ("viewers-read",)).raise_if_denied("reading")


def test_a_request_is_plain_data(people) -> None:
    request = tenant_request(people.viewer, Action.AUDIT_READ)
    assert isinstance(request, AuthzRequest)
    assert request.principal == EntityRef("Principal", str(people.viewer.id))
    assert request.resource == EntityRef("Tenant", "acme")
