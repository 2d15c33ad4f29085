"""A policy is checked before it is stored: each problem one clear ``InvalidInput`` item;
a set that does not validate is refused whole and the set in force stays."""

from __future__ import annotations

import pytest

from limit_graph.core.errors import InvalidInput
from limit_graph.governance.policy import (
    Action,
    CedarEngine,
    Decision,
    default_policies,
    tenant_request,
)


def problems(text: str, *, policy_id: str = "mine", tenant: str | None = None) -> list[dict]:
    with pytest.raises(InvalidInput) as raised:
        CedarEngine().validate(text, policy_id=policy_id, tenant=tenant)
    assert raised.value.status_code == 422
    assert raised.value.detail.startswith(f"policy {policy_id!r} is not valid: ")
    return raised.value.errors


def test_a_syntax_error_is_one_item_saying_what_cedar_saw() -> None:
    (item,) = problems("permit(principal, action, resource) when { resource.state == };")
    assert item == {
        "loc": ["policy", "mine"],
        "msg": "syntax error: unexpected token `}`",
        "type": "cedar_syntax",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("permit(principal is User, action, resource);", "unrecognized entity type `User`"),
        (
            'permit(principal, action, resource is Session) when { resource.colour == "red" };',
            "attribute `colour` on entity type `Session` not found",
        ),
        (
            'permit(principal, action == Action::"session.read", resource is Session) '
            "when { resource.state == 3 };",
            "the types Long and String are not compatible",
        ),
        (
            'permit(principal, action == Action::"session.frobnicate", resource);',
            "unrecognized action",
        ),
    ],
    ids=["unknown-entity-type", "unknown-attribute", "wrong-type", "unknown-action"],
)
def test_schema_problems_name_the_statement(text: str, message: str) -> None:
    found = problems(text)
    assert any(message in item["msg"] for item in found), found
    assert all(item["loc"] == ["policy", "mine", "statement", 0] for item in found)
    assert {item["type"] for item in found} == {"cedar_validation"}
    assert not any(item["msg"].startswith("for policy") for item in found)


def test_each_bad_statement_is_its_own_item() -> None:
    text = (
        "permit(principal, action, resource);\n"
        'permit(principal, action == Action::"session.read", resource) when { resource.nope };\n'
        'forbid(principal, action == Action::"agent.execute", resource)\n'
        "when { context.colour == 1 };"
    )
    found = problems(text)
    assert sorted({item["loc"][-1] for item in found}) == [1, 2]


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("   \n// nothing\n", "empty", "holds no statement"),
        (
            '@id("theirs") permit(principal, action, resource);',
            "policy_rule",
            "names another policy",
        ),
        ("permit(principal == ?principal, action, resource);", "policy_rule", "templates"),
    ],
)
def test_our_rules_for_stored_policies(text: str, kind: str, message: str) -> None:
    found = problems(text)
    assert [item["type"] for item in found][:1] == [kind]
    assert message in found[0]["msg"]


def test_a_bad_policy_id_is_refused() -> None:
    (item,) = problems("permit(principal, action, resource);", policy_id="Not An Id")
    assert item["loc"] == ["policy_id"] and "policy name" in item["msg"]


def test_a_tenant_may_not_permit_platform_actions() -> None:
    text = (
        'permit(principal, action in [Action::"tenant.create", Action::"session.read"], resource);'
    )
    (item,) = problems(text, tenant="acme")
    assert item["msg"] == "a tenant's policy cannot permit platform actions: tenant.create"
    CedarEngine().validate(text, policy_id="mine")  # a platform policy may
    forbid = 'forbid(principal, action == Action::"runner.claim", resource);'
    CedarEngine().validate(forbid, policy_id="mine", tenant="acme")  # and a tenant may forbid


def test_a_matching_id_annotation_is_fine() -> None:
    CedarEngine().validate('@id("mine") permit(principal, action, resource);', policy_id="mine")


def test_a_set_that_does_not_validate_is_refused_whole_and_the_old_one_stays(people, cast) -> None:
    engine = CedarEngine(default_policies())
    before = engine.generation
    viewer = people.viewer
    request = tenant_request(viewer, Action.POLICY_READ)
    bad = [
        *default_policies(),
        cast.policy("loose", "permit(principal, action, resource);", tenant="acme"),
        cast.policy(
            "broken", "permit(principal, action, resource) when { principal.nope };", tenant="acme"
        ),
        cast.policy("unparsable", "permit(", tenant="beta"),
    ]
    with pytest.raises(InvalidInput) as raised:
        engine.load(bad)
    assert {(item["tenant"], item["loc"][1]) for item in raised.value.errors} == {
        ("acme", "broken"),
        ("beta", "unparsable"),
    }
    assert "the policies in force are unchanged" in raised.value.detail
    assert engine.generation == before
    assert engine.decide(request, tenant="acme") == Decision(True, ("viewers-read",))
    assert not engine.decide(tenant_request(viewer, Action.POLICY_WRITE), tenant="acme").allowed


def test_a_tenant_policy_may_not_take_a_platform_policys_id(cast) -> None:
    engine = CedarEngine()
    clash = cast.policy("tenant-isolation", "forbid(principal, action, resource);", tenant="acme")
    with pytest.raises(InvalidInput, match="ambiguous"):
        engine.load([*default_policies(), clash])
    assert engine.generation == 0


def test_the_newest_version_counts_and_deleted_policies_are_gone(people, cast) -> None:
    viewer = people.viewer
    first = cast.policy(
        "viewers-write",
        'permit(principal, action == Action::"policy.write", resource);',
        tenant="acme",
    )
    second = cast.policy(
        "viewers-write",
        'forbid(principal, action == Action::"policy.read", resource);',
        tenant="acme",
        version=2,
    )
    engine = CedarEngine([*default_policies(), second, first])
    assert engine.decide(tenant_request(viewer, Action.POLICY_READ), tenant="acme") == Decision(
        False, ("viewers-write",)
    )
    assert not engine.decide(tenant_request(viewer, Action.POLICY_WRITE), tenant="acme").allowed
    gone = second.model_copy(update={"version": 3, "deleted": True})
    engine.load([*default_policies(), first, second, gone])
    assert engine.decide(tenant_request(viewer, Action.POLICY_READ), tenant="acme").allowed
    assert {record.id for record in engine.records} == {record.id for record in default_policies()}
