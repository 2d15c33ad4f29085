"""Pick the backend instance an execution runs on (federation).

A backend kind (local, remote, quantum) may have several named instances.  The router
keeps a session's executions on one instance (a consistent hash of the session id, so
adding or removing an instance moves only the sessions it gains or loses), sends an
agent only to instances that serve it (and quantum work only to instances of its
target's family, ``aer``, ``fake`` or ``ibm``), moves failing instances to the back
until a probe shows they work again, and lets work spill off an instance whose queue is
much deeper than the others'.  It is on the request path: rings are built once per
candidate set and a route is a hash, a binary search and a few dictionary reads.

    router = Router.from_settings(settings.backends)
    first, *failover_order = router.route(BackendKind.REMOTE, "echo", session.id)
    family = target_family(BackendKind.QUANTUM, {"target": "ibm:ibm_fez"})  # "ibm"
    router.route(BackendKind.QUANTUM, "quantum.sample", session.id, family=family)

Everything here is synchronous and runs on the event loop, so it takes no locks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from limit_graph.core.errors import ConfigError, InvalidInput
from limit_graph.core.models import BackendKind
from limit_graph.core.settings import BackendInstance, BackendsSettings
from limit_graph.orchestration.hash_ring import HashRing

__all__ = [
    "DEFAULT_INSTANCE_NAMES",
    "HealthState",
    "InstanceHealth",
    "InstanceInfo",
    "Router",
    "target_family",
]

HealthState = Literal["healthy", "failing", "probing"]

DEFAULT_INSTANCE_NAMES: dict[BackendKind, str] = {
    BackendKind.LOCAL: "local",
    BackendKind.REMOTE: "remote",
    BackendKind.QUANTUM: "aer",
}
"""Name of the instance a kind gets when the settings configure none of that kind."""


def target_family(kind: BackendKind, inputs: object) -> str | None:
    """The target family quantum work needs, from its ``target`` input (a mapping or a
    validated model): ``aer``, ``fake`` or ``ibm``; ``None`` when it names no target, and
    for other kinds, whose instances have no provider.

    >>> target_family(BackendKind.QUANTUM, {"target": "fake:manila"})
    'fake'
    >>> target_family(BackendKind.REMOTE, {"target": "fake:manila"}) is None
    True
    """
    if kind is not BackendKind.QUANTUM:
        return None
    target = (
        inputs.get("target") if isinstance(inputs, Mapping) else getattr(inputs, "target", None)
    )
    if not isinstance(target, str):
        return None
    return target.partition(":")[0].strip().lower() or None


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """What the router knows of a backend instance."""

    name: str
    kind: BackendKind
    capabilities: frozenset[str] = frozenset()
    max_runners: int = 4
    provider: str | None = None

    def serves(self, agent: str, family: str | None = None) -> bool:
        """No capabilities listed means the instance serves every agent; no provider,
        every target family (``family`` is :func:`target_family`'s)."""
        agent_ok = not self.capabilities or agent in self.capabilities
        return agent_ok and (family is None or self.provider in (None, family))

    def describe(self) -> str:
        """What it serves, for error messages: ``ibm-east serves every agent on ibm targets``."""
        agents = ", ".join(sorted(self.capabilities)) or "every agent"
        targets = f"{self.provider} targets" if self.provider else "any target"
        return f"{self.name} serves {agents} on {targets}"


@dataclass(slots=True)
class _Record:
    failures: int = 0
    heartbeat_at: float | None = None
    probe_at: float | None = None  # when a failing instance may be probed; None if healthy
    backoff_s: float = 0.0
    probe_claimed_at: float | None = None


class InstanceHealth:
    """Health of each instance from runner heartbeats and execution outcomes.

    ``failure_threshold`` consecutive failures make an instance ``failing``: it is
    routed to last for ``probe_after_s`` (doubling after each failed probe, up to
    ``max_probe_after_s``), then it is ``probing`` and one execution may go there
    (:meth:`try_probe`).  A success makes it ``healthy``; a failure while probing makes
    it ``failing`` again.  A probe that reports nothing within ``probe_timeout_s``
    (cancelled, say) frees the slot, so an instance cannot stay shut out for good.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        probe_after_s: float = 5.0,
        max_probe_after_s: float = 60.0,
        probe_timeout_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not 0 < probe_after_s <= max_probe_after_s:
            raise ValueError("need 0 < probe_after_s <= max_probe_after_s")
        self.failure_threshold = failure_threshold
        self.probe_after_s = probe_after_s
        self.max_probe_after_s = max_probe_after_s
        self.probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def _record(self, name: str) -> _Record:
        return self._records.setdefault(name, _Record())

    def track(self, name: str) -> None:
        """List ``name`` in :meth:`snapshot` before anything is heard from it."""
        self._record(name)

    def heartbeat(self, name: str, at: float | None = None) -> None:
        """A runner of ``name`` was heard from now, or at ``at`` (on this clock), as
        another process heard it."""
        record = self._record(name)
        moment = self._clock() if at is None else at
        if record.heartbeat_at is None or moment > record.heartbeat_at:
            record.heartbeat_at = moment

    def record_success(self, name: str) -> None:
        record = self._record(name)
        record.failures = 0
        record.probe_at = record.probe_claimed_at = None
        record.backoff_s = 0.0

    def record_failure(self, name: str) -> None:
        """A failure of the instance itself: a runner lost, or a retryable backend error."""
        record = self._record(name)
        now = self._clock()
        record.failures += 1
        if record.probe_at is None:
            if record.failures >= self.failure_threshold:
                record.backoff_s = self.probe_after_s
                record.probe_at = now + record.backoff_s
        elif now >= record.probe_at:
            record.backoff_s = min(record.backoff_s * 2, self.max_probe_after_s)
            record.probe_at = now + record.backoff_s
            record.probe_claimed_at = None

    @staticmethod
    def _state(record: _Record | None, now: float) -> HealthState:
        if record is None or record.probe_at is None:
            return "healthy"
        return "failing" if now < record.probe_at else "probing"

    def state(self, name: str) -> HealthState:
        return self._state(self._records.get(name), self._clock())

    def try_probe(self, name: str) -> bool:
        """Claim the one probe slot of a ``probing`` instance; ``False`` if not granted."""
        record = self._records.get(name)
        now = self._clock()
        if record is None or self._state(record, now) != "probing":
            return False
        claimed = record.probe_claimed_at
        if claimed is not None and now - claimed < self.probe_timeout_s:
            return False
        record.probe_claimed_at = now
        return True

    def has_live_runner(self, name: str, within_s: float) -> bool:
        """A runner of ``name`` heartbeat within the last ``within_s`` seconds."""
        record = self._records.get(name)
        return (
            record is not None
            and record.heartbeat_at is not None
            and self._clock() - record.heartbeat_at <= within_s
        )

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Each instance's state, for the health endpoint."""
        now = self._clock()
        return {
            name: {
                "state": self._state(record, now),
                "consecutive_failures": record.failures,
                "seconds_since_heartbeat": (
                    None if record.heartbeat_at is None else now - record.heartbeat_at
                ),
                "probe_in_s": (
                    None if record.probe_at is None else max(0.0, record.probe_at - now)
                ),
            }
            for name, record in sorted(self._records.items())
        }


def _no_queue(_: str) -> int:
    return 0


class Router:
    """Orders the instances of a kind for an execution: affinity, health, load, liveness.

    >>> router = Router.from_settings(BackendsSettings())
    >>> router.route(BackendKind.QUANTUM, "echo", uuid.UUID(int=7))
    ['aer']
    """

    def __init__(
        self,
        instances: Iterable[InstanceInfo],
        *,
        health: InstanceHealth | None = None,
        vnodes: int = 640,
        load_factor: float = 2.0,
        live_within_s: float = 30.0,
    ) -> None:
        self.health = health if health is not None else InstanceHealth()
        self.vnodes = vnodes
        self.load_factor = load_factor
        self.live_within_s = live_within_s
        self._by_name: dict[str, InstanceInfo] = {}
        self._by_kind: dict[BackendKind, list[InstanceInfo]] = {kind: [] for kind in BackendKind}
        for info in instances:
            if info.name in self._by_name:
                raise InvalidInput(f"two backend instances are named {info.name!r}")
            self._by_name[info.name] = info
            self._by_kind[info.kind].append(info)
            self.health.track(info.name)
        self._rings: dict[tuple[BackendKind, tuple[str, ...]], HashRing] = {}

    @classmethod
    def from_settings(
        cls, backends: BackendsSettings, *, health: InstanceHealth | None = None
    ) -> Router:
        """The configured instances, plus a default one for each kind with none.

        The default instance is named after its kind, except quantum's: ``aer``.
        """
        infos = [_info(name, instance) for name, instance in backends.instances.items()]
        configured = {info.kind for info in infos}
        by_name = {info.name: info for info in infos}
        for kind in BackendKind:
            if kind in configured:
                continue
            name = DEFAULT_INSTANCE_NAMES[kind]
            if name in by_name:
                raise ConfigError(
                    f"backend instance {name!r} is a {by_name[name].kind.value} instance, but "
                    f"{name!r} names the default {kind.value} instance: rename it or "
                    f"configure a {kind.value} instance"
                )
            infos.append(_info(name, BackendInstance(type=kind)))
        return cls(infos, health=health)

    def instances(self, kind: BackendKind) -> list[InstanceInfo]:
        return list(self._by_kind[kind])

    def get(self, name: str) -> InstanceInfo:
        info = self._by_name.get(name)
        if info is None:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise InvalidInput(f"unknown backend instance {name!r}; known instances: {known}")
        return info

    def route(
        self,
        kind: BackendKind,
        agent: str,
        session_id: uuid.UUID,
        depth: Callable[[str], int] = _no_queue,
        *,
        family: str | None = None,
    ) -> list[str]:
        """Every instance of ``kind`` serving ``agent`` (on ``family`` targets, when
        given), best first; the rest is the failover order.  ``depth(name)`` is an
        instance's queue depth."""
        return self._rank(kind, agent, family, session_id, depth, frozenset())

    def failover(
        self,
        kind: BackendKind,
        agent: str,
        session_id: uuid.UUID,
        tried: set[str],
        depth: Callable[[str], int] = _no_queue,
        *,
        family: str | None = None,
    ) -> str | None:
        """The best instance not in ``tried``, or ``None`` once every one was tried."""
        ranked = self._rank(kind, agent, family, session_id, depth, tried)
        return ranked[0] if ranked else None

    def candidates(self, kind: BackendKind, agent: str, family: str | None) -> tuple[str, ...]:
        """The instances work of this kind, agent and target family may be routed to
        (none when no instance serves it: routing says why)."""
        try:
            return self._candidates(kind, agent, family)
        except InvalidInput:
            return ()

    def _candidates(self, kind: BackendKind, agent: str, family: str | None) -> tuple[str, ...]:
        infos = self._by_kind[kind]
        names = tuple(info.name for info in infos if info.serves(agent, family))
        if names:
            return names
        if not any(info.serves(agent) for info in infos):
            served = "; ".join(
                f"{info.name} serves {', '.join(sorted(info.capabilities))}" for info in infos
            )
            raise InvalidInput(
                f"no {kind.value} instance serves agent {agent!r}"
                + (f" ({served})" if served else "")
            )
        served = "; ".join(info.describe() for info in infos)
        raise InvalidInput(
            f"no {kind.value} instance serves {family} targets for agent {agent!r} ({served})"
        )

    def _ring(self, kind: BackendKind, names: tuple[str, ...]) -> HashRing:
        ring = self._rings.get((kind, names))
        if ring is None:
            ring = self._rings[(kind, names)] = HashRing(names, vnodes=self.vnodes)
        return ring

    def _rank(
        self,
        kind: BackendKind,
        agent: str,
        family: str | None,
        session_id: uuid.UUID,
        depth: Callable[[str], int],
        skip: frozenset[str] | set[str],
    ) -> list[str]:
        names = self._candidates(kind, agent, family)
        order = self._ring(kind, names).preference(str(session_id))
        if skip:
            order = [name for name in order if name not in skip]
        states = {name: self.health.state(name) for name in order}
        healthy = [name for name in order if states[name] == "healthy"]
        probe = next(
            (n for n in order if states[n] == "probing" and self.health.try_probe(n)), None
        )
        live = [n for n in healthy if self.health.has_live_runner(n, self.live_within_s)]
        if live:
            healthy = live + [name for name in healthy if name not in live]
        if probe is None:
            healthy = self._spill(healthy, depth)
        front = [probe, *healthy] if probe is not None else healthy
        return front + [name for name in order if name not in front]

    def _spill(self, healthy: list[str], depth: Callable[[str], int]) -> list[str]:
        """Put the shallowest queue first when the first is more than ``load_factor``
        times the mean of the *other* healthy candidates, plus one.  (A mean that counts
        the first too never lets one of two instances spill at a factor of 2.)"""
        if len(healthy) < 2:
            return healthy
        depths = {name: depth(name) for name in healthy}
        first, others = healthy[0], healthy[1:]
        mean = sum(depths[name] for name in others) / len(others)
        if depths[first] <= self.load_factor * mean + 1:
            return healthy
        target = min(others, key=depths.__getitem__)
        if depths[target] >= depths[first]:
            return healthy
        return [target, *(name for name in healthy if name != target)]


def _info(name: str, instance: BackendInstance) -> InstanceInfo:
    capabilities = frozenset(instance.capabilities)
    return InstanceInfo(name, instance.type, capabilities, instance.max_runners, instance.provider)
