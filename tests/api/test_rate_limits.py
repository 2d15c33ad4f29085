"""Rate limits over REST: a 429 problem with ``Retry-After``, each route class drawing from
its own buckets, and Redis shared by two real API processes -- then stopped under them."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from limit_graph.api import create_app
from limit_graph.api.problems import PROBLEM_TYPE_BASE
from limit_graph.core.identity import PrincipalKind, Role
from limit_graph.core.settings import load_settings
from limit_graph.orchestration.platform import Platform
from tests.fixtures.api import ADMIN_KEY, assert_problem
from tests.fixtures.cli import Server, clean_env, launch
from tests.fixtures.identity import make_member
from tests.fixtures.live import free_port
from tests.fixtures.redis_server import RedisServer, redis_server
from tests.fixtures.waiting import eventually

__all__ = ["redis_server"]  # the fixture, used by name below

SLOW = {"rate": 0.001, "burst": 2}
"""Two requests, then one every 1000 s: no test lasts long enough to see a refill."""


@dataclass
class RatedApi:
    platform: Platform
    admin: httpx.AsyncClient
    transport: httpx.ASGITransport

    def client(self, headers: dict[str, str]) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, base_url="http://t", headers=headers)


@asynccontextmanager
async def rated_api(tmp_path: Path, **governance: Any) -> AsyncIterator[RatedApi]:
    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'api.db'}",
        **{f"governance__{key}": value for key, value in governance.items()},
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"X-API-Key": ADMIN_KEY}
        ) as admin:
            yield RatedApi(app.state.platform, admin, transport)


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of ``name{labels}`` in a Prometheus exposition, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if (
            series.startswith(name + "{")
            and ",".join(sorted(series[len(name) + 1 : -1].split(","))) == want
        ):
            return float(value)
    return None


async def test_a_limited_request_is_a_429_problem_with_retry_after(tmp_path: Path) -> None:
    async with rated_api(tmp_path, rates={"read": {"per_principal": SLOW}}) as api:
        bob = await make_member(api.platform, "acme", "bob")
        async with api.client(bob.headers) as client:
            assert (await client.get("/sessions")).status_code == 200
            assert (await client.get("/sessions")).status_code == 200
            size = await api.platform.storage.ledger_size()
            refused = await client.get("/sessions")
            body = assert_problem(refused, 429)
            assert body["policy_ids"] == ["rate:read:principal"]
            assert isinstance(body["retry_after_s"], float) and 999 < body["retry_after_s"] <= 1000
            assert refused.headers["Retry-After"] == str(math.ceil(body["retry_after_s"]))
            assert "read requests a second per principal (burst 2)" in str(body["detail"])
            assert body["type"] == PROBLEM_TYPE_BASE + "rate-limited"
            assert await api.platform.storage.ledger_size() == size  # a refusal writes nothing
            made = await client.post("/sessions", json={})  # a write: other buckets
            assert made.status_code == 201, made.text
        assert (await api.admin.get("/sessions")).status_code == 200  # bob's bucket is his
        scraped = (await api.admin.get("/metrics")).text
        count = "limit_rate_limit_decisions_total"
        assert metric(scraped, count, route_class="read", outcome="limited") == 1
        assert metric(scraped, count, route_class="read", outcome="allowed") == 3
        assert metric(scraped, "limit_rate_limiter_failing", mode="open") == 0
        health = (await api.admin.get("/health")).json()
        assert health["checks"]["rate_limiter"] == "ok" and health["status"] == "ok"


async def executions_in(platform: Platform, session: str) -> int:
    page = await platform.storage.list_executions(
        uuid.UUID(session), state=None, limit=1000, cursor=None
    )
    return len(page.items)


async def test_executions_draw_from_the_execute_buckets(tmp_path: Path) -> None:
    async with rated_api(tmp_path, rates={"execute": {"per_tenant": SLOW}}) as api:
        alice = await make_member(api.platform, "acme", "alice")
        carol = await make_member(api.platform, "acme", "carol")
        async with api.client(alice.headers) as a, api.client(carol.headers) as c:
            session = (await a.post("/sessions", json={})).json()["id"]
            run = await a.post(f"/sessions/{session}/execute", json={"agent": "echo"})
            assert run.status_code == 200, run.text
            one_off = await c.post("/agents/echo/execute", json={"inputs": {}})
            assert one_off.status_code in (200, 202), one_off.text
            executions = await executions_in(api.platform, session)
            body = assert_problem(
                await a.post(f"/sessions/{session}/execute", json={"agent": "echo"}), 429
            )
            assert body["policy_ids"] == ["rate:execute:tenant"]  # acme's two are used up
            assert (
                await executions_in(api.platform, session) == executions
            )  # nothing was queued for the refused one
            assert (await a.get(f"/sessions/{session}")).status_code == 200  # reads are free
        globex = await make_member(api.platform, "globex", "dave")
        async with api.client(globex.headers) as d:
            other = (await d.post("/sessions", json={})).json()["id"]
            ran = await d.post(f"/sessions/{other}/execute", json={"agent": "echo"})
            assert ran.status_code == 200, ran.text


async def test_token_requests_count_per_client_id_before_the_secret_is_checked(
    tmp_path: Path,
) -> None:
    async with rated_api(tmp_path, rates={"auth": {"per_key": SLOW}}) as api:
        await api.platform.identity.create_tenant(api.platform.admin, "acme")
        made = await api.platform.identity.create_principal(
            api.platform.admin,
            name="ci-bot",
            tenant="acme",
            kind=PrincipalKind.SERVICE,
            roles=[Role.AUTHOR],
        )
        assert made.record.client_id is not None and made.client_secret is not None
        form = {
            "grant_type": "client_credentials",
            "client_id": made.record.client_id,
            "client_secret": made.client_secret,
        }
        async with api.client({}) as bare:
            guess = {**form, "client_secret": "guess"}
            assert_problem(await bare.post("/auth/token", data=guess), 401)
            assert_problem(await bare.post("/auth/token", data=guess), 401)
            body = assert_problem(await bare.post("/auth/token", data=form), 429)
            assert body["policy_ids"] == ["rate:auth:key"]
            other = {**form, "client_id": "lgc_someone-else"}
            assert_problem(await bare.post("/auth/token", data=other), 401)


async def test_redis_down_failing_closed_is_a_429_never_a_500(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    governance = {
        "redis_url": redis_server.url,
        "fail_open": False,
        "rates": {"read": {"per_principal": {"rate": 0.001, "burst": 3}}},
    }
    async with rated_api(tmp_path, **governance) as api:
        assert (await api.admin.get("/sessions")).status_code == 200
        redis_server.stop()
        for _ in range(5):
            body = assert_problem(await api.admin.get("/sessions"), 429)
            assert "rate limiter is unavailable" in str(body["detail"])
            assert body["policy_ids"] == ["rate:read:unavailable"]
            assert isinstance(body["retry_after_s"], float) and body["retry_after_s"] > 0
        health = await api.admin.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["checks"]["rate_limiter"] == (
            "degraded: redis unreachable, failing closed"
        )
        scraped = (await api.admin.get("/metrics")).text
        assert metric(scraped, "limit_rate_limiter_failing", mode="closed") == 1
        failed = metric(
            scraped, "limit_rate_limit_decisions_total", route_class="read", outcome="failed_closed"
        )
        assert failed == 5
        redis_server.start()  # empty: the bucket starts full again

        async def rate_limiter() -> str:
            answer: str = (await api.admin.get("/health")).json()["checks"]["rate_limiter"]
            return answer

        await eventually(rate_limiter, lambda state: state == "ok", timeout_s=30, every_s=0.1)
        statuses = [(await api.admin.get("/sessions")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # limits apply again


# --- two API processes on one Redis ------------------------------------------------------


RATE, BURST = 30.0, 20
"""The servers' rate, and a burst that holds what refills while the callers pause between
two rounds (a gap well under BURST / RATE s even on a loaded machine), so that no token
is lost to the cap before it is counted."""


def start_servers(folder: Path, redis_url: str, count: int = 2) -> list[Server]:
    """``count`` ``limit up`` processes on one database (SQLite in ``folder``) and one Redis,
    started one after the other so that only the first makes the database."""
    config = folder / "limit.toml"
    config.write_text(
        # A loaded test machine may starve an event loop for longer than the default
        # timeout; a check that timed out would fail open and blur the rate measured.
        f'[governance]\nredis_url = "{redis_url}"\nfail_open = true\nredis_timeout_s = 3\n'
        f"[governance.rates.read]\nper_principal = {{ rate = {RATE}, burst = {BURST} }}\n",
        encoding="utf-8",
    )
    servers: list[Server] = []
    try:
        for _ in range(count):
            port = free_port()
            env = clean_env(LIMIT_ADMIN_API_KEY=ADMIN_KEY, LIMIT_CONFIG=str(config))
            url = f"http://127.0.0.1:{port}"
            servers.append(launch(folder, env, url, "--bind", f"127.0.0.1:{port}"))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


@dataclass
class Hammered:
    statuses: Counter[tuple[int, int]]
    """(server index, status) -> answers."""

    def answered(self, status: int) -> int:
        return sum(n for (_, s), n in self.statuses.items() if s == status)


def callers(workers: int = 24) -> httpx.AsyncClient:
    """The admin's client for :func:`hammer`, a connection for each caller to each server."""
    limits = httpx.Limits(max_connections=workers * 2, max_keepalive_connections=workers * 2)
    return httpx.AsyncClient(headers={"X-API-Key": ADMIN_KEY}, timeout=30, limits=limits)


