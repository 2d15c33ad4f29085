"""Two API processes on one database: what one revokes, deletes or changes in policy, the
other refuses once its identity watch has polled (every 0.25 s: within the second
promised), though it had the key, the principal and the decision cached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from limit_graph.core.errors import AuthenticationRequired, PolicyDenied
from limit_graph.core.identity import PrincipalKind, Role
from limit_graph.core.models import SessionConfig
from limit_graph.core.settings import load_settings
from limit_graph.governance.policy.schema import Action
from limit_graph.governance.watch import POLL_S
from limit_graph.orchestration.platform import Platform
from tests.fixtures.waiting import eventually

ADMIN_KEY = "test-admin-key-0123456789abcdef"
SECRET = "test-auth-secret-0123456789abcdef"
KEK = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@asynccontextmanager
async def two_processes(url: str, tmp_path: Path) -> AsyncIterator[tuple[Platform, Platform]]:
    platforms = []
    for name in ("one", "two"):
        settings = load_settings(
            environ={},
            home=str(tmp_path / name),
            admin_api_key=ADMIN_KEY,
            auth__secret=SECRET,
            encryption__kek=KEK,  # one deployment: its processes share their keys
            storage__url=url,
        )
        platforms.append(await Platform.start(settings))
    try:
        yield platforms[0], platforms[1]
    finally:
        for platform in platforms:
            await platform.close()


async def polled(platform: Platform) -> None:
    """``platform``'s identity watch has polled since the change: now, unless its own
    poll (every :data:`POLL_S`) got there first.  That its caches were dropped is for
    the refusal that follows to show."""
    await platform.watch.check()
    assert platform.watch.epoch == await platform.watch.identity.identity_epoch()


async def test_a_key_revoked_on_one_is_refused_on_the_other(
    database_url: str, tmp_path: Path
) -> None:
    async with two_processes(database_url, tmp_path) as (one, two):
        admin = one.admin
        made = await one.identity.create_principal(
            admin, name="alice", tenant="default", kind=PrincipalKind.USER, roles=[Role.AUTHOR]
        )
        key = await one.identity.create_key(admin, made.record.id)
        kept = await one.identity.create_key(admin, made.record.id)
        assert (await two.authenticator.authenticate(key.key)).name == "alice"  # now cached

        await one.identity.revoke_key(admin, key.record.id)
        assert POLL_S <= 0.25

        async def refused() -> bool:
            try:
                await two.authenticator.authenticate(key.key)
            except AuthenticationRequired as exc:
                return "revoked" in exc.detail
            return False

        await eventually(refused, bool, timeout_s=5, every_s=0.05)
        assert (await two.authenticator.authenticate(kept.key)).name == "alice"

        await one.identity.delete_principal(admin, made.record.id)
        await polled(two)
        with pytest.raises(AuthenticationRequired, match="revoked|deleted"):
            await two.authenticator.authenticate(kept.key)


async def test_a_policy_written_on_one_decides_on_the_other(
    database_url: str, tmp_path: Path
) -> None:
    async with two_processes(database_url, tmp_path) as (one, two):
        session = await two.sessions.create(two.admin, SessionConfig())
        await two.authorizer.on_session(two.admin, Action.SESSION_DELETE, session)  # cached
        text = 'forbid (principal, action == Action::"session.delete", resource);'
        await one.policies.put(one.admin, "no-deletes", text=text)
        await polled(two)
        with pytest.raises(PolicyDenied) as denied:
            await two.authorizer.on_session(two.admin, Action.SESSION_DELETE, session)
        assert denied.value.policy_ids == ["no-deletes"]
