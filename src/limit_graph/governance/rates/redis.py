"""Token buckets in Redis, shared by every API process: one Lua script per check.

The script refills each of a request's buckets by the time elapsed on Redis's own clock
(``TIME``, so API hosts' clocks never matter), takes one token from each or from none, and
answers the longest wait: all of it atomic, in one round trip (``EVALSHA``; ``EVAL`` once
after a ``NOSCRIPT``, when Redis was restarted or flushed).  A bucket is a hash
(``t`` tokens, ``u`` updated) that expires once it would have refilled, so idle callers
cost Redis nothing.

Redis out of reach (refused, reset, timed out) or answering an error never fails a
request with a 500: the check is a ``degraded`` verdict that ``fail_open`` decides, the
state says so (``/health``), and Redis is tried again at most every
:data:`RETRY_EVERY_S` -- in between, checks do not wait for it.  redis-py reconnects by
itself once Redis is back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from limit_graph.governance.rates.types import ALLOWED, Bucket, RateVerdict

__all__ = ["RETRY_EVERY_S", "TAKE_SCRIPT", "RedisRateLimiter"]

log = logging.getLogger("limit_graph.governance.rates")

RETRY_EVERY_S = 1.0
"""How often Redis is tried again once it failed; also a refusal's ``retry_after_s``
while it is down and the limiter fails closed."""

TAKE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local levels = {}
local wait, worst = 0, 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local held = redis.call('HMGET', KEYS[i], 't', 'u')
  local tokens, updated = tonumber(held[1]), tonumber(held[2])
  if tokens == nil or updated == nil then
    tokens = burst
  else
    local elapsed = math.max(0, now - updated)
    tokens = math.min(burst, tokens + elapsed * rate)
  end
  levels[i] = tokens
  if tokens < 1 then
    local need = (1 - tokens) / rate
    if need > wait then
      wait, worst = need, i
    end
  end
end
if worst > 0 then
  return {0, string.format('%.6f', wait), worst}
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local left = levels[i] - 1
  redis.call('HSET', KEYS[i], 't', string.format('%.17g', left), 'u', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst - left) / rate * 1000) + 1000)
end
return {1, '0', 0}
"""
"""KEYS: the buckets; ARGV: rate and burst of each in turn.  Answers
``{allowed, wait in seconds, index of the bucket waited for (1-based, 0: none)}``."""

_SHA = hashlib.sha1(TAKE_SCRIPT.encode()).hexdigest()


class RedisRateLimiter:
    """Buckets shared through the Redis at ``url``; ``timeout_s`` bounds each socket
    operation, so a Redis that hangs costs a request at most that."""

    def __init__(
        self,
        url: str,
        *,
        fail_open: bool = True,
        timeout_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fail_open = fail_open
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # a failure is answered now, by fail_open
            health_check_interval=0,
        )
        self._clock = clock
        self._down: str | None = None
        self._retry_at = float("-inf")

    @property
    def state(self) -> str:
        if self._down is None:
            return "ok"
        return f"degraded: {self._down}, failing {'open' if self.fail_open else 'closed'}"

    async def start(self) -> None:
        await self._probe()

    async def close(self) -> None:
        await self._client.aclose()

    async def status(self) -> str:
        if self._down is not None and self._clock() >= self._retry_at:
            await self._probe()
        return self.state

    async def check(self, buckets: Sequence[Bucket]) -> RateVerdict:
        if self._down is not None:
            now = self._clock()
            if now < self._retry_at:
                return self._unavailable(self._retry_at - now)
            self._retry_at = now + RETRY_EVERY_S  # one try at a time; the rest fail fast
        keys = [b.key for b in buckets]
        args: list[Any] = []
        for bucket in buckets:
            args += (repr(bucket.rate), bucket.burst)
        try:
            reply = await self._take(keys, args)
            allowed, wait, worst = int(reply[0]), float(reply[1]), int(reply[2])
        except Exception as exc:  # whatever went wrong, the request gets a verdict, not a 500
            await self._failed(exc)
            return self._unavailable(RETRY_EVERY_S)
        self._recovered()
        if allowed:
            return ALLOWED
        return RateVerdict(allowed=False, retry_after_s=wait, bucket=buckets[worst - 1])

    async def _take(self, keys: list[str], args: list[Any]) -> list[Any]:
        try:
            reply = await self._client.evalsha(_SHA, len(keys), *keys, *args)
        except NoScriptError:
            reply = await self._client.eval(TAKE_SCRIPT, len(keys), *keys, *args)
        if not isinstance(reply, list) or len(reply) != 3:
            raise RedisError(f"the rate script answered {reply!r}")
        return reply

    async def _probe(self) -> None:
        self._retry_at = self._clock() + RETRY_EVERY_S
        try:
            await self._client.ping()
        except Exception as exc:
            await self._failed(exc)
        else:
            self._recovered()

    def _unavailable(self, retry_after_s: float) -> RateVerdict:
        return RateVerdict(
            allowed=self.fail_open,
            retry_after_s=0.0 if self.fail_open else max(retry_after_s, 0.001),
            degraded=True,
        )

    async def _failed(self, exc: BaseException) -> None:
        unreachable = isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)
        why = "redis unreachable" if unreachable else f"redis error ({exc})"
        self._retry_at = self._clock() + RETRY_EVERY_S
        was_up = self._down is None
        self._down = why
        if was_up:
            log.warning("rate limiter: %s (%s); %s", why, exc, self.state)
            # Connections to a Redis that went away are dropped now, so that the next try
            # connects afresh instead of failing on a dead socket.
            with contextlib.suppress(Exception):
                await self._client.connection_pool.disconnect()

    def _recovered(self) -> None:
        if self._down is not None:
            log.warning("rate limiter: redis reachable again; limits are shared again")
            self._down = None
