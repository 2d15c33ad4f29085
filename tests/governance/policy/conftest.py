"""The cast of the policy tests: one tenant's people, their sessions, and engines."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from limit_graph.core.identity import Grant, GrantPermission, PolicyRecord
from limit_graph.core.models import Session, SessionState
from limit_graph.governance.auth import Principal
from limit_graph.governance.policy import CedarEngine, default_policies
from tests.fixtures.records import T0, make_session


@dataclass(frozen=True)
class People:
    viewer: Principal
    author: Principal
    operator: Principal
    admin: Principal
    auditor: Principal
    runner: Principal
    quantum_runner: Principal
    nobody: Principal
    platform_admin: Principal
    stranger: Principal
    """An admin of tenant ``beta``."""


def person(name: str, tenant: str = "acme", *roles: str, **fields: object) -> Principal:
    return Principal(name, tenant, frozenset(roles), id=uuid.uuid4(), **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def people() -> People:
    return People(
        viewer=person("vera", "acme", "viewer"),
        author=person("alice", "acme", "author", groups=frozenset({"ops"})),
        operator=person("oscar", "acme", "operator"),
        admin=person("ada", "acme", "admin"),
        auditor=person("audrey", "acme", "auditor"),
        runner=person("runner-all", "acme", "runner", kind="service"),
        quantum_runner=person(
            "runner-q", "acme", "runner", kind="service", pools=frozenset({"quantum"})
        ),
        nobody=person("nemo", "acme"),
        platform_admin=person("root", "default", platform_admin=True),
        stranger=person("bea", "beta", "admin"),
    )


@dataclass(frozen=True)
class OwnedSession:
    """A session that records its owner by id (``Session.owner_id`` is on its way)."""

    id: uuid.UUID
    tenant: str
    owner: str
    state: str
    owner_id: uuid.UUID | None


def session_of(owner: Principal, *, state: SessionState = SessionState.ACTIVE) -> OwnedSession:
    return OwnedSession(uuid.uuid4(), owner.tenant, owner.name, state.value, owner.id)


def legacy_session(owner_name: str, tenant: str = "acme") -> Session:
    """A session made before identity existed: its owner is a name only."""
    return make_session(tenant=tenant).model_copy(update={"owner": owner_name})


def grant(
    session: OwnedSession | Session,
    permission: GrantPermission,
    *,
    to: Principal | None = None,
    group: str | None = None,
) -> Grant:
    return Grant(
        id=uuid.uuid4(),
        session_id=session.id,
        tenant=session.tenant,
        principal_id=to.id if to is not None else None,
        group=group,
        permission=permission,
        created_by="ada",
        created_at=T0,
    )


def policy(
    policy_id: str, text: str, *, tenant: str | None = None, version: int = 1
) -> PolicyRecord:
    return PolicyRecord(
        id=policy_id,
        version=version,
        tenant=tenant,
        text=text,
        updated_by="ada",
        updated_at=datetime(2026, 3, 1, tzinfo=UTC),
    )


@pytest.fixture(scope="session")
def engine() -> CedarEngine:
    """The default policies, loaded once (an engine is immutable between loads)."""
    return CedarEngine(default_policies())


@dataclass(frozen=True)
class Cast:
    """The builders above, handed to tests as one fixture (tests import no conftest)."""

    session_of: Callable[..., OwnedSession] = session_of
    legacy_session: Callable[..., Session] = legacy_session
    grant: Callable[..., Grant] = grant
    policy: Callable[..., PolicyRecord] = policy
    person: Callable[..., Principal] = person


@pytest.fixture(scope="session")
def cast() -> Cast:
    return Cast()