async def hammer(
    client: httpx.AsyncClient, urls: list[str], seconds: float, workers: int = 24
) -> Hammered:
    """List ``/sessions`` on every server in turn, as fast as ``workers`` callers can, for
    ``seconds``; back once every answer is in."""
    loop = asyncio.get_running_loop()
    statuses: Counter[tuple[int, int]] = Counter()
    ends = loop.time() + seconds

    async def caller(offset: int) -> None:
        n = offset
        while loop.time() < ends:
            index = n % len(urls)
            n += 1
            response = await client.get(urls[index] + "/sessions")
            statuses[index, response.status_code] += 1

    await asyncio.gather(*(caller(i) for i in range(workers)))
    return Hammered(statuses)


@dataclass(frozen=True)
class Bucket:
    """The servers' one bucket as the limiter's script left it (``redis.py``): ``tokens``
    after its last take, at ``taken_s`` on Redis's clock (``TIME``), which decided it."""

    tokens: float
    taken_s: float


async def the_bucket(redis_url: str) -> Bucket:
    """The one rate bucket in Redis: both servers' takes are in it, or the test fails."""
    async with Redis.from_url(redis_url) as raw:
        keys = [key async for key in raw.scan_iter(match="rate:*")]
        assert len(keys) == 1, keys  # one bucket for both servers, not one each
        tokens, taken = await raw.hmget(keys[0], ["t", "u"])
    assert tokens is not None and taken is not None, keys
    return Bucket(float(tokens), float(taken))


