"""From a request to its buckets, and a refusal to a 429: :class:`RateGuard`.

Each route class (``execute``, ``read``, ``write``, ``auth``) may configure a bucket per
key (the credential: an API key's id, a token's ``jti``, a client id), per principal and
per tenant (``[governance.rates.<class>]``); a request takes a token from each configured
bucket of its class or is refused, naming the bucket that ran dry.  A class with nothing
configured costs nothing: the check returns before anything is built.

>>> import asyncio
>>> from limit_graph.core.governance_settings import RateRule, RouteRates
>>> one_a_second = RouteRates(per_tenant=RateRule(rate=1, burst=1))
>>> guard = RateGuard(MemoryRateLimiter(), {"read": one_a_second})
>>> asyncio.run(guard.check("read", tenant="acme"))
>>> asyncio.run(guard.check("read", tenant="acme"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
limit_graph.core.errors.RateLimited: 1 read request a second per tenant (burst 1) used up: ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from limit_graph.core.errors import RateLimited
from limit_graph.core.governance_settings import RateRule, RouteClass, RouteRates
from limit_graph.governance.auth import Principal
from limit_graph.governance.policy.schema import Action
from limit_graph.governance.rates.memory import MemoryRateLimiter
from limit_graph.governance.rates.types import Bucket, Outcome, RateLimiter

__all__ = ["Dimension", "RateGuard", "route_class_of"]

Dimension = Literal["key", "principal", "tenant"]

_READS = frozenset(
    {
        Action.TENANT_READ,
        Action.AGENT_READ,
        Action.SESSION_LIST,
        Action.PRINCIPAL_READ,
        Action.POLICY_READ,
        Action.AUDIT_READ,
        Action.AUDIT_READ_ALL,
        Action.LEDGER_READ,
        Action.QUOTA_READ,
        Action.SESSION_READ,
        Action.WORKFLOW_VALIDATE,  # validating a workflow changes nothing
    }
)
_EXECUTES = frozenset({Action.AGENT_EXECUTE, Action.SESSION_EXECUTE, Action.WORKFLOW_RUN})
_MAX_ID = 128


def route_class_of(action: str) -> RouteClass:
    """The route class whose rates a request doing ``action`` draws from.

    >>> route_class_of("session.execute"), route_class_of("session.read")
    ('execute', 'read')
    >>> route_class_of("session.update")
    'write'
    """
    if action in _EXECUTES:
        return "execute"
    if action in _READS:
        return "read"
    return "write"


@dataclass(frozen=True, slots=True)
class _Rule:
    dimension: Dimension
    rate: float
    burst: int
    prefix: str
    policy_id: str


def _rules(route_class: RouteClass, rates: RouteRates) -> tuple[_Rule, ...]:
    found: list[_Rule] = []
    given: tuple[tuple[Dimension, RateRule | None], ...] = (
        ("key", rates.per_key),
        ("principal", rates.per_principal),
        ("tenant", rates.per_tenant),
    )
    for dimension, rule in given:
        if rule is not None:
            policy_id = f"rate:{route_class}:{dimension}"
            found.append(_Rule(dimension, rule.rate, rule.burst, policy_id + ":", policy_id))
    return tuple(found)


def _bucket_id(value: str) -> str:
    """Ids as they come, but bounded: a long one (an outside token's ``jti``) is hashed."""
    if len(value) <= _MAX_ID:
        return value
    return "sha256-" + hashlib.sha256(value.encode()).hexdigest()[:32]


def _rate_text(rate: float) -> str:
    return f"{rate:g}"


class RateGuard:
    """Checks requests against ``rates`` with ``limiter``; ``observe`` hears each decision
    (route class and outcome), for the metrics."""

    def __init__(
        self,
        limiter: RateLimiter,
        rates: Mapping[RouteClass, RouteRates],
        *,
        observe: Callable[[RouteClass, Outcome], None] | None = None,
    ) -> None:
        self.limiter = limiter
        self.observe = observe
        self._rules = {rc: rules for rc, r in rates.items() if (rules := _rules(rc, r))}

    @classmethod
    def unlimited(cls) -> RateGuard:
        """A guard with no rates: every check returns at once."""
        return cls(MemoryRateLimiter(), {})

    @property
    def configured(self) -> bool:
        return bool(self._rules)

    @property
    def failing(self) -> Literal["open", "closed"] | None:
        """How requests are decided while the shared store is out of reach, else ``None``."""
        if self.limiter.state == "ok":
            return None
        return "open" if self.limiter.fail_open else "closed"

    async def start(self) -> None:
        await self.limiter.start()

    async def close(self) -> None:
        await self.limiter.close()

    async def status(self) -> str:
        return await self.limiter.status()

    async def check_caller(self, route_class: RouteClass, caller: Principal) -> None:
        """:meth:`check` for an authenticated caller: its credential, itself, its tenant.

        A credential without an id of its own (a key of the settings) counts as its
        principal's key."""
        if route_class not in self._rules:
            return
        principal = str(caller.id) if caller.id is not None else caller.name
        key = caller.credential_id or f"{caller.via}:{principal}"
        await self.check(route_class, key=key, principal=principal, tenant=caller.tenant)

    async def check(
        self,
        route_class: RouteClass,
        *,
        key: str | None = None,
        principal: str | None = None,
        tenant: str | None = None,
    ) -> None:
        """Take a token from each configured bucket of ``route_class`` whose id is given,
        or raise :class:`RateLimited` naming the bucket and its rate."""
        rules = self._rules.get(route_class)
        if rules is None:
            return
        ids = {"key": key, "principal": principal, "tenant": tenant}
        buckets = [
            Bucket(rule.prefix + _bucket_id(held), rule.rate, rule.burst, rule.policy_id)
            for rule in rules
            if (held := ids[rule.dimension]) is not None
        ]
        if not buckets:
            return
        verdict = await self.limiter.check(buckets)
        if self.observe is not None:
            self.observe(route_class, verdict.outcome)
        if verdict.allowed:
            return
        retry_after_s = max(round(verdict.retry_after_s, 3), 0.001)
        if verdict.bucket is None:
            raise RateLimited(
                f"the rate limiter is unavailable and refuses {route_class} requests until "
                f"it is back: retry in {retry_after_s:g} s",
                [f"rate:{route_class}:unavailable"],
                retry_after_s,
            )
        bucket = verdict.bucket
        dimension = bucket.policy_id.rsplit(":", 1)[1]
        plural = "" if bucket.rate == 1 else "s"
        raise RateLimited(
            f"{_rate_text(bucket.rate)} {route_class} request{plural} a second per {dimension} "
            f"(burst {bucket.burst}) used up: retry in {retry_after_s:g} s",
            [bucket.policy_id],
            retry_after_s,
        )
