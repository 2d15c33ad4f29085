"""Session grants, to a principal or a group, as the default policies read them; owners
matched by id, and by name for sessions made before identity existed."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from limit_graph.core.identity import GrantPermission
from limit_graph.core.models import SessionState
from limit_graph.governance.auth import Principal
from limit_graph.governance.policy import (
    Action,
    CedarEngine,
    Decision,
    EntityRef,
    agent_request,
    principal_entities,
    session_entity,
    session_request,
)

READ, EXECUTE, ADMIN = GrantPermission.READ, GrantPermission.EXECUTE, GrantPermission.ADMIN
MANAGE = [
    Action.SESSION_UPDATE,
    Action.SESSION_ARCHIVE,
    Action.SESSION_DELETE,
    Action.SESSION_GRANT,
]


def test_an_execute_grant_lets_an_author_run_but_not_manage(
    engine: CedarEngine, people, cast
) -> None:
    bob = cast.person("bob", "acme", "author")
    theirs = cast.session_of(people.admin)
    grants = [cast.grant(theirs, EXECUTE, to=bob)]
    assert not engine.decide(
        session_request(bob, Action.SESSION_EXECUTE, theirs), tenant="acme"
    ).allowed
    run = engine.decide(session_request(bob, Action.SESSION_EXECUTE, theirs, grants), tenant="acme")
    assert run == Decision(True, ("authors-run-work",))
    agent = agent_request(bob, "echo", theirs, grants, backend="local", target=None)
    assert engine.decide(agent, tenant="acme").allowed
    for action in MANAGE:
        assert not engine.decide(
            session_request(bob, action, theirs, grants), tenant="acme"
        ).allowed


def test_an_admin_grant_implies_execute_and_read(engine: CedarEngine, people, cast) -> None:
    bob = cast.person("bob", "acme", "author")
    theirs = cast.session_of(people.admin)
    grants = [cast.grant(theirs, ADMIN, to=bob)]
    for action in [*MANAGE, Action.SESSION_EXECUTE, Action.WORKFLOW_RUN, Action.SESSION_READ]:
        assert engine.decide(session_request(bob, action, theirs, grants), tenant="acme").allowed


def test_a_group_grant_reaches_the_group_members_only(engine: CedarEngine, people, cast) -> None:
    alice = people.author  # in group "ops"
    bob = cast.person("bob", "acme", "author", groups=frozenset({"dev"}))
    theirs = cast.session_of(people.admin)
    grants = [cast.grant(theirs, EXECUTE, group="ops")]
    assert engine.decide(
        session_request(alice, Action.SESSION_EXECUTE, theirs, grants), tenant="acme"
    ).allowed
    assert not engine.decide(
        session_request(bob, Action.SESSION_EXECUTE, theirs, grants), tenant="acme"
    ).allowed
    admin_grants = [cast.grant(theirs, ADMIN, group="ops")]
    delete = session_request(alice, Action.SESSION_DELETE, theirs, admin_grants)
    assert engine.decide(delete, tenant="acme") == Decision(True, ("authors-manage-sessions",))


def test_a_group_of_the_same_name_in_another_tenant_is_another_group(people, cast) -> None:
    theirs = cast.session_of(people.admin)
    entity = session_entity(theirs, [cast.grant(theirs, READ, group="ops")])
    assert entity.attrs["reader_groups"] == frozenset({EntityRef("Group", "acme/ops")})
    beta_ops = cast.person("bea", "beta", "author", groups=frozenset({"ops"}))
    assert EntityRef("Group", "beta/ops") in principal_entities(beta_ops)[0].parents


def test_grants_never_let_a_viewer_change_anything(engine: CedarEngine, people, cast) -> None:
    vera = people.viewer
    theirs = cast.session_of(people.admin)
    grants = [cast.grant(theirs, ADMIN, to=vera)]
    for action in [*MANAGE, Action.SESSION_EXECUTE]:
        decision = engine.decide(session_request(vera, action, theirs, grants), tenant="acme")
        assert decision == Decision(False, ("default-deny",))


def test_a_read_grant_lets_a_principal_with_no_role_read_that_session_only(
    engine: CedarEngine, people, cast
) -> None:
    nemo = people.nobody
    granted, other = cast.session_of(people.admin), cast.session_of(people.admin)
    grants = [cast.grant(granted, READ, to=nemo)]
    read = engine.decide(session_request(nemo, Action.SESSION_READ, granted, grants), tenant="acme")
    assert read == Decision(True, ("session-grants-read",))
    assert not engine.decide(
        session_request(nemo, Action.SESSION_READ, other), tenant="acme"
    ).allowed
    execute = session_request(nemo, Action.SESSION_EXECUTE, granted, grants)
    assert not engine.decide(execute, tenant="acme").allowed


def test_a_grant_of_another_session_is_refused_as_a_bug(people, cast) -> None:
    one, two = cast.session_of(people.admin), cast.session_of(people.admin)
    with pytest.raises(ValueError, match="is not on session"):
        session_entity(one, [cast.grant(two, READ, to=people.author)])


def test_an_owner_is_matched_by_id_when_the_session_records_one(
    engine: CedarEngine, people, cast
) -> None:
    alice = people.author
    mine = cast.session_of(alice)
    namesake = dataclasses.replace(cast.session_of(alice), owner_id=uuid.uuid4())
    assert engine.decide(session_request(alice, Action.SESSION_DELETE, mine), tenant="acme").allowed
    # Same name, another principal's id: not alice's session.
    assert not engine.decide(
        session_request(alice, Action.SESSION_DELETE, namesake), tenant="acme"
    ).allowed


def test_a_session_made_before_identity_is_its_named_owners(
    engine: CedarEngine, people, cast
) -> None:
    alice = people.author
    legacy = cast.legacy_session("alice")
    assert getattr(legacy, "owner_id", None) is None
    entity = session_entity(legacy, [], caller=alice)
    assert entity.attrs["owner"] == EntityRef("Principal", str(alice.id))
    assert engine.decide(
        session_request(alice, Action.SESSION_ARCHIVE, legacy), tenant="acme"
    ).allowed
    bob = cast.person("bob", "acme", "author")
    assert not engine.decide(
        session_request(bob, Action.SESSION_ARCHIVE, legacy), tenant="acme"
    ).allowed
    # A key of the settings with no record is matched by its tenant-qualified name.
    keyholder = Principal("alice", "acme", frozenset({"author"}))
    assert session_entity(legacy, []).attrs["owner"] == EntityRef("Principal", "name:acme/alice")
    assert engine.decide(
        session_request(keyholder, Action.SESSION_ARCHIVE, legacy), tenant="acme"
    ).allowed


def test_a_sessions_state_reaches_the_policies(people, cast) -> None:
    archived = cast.session_of(people.author, state=SessionState.ARCHIVED)
    assert session_entity(archived, []).attrs["state"] == "archived"