async def redis_now(redis_url: str) -> float:
    async with Redis.from_url(redis_url) as raw:
        seconds, microseconds = await raw.time()
    return seconds + microseconds / 1e6


@pytest.mark.early
async def test_two_api_processes_share_one_rate_and_follow_fail_open(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    servers = start_servers(tmp_path, redis_server.url)
    urls = [s.url for s in servers]
    try:
        async with callers() as client:
            # A first round spends the burst and warms every connection and both
            # servers; the round counted starts from an empty bucket, at a time Redis
            # recorded -- nothing the callers' clocks or a slow first request can blur.
            for _ in range(10):  # a loaded machine may need more than a second for it
                warm = await hammer(client, urls, seconds=1.0)
                if warm.answered(429):
                    break
            assert warm.answered(429) > 0, warm.statuses
            before = await the_bucket(redis_server.url)
            run = await hammer(client, urls, seconds=5.0)
            after = await the_bucket(redis_server.url)
        assert before.tokens < 1, before  # the burst was spent: only the rate is counted
        allowed, refused = run.answered(200), run.answered(429)
        assert set(run.statuses) <= {(i, s) for i in range(2) for s in (200, 429)}, run.statuses
        assert refused > allowed / 2  # the callers asked for more than the rate: it was tested
        assert all(run.statuses[i, 200] > 0 for i in range(2))  # both servers took tokens
        # One rate for both, not one each: RATE tokens a second of Redis's clock, from
        # the last take before the round to its last take, within a token at each end.
        expected = RATE * (after.taken_s - before.taken_s)
        async with httpx.AsyncClient(timeout=10) as client:
            for url in urls:  # every decision was Redis's: none was let through unchecked
                scraped = (await client.get(url + "/metrics")).text
                decided = "limit_rate_limit_decisions_total"
                assert not metric(scraped, decided, route_class="read", outcome="failed_open")
        assert abs(allowed - expected) <= 0.05 * expected, (allowed, expected, before, after)

        redis_server.stop()
        async with callers() as client:
            down = await hammer(client, urls, seconds=1.0)
        assert set(down.statuses) <= {(0, 200), (1, 200)}, down.statuses  # failing open
        async with httpx.AsyncClient(timeout=10) as client:
            for url in urls:
                health = await client.get(url + "/health")
                assert health.status_code == 200
                assert health.json()["status"] == "degraded"
                assert health.json()["checks"]["rate_limiter"] == (
                    "degraded: redis unreachable, failing open"
                )
                scraped = (await client.get(url + "/metrics")).text
                assert metric(scraped, "limit_rate_limiter_failing", mode="open") == 1

            redis_server.start()
            for url in urls:

                async def state(url: str = url) -> str:
                    found: str = (await client.get(url + "/health")).json()["checks"][
                        "rate_limiter"
                    ]
                    return found

                await eventually(state, lambda s: s == "ok", timeout_s=30, every_s=0.1)
        began = await redis_now(redis_server.url)  # Redis restarted empty: a full bucket
        async with callers() as client:
            back = await hammer(client, urls, seconds=1.0)
        assert back.answered(429) > 0 and back.answered(500) == 0  # limits apply again
        last = await the_bucket(redis_server.url)
        # Not all of them: no more than a full bucket and what refilled by its last take.
        assert back.answered(200) <= BURST + RATE * (last.taken_s - began)
    finally:
        for server in servers:
            server.stop()
