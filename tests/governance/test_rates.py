"""Rate limits: token buckets in memory (a fake clock) and in a real Redis, the guard that
turns a request into buckets, and the settings that configure them."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from limit_graph.core.errors import ConfigError, RateLimited
from limit_graph.core.governance_settings import GovernanceSettings, RateRule, RouteRates
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import free_port
from limit_graph.governance.auth import Principal
from limit_graph.governance.policy.schema import Action
from limit_graph.governance.rates import (
    Bucket,
    MemoryRateLimiter,
    RateGuard,
    RedisRateLimiter,
    build_limiter,
    route_class_of,
)
from limit_graph.governance.rates.redis import RETRY_EVERY_S
from tests.fixtures.clock import FakeClock
from tests.fixtures.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, used by name below


def bucket(name: str, rate: float = 2.0, burst: int = 3) -> Bucket:
    return Bucket(f"rate:read:principal:{name}", rate, burst, "rate:read:principal")


# --- memory ----------------------------------------------------------------------------


async def test_a_new_bucket_allows_its_burst_then_refuses_with_the_wait() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    b = bucket("p", rate=2.0, burst=3)
    assert [(await limiter.check([b])).allowed for _ in range(3)] == [True, True, True]
    refused = await limiter.check([b])
    assert not refused.allowed and refused.outcome == "limited"
    assert refused.bucket == b
    assert refused.retry_after_s == pytest.approx(0.5)  # one token at 2 a second


async def test_tokens_come_back_at_the_rate_and_never_past_the_burst() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    b = bucket("p", rate=2.0, burst=3)
    for _ in range(3):
        await limiter.check([b])
    clock.advance(0.25)  # half a token
    half = await limiter.check([b])
    assert not half.allowed and half.retry_after_s == pytest.approx(0.25)
    clock.advance(0.25)
    assert (await limiter.check([b])).allowed
    assert not (await limiter.check([b])).allowed
    clock.advance(3600)  # an hour idle refills to the burst, not to 7200 tokens
    allowed = [(await limiter.check([b])).allowed for _ in range(4)]
    assert allowed == [True, True, True, False]


async def test_a_request_takes_from_every_bucket_or_from_none() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    roomy, tight = bucket("roomy", burst=10), bucket("tight", burst=1)
    assert (await limiter.check([roomy, tight])).allowed
    refused = await limiter.check([roomy, tight])
    assert not refused.allowed and refused.bucket == tight
    # the refusal took nothing from roomy: 9 left of 10
    assert [(await limiter.check([roomy])).allowed for _ in range(10)] == [True] * 9 + [False]


async def test_the_longest_wait_is_the_one_answered() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    fast, slow = bucket("fast", rate=10.0, burst=1), bucket("slow", rate=0.1, burst=1)
    await limiter.check([fast, slow])
    refused = await limiter.check([fast, slow])
    assert refused.bucket == slow and refused.retry_after_s == pytest.approx(10.0)


async def test_idle_buckets_are_dropped_and_memory_stays_bounded() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock, max_buckets=50)
    for i in range(200):
        await limiter.check([bucket(f"p{i}", rate=1.0, burst=5)])
    assert len(limiter) == 50  # the least recently used went first
    clock.advance(10)  # every bucket has refilled: the same as none
    await limiter.check([bucket("late")])
    assert len(limiter) == 1


# --- the guard -------------------------------------------------------------------------


async def test_with_no_rates_a_check_returns_without_touching_the_limiter() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    decisions: list[tuple[str, str]] = []
    guard = RateGuard(
        limiter,
        {"read": RouteRates(per_key=RateRule(rate=1, burst=1))},
        observe=lambda rc, outcome: decisions.append((rc, outcome)),
    )
    for _ in range(5):
        await guard.check("execute", key="k", principal="p", tenant="t")
    await guard.check("read")  # a class with rates, but no id of a configured dimension
    assert len(limiter) == 0 and decisions == []
    assert not RateGuard.unlimited().configured


async def test_each_dimension_counts_on_its_own_and_the_refusal_names_its_bucket() -> None:
    decisions: list[tuple[str, str]] = []
    guard = RateGuard(
        MemoryRateLimiter(clock=FakeClock()),
        {
            "execute": RouteRates(
                per_principal=RateRule(rate=0.5, burst=2), per_tenant=RateRule(rate=1, burst=3)
            )
        },
        observe=lambda rc, outcome: decisions.append((rc, outcome)),
    )
    await guard.check("execute", principal="alice", tenant="acme")
    await guard.check("execute", principal="alice", tenant="acme")
    with pytest.raises(RateLimited) as alice:
        await guard.check("execute", principal="alice", tenant="acme")
    assert alice.value.policy_ids == ["rate:execute:principal"]
    assert alice.value.retry_after_s == pytest.approx(2.0)
    assert "0.5 execute requests a second per principal (burst 2)" in alice.value.detail
    await guard.check("execute", principal="bob", tenant="acme")  # bob's bucket is his own
    with pytest.raises(RateLimited) as tenant:  # but acme's 3 are used: 2 by alice, 1 by bob
        await guard.check("execute", principal="carol", tenant="acme")
    assert tenant.value.policy_ids == ["rate:execute:tenant"]
    await guard.check("execute", principal="dave", tenant="globex")
    outcomes = [outcome for _, outcome in decisions]
    assert outcomes == ["allowed", "allowed", "limited", "allowed", "limited", "allowed"]


async def test_a_caller_is_counted_by_credential_principal_and_tenant() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    one = RateRule(rate=1, burst=1)
    guard = RateGuard(limiter, {"read": RouteRates(per_key=one)})
    pid = uuid.uuid4()
    first = Principal(name="alice", tenant="acme", id=pid, credential_id="key-1")
    second = Principal(name="alice", tenant="acme", id=pid, credential_id="key-2")
    await guard.check_caller("read", first)
    await guard.check_caller("read", second)  # another key of hers: a bucket of its own
    with pytest.raises(RateLimited) as caught:
        await guard.check_caller("read", first)
    assert caught.value.policy_ids == ["rate:read:key"]
    settings_key = Principal(name="admin", tenant="default", id=None, via="key")
    await guard.check_caller("read", settings_key)  # no key id: counted as its principal's
    with pytest.raises(RateLimited):
        await guard.check_caller("read", settings_key)
    long_jti = Principal(name="x", tenant="t", credential_id="j" * 10_000)
    await guard.check_caller("read", long_jti)
    assert all(len(key) < 200 for key in limiter._buckets)


def test_every_action_has_a_route_class() -> None:
    classes = {action: route_class_of(action) for action in Action}
    assert {a for a, rc in classes.items() if rc == "execute"} == {
        Action.AGENT_EXECUTE,
        Action.SESSION_EXECUTE,
        Action.WORKFLOW_RUN,
    }
    assert classes[Action.SESSION_READ] == classes[Action.SESSION_LIST] == "read"
    assert classes[Action.SESSION_CREATE] == classes[Action.POLICY_WRITE] == "write"
    assert set(classes.values()) <= {"execute", "read", "write"}  # auth: the token route


# --- Redis -----------------------------------------------------------------------------


async def test_redis_buckets_are_atomic_shared_and_expire(redis_server: RedisServer) -> None:
    first = RedisRateLimiter(redis_server.url)
    second = RedisRateLimiter(redis_server.url)  # another API process's client
    await first.start()
    await second.start()
    raw = Redis.from_url(redis_server.url)
    try:
        slow = Bucket("rate:write:tenant:acme", 0.001, 3, "rate:write:tenant")
        roomy = Bucket("rate:write:principal:alice", 0.001, 100, "rate:write:principal")
        verdicts = await asyncio.gather(
            *(each.check([slow, roomy]) for each in [first, second] * 3)
        )
        assert sorted(v.allowed for v in verdicts) == [False] * 3 + [True] * 3
        refused = next(v for v in verdicts if not v.allowed)
        assert refused.bucket == slow and 999 < refused.retry_after_s <= 1000
        assert refused.outcome == "limited"
        tokens = float(await raw.hget(roomy.key, "t"))  # type: ignore[arg-type]
        assert tokens == pytest.approx(97, abs=0.01)  # refusals took nothing from it
        assert await raw.pttl(slow.key) > 0  # dropped once it would have refilled
        await raw.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
        assert not (await first.check([slow])).allowed
        assert (await first.check([roomy])).allowed
        assert first.state == second.state == "ok"
    finally:
        await raw.aclose()
        await first.close()
        await second.close()


async def test_redis_refills_on_its_own_clock_within_the_wait_it_gave(
    redis_server: RedisServer,
) -> None:
    limiter = RedisRateLimiter(redis_server.url)
    b = Bucket(f"rate:read:key:{uuid.uuid4()}", 20.0, 1, "rate:read:key")
    try:
        assert (await limiter.check([b])).allowed
        refused = await limiter.check([b])
        assert not refused.allowed and 0 < refused.retry_after_s <= 0.05
        # Redis's clock, which no test can move: wait what the refusal said, no more
        await asyncio.sleep(refused.retry_after_s + 0.002)
        assert (await limiter.check([b])).allowed
    finally:
        await limiter.close()


@pytest.mark.parametrize("fail_open", [True, False])
async def test_redis_stopped_follows_fail_open_and_recovers(
    redis_server: RedisServer, fail_open: bool
) -> None:
    clock = FakeClock()
    limiter = RedisRateLimiter(redis_server.url, fail_open=fail_open, clock=clock)
    await limiter.start()
    b = Bucket(f"rate:execute:principal:{uuid.uuid4()}", 0.001, 1, "rate:execute:principal")
    try:
        assert (await limiter.check([b])).allowed
        redis_server.stop()
        down = await limiter.check([b])
        mode = "open" if fail_open else "closed"
        assert limiter.state == f"degraded: redis unreachable, failing {mode}"
        assert down.degraded and down.allowed is fail_open
        assert down.outcome == f"failed_{mode}"
        assert down.retry_after_s == (0.0 if fail_open else RETRY_EVERY_S)
        clock.advance(RETRY_EVERY_S / 2)  # not tried again yet: answered without waiting
        again = await limiter.check([b])
        assert again.degraded and again.retry_after_s == (0 if fail_open else RETRY_EVERY_S / 2)
        redis_server.start()  # empty: the bucket starts full again
        assert await limiter.status() != "ok"  # not due for a try yet
        clock.advance(RETRY_EVERY_S)
        assert await limiter.status() == "ok"
        assert (await limiter.check([b])).outcome == "allowed"
        assert (await limiter.check([b])).outcome == "limited"
    finally:
        await limiter.close()


async def test_a_redis_that_hangs_counts_as_unreachable(redis_server: RedisServer) -> None:
    limiter = RedisRateLimiter(redis_server.url, fail_open=False, timeout_s=0.2)
    b = Bucket(f"rate:read:tenant:{uuid.uuid4()}", 1.0, 5, "rate:read:tenant")
    assert redis_server.process is not None
    pid = redis_server.process.pid
    try:
        assert (await limiter.check([b])).allowed
        os.kill(pid, signal.SIGSTOP)
        try:
            hung = await limiter.check([b])
        finally:
            os.kill(pid, signal.SIGCONT)
        assert hung.degraded and not hung.allowed
        assert limiter.state == "degraded: redis unreachable, failing closed"
    finally:
        await limiter.close()


async def test_a_limiter_started_while_redis_is_down_starts_degraded() -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", fail_open=True)
    await limiter.start()  # no raise: the platform starts, degraded
    try:
        assert limiter.state == "degraded: redis unreachable, failing open"
        verdict = await limiter.check([bucket("p")])
        assert verdict.allowed and verdict.degraded
    finally:
        await limiter.close()


def test_redis_is_used_only_when_set_and_some_rate_is_configured() -> None:
    url = "redis://127.0.0.1:6379/0"
    some = {"read": RouteRates(per_tenant=RateRule(rate=5, burst=5))}
    assert isinstance(
        build_limiter(GovernanceSettings(redis_url=url, rates=some)), RedisRateLimiter
    )
    assert isinstance(build_limiter(GovernanceSettings(redis_url=url)), MemoryRateLimiter)
    assert isinstance(build_limiter(GovernanceSettings(rates=some)), MemoryRateLimiter)


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ("{ rate = 0, burst = 5 }", "governance.rates.execute.per_principal.rate"),
        ("{ rate = -2, burst = 5 }", "governance.rates.execute.per_principal.rate"),
        ("{ rate = 5, burst = 0 }", "governance.rates.execute.per_principal.burst"),
        ("{ rate = inf, burst = 5 }", "governance.rates.execute.per_principal.rate"),
        ("{ rate = 5 }", "governance.rates.execute.per_principal.burst"),
    ],
)
def test_a_bad_rate_is_a_config_error_naming_the_key(tmp_path: Path, rule: str, where: str) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(f"[governance.rates.execute]\nper_principal = {rule}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert where in caught.value.detail
    assert [e["loc"] for e in caught.value.errors] == [where]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[governance.rates.bulk]\nper_key = { rate = 1, burst = 1 }\n", "governance.rates.bulk"),
        ("[governance.rates.read]\nper_host = { rate = 1, burst = 1 }\n", "per_host"),
        ('[governance]\nredis_url = "http://127.0.0.1:6379"\n', "governance.redis_url"),
        ("[governance]\nredis_timeout_s = 0\n", "governance.redis_timeout_s"),
    ],
)
def test_other_bad_rate_settings_are_config_errors(tmp_path: Path, text: str, where: str) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_settings(config, environ={})


def test_rates_load_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "limit.toml"
    config.write_text(
        '[governance]\nredis_url = "redis://127.0.0.1:6379/0"\nfail_open = false\n'
        "[governance.rates.execute]\nper_principal = { rate = 20, burst = 40 }\n"
        "per_tenant = { rate = 100.5, burst = 200 }\n",
        encoding="utf-8",
    )
    governance = load_settings(config, environ={}).governance
    assert governance.fail_open is False
    assert governance.rates["execute"].per_principal == RateRule(rate=20, burst=40)
    assert governance.rates["execute"].per_tenant == RateRule(rate=100.5, burst=200)
    assert governance.rates["execute"].per_key is None
