"""The soak's clients: paced loops over real HTTP (httpx, async), each request timed.

Every loop sends at most its rate of requests a second and waits for each answer before
the next (a client that falls behind goes on at once, with no catch-up burst), so the
offered load is fixed and the latencies are the platform's, not a client's queue.  What
the platform accepted (a 2xx answer carrying an execution or workflow-run id) is kept in
:class:`Accepted` for the accounting afterwards (``bench/soak_accounting.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from limit_graph.client.sse import SSEDecoder

__all__ = ["FINAL_ACTIONS", "Accepted", "Load", "Mix", "OpStats", "Recorder", "WatchStats"]

FINAL_ACTIONS = (
    "execution.succeeded",
    "execution.failed",
    "execution.cancelled",
    "execution.timed_out",
)
"""The ledger actions that end an execution: each accepted one must have exactly one."""

MAX_QUBITS, MAX_SHOTS = 6, 2000
"""The sessions' circuit limits; the soak's circuits stay within them, its probes not."""

SESSION_CONFIG: dict[str, Any] = {
    "backends": ["local", "remote", "quantum"],
    "quotas": {"executions": 10_000_000, "shots": 10_000_000_000},
    "policies": [
        {"check": "circuit-limits", "max_qubits": MAX_QUBITS, "max_shots": MAX_SHOTS},
        {"check": "allowed-targets", "targets": ["aer"]},
    ],
}


@dataclass(frozen=True)
class Mix:
    """Clients of each kind and the requests a second each sends."""

    sessions_per_s: float = 4.0
    local_clients: int = 4
    local_per_s: float = 20.0
    remote_clients: int = 4
    remote_per_s: float = 8.0
    quantum_clients: int = 2
    quantum_per_s: float = 2.0
    workflow_clients: int = 1
    workflows_per_s: float = 0.5
    reader_clients: int = 2
    reads_per_s: float = 15.0
    denied_per_s: float = 1.0
    watchers: int = 4

    def scaled(self, factor: float) -> Mix:
        """The same clients, each ``factor`` times as fast."""
        rates = {
            name: getattr(self, name) * factor
            for name in self.__dataclass_fields__
            if name.endswith("_per_s")
        }
        return Mix(**{**self.__dict__, **rates})


@dataclass
class OpStats:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    examples: list[str] = field(default_factory=list)

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Recorder:
    """Latency, status and error count per operation; the first few errors' details."""

    def __init__(self) -> None:
        self.ops: dict[str, OpStats] = {}

    def add(self, op: str, seconds: float, status: int, ok: bool, detail: str = "") -> None:
        stats = self.ops.setdefault(op, OpStats())
        stats.latencies.append(seconds)
        stats.statuses[status] += 1
        if not ok:
            stats.errors += 1
            if len(stats.examples) < 3:
                stats.examples.append(f"HTTP {status}: {detail[:300]}")


@dataclass
class Accepted:
    """What the platform accepted: execution id → session, its idempotency key; workflow
    run id → session."""

    executions: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    run_states: dict[str, str] = field(default_factory=dict)
    answered_202: int = 0
    recent: dict[str, deque[str]] = field(default_factory=dict)

    def execution(self, execution_id: str, session_id: str, key: str | None = None) -> None:
        self.executions[execution_id] = session_id
        if key is not None:
            self.keys[key] = execution_id
        self.recent.setdefault(session_id, deque(maxlen=64)).append(execution_id)


@dataclass
class WatchStats:
    """What one event stream saw."""

    session_id: str
    events: int = 0
    out_of_order: int = 0
    reconnects: int = 0
    finals: Counter[str] = field(default_factory=Counter)


def _standard_circuits(count: int, seed: int) -> list[str]:
    from bench.quantum import _standard_qasm3

    rng = random.Random(seed)
    return [_standard_qasm3(rng.randint(3, 5), rng.randint(2, 6), seed + n) for n in range(count)]


BELL3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[3] c;
h q[0];
cx q[0], q[1];
cx q[1], q[2];
c = measure q;
"""

WIDE = f"""OPENQASM 3.0;
include "stdgates.inc";
qubit[{MAX_QUBITS + 2}] q;
bit[{MAX_QUBITS + 2}] c;
h q[0];
{"".join(f"cx q[{i}], q[{i + 1}];{chr(10)}" for i in range(MAX_QUBITS + 1))}c = measure q;
"""
"""A GHZ circuit two qubits wider than the sessions allow."""

WORKFLOW: dict[str, Any] = {
    "name": "soak-mixed",
    "max_parallel": 8,
    "params": {"n": {"type": "integer", "default": 0}},
    "steps": [
        {"id": "prepare", "agent": "echo", "inputs": {"items": [1, 2, 3], "n": "${params.n}"}},
        {
            "id": "fan",
            "agent": "echo",
            "backend": "remote",
            "map": {"over": "${steps.prepare.outputs.items}", "as": "i"},
            "inputs": {"i": "${i}", "n": "${params.n}"},
        },
        {
            "id": "sample",
            "agent": "quantum.sample",
            "backend": "quantum",
            "depends_on": ["prepare"],
            "inputs": {
                "target": "aer",
                "seed": "${params.n}",
                "pubs": [{"circuit": {"format": "qasm3", "source": BELL3}, "shots": 200}],
            },
        },
        {
            "id": "report",
            "agent": "echo",
            "depends_on": ["fan", "sample"],
            "inputs": {"fan": "${steps.fan.outputs}", "counts": "${steps.sample.outputs}"},
        },
    ],
}
"""Local, remote (mapped over three items) and quantum steps: six executions a run."""


def _sample_body(source: str, shots: int, seed: int, target: str = "aer") -> dict[str, Any]:
    pub = {"circuit": {"format": "qasm3", "source": source}, "shots": shots}
    return {
        "agent": "quantum.sample",
        "backend": "quantum",
        "wait_s": 60,
        "inputs": {"target": target, "pubs": [pub], "seed": seed},
    }


async def paced(rate: float, stop_at: float, step: Callable[[int], Awaitable[None]]) -> None:
    """Call ``step(n)`` at most ``rate`` times a second until ``stop_at`` (monotonic)."""
    interval = 1.0 / rate
    next_at = time.monotonic()
    for n in itertools.count():
        now = time.monotonic()
        if now >= stop_at:
            return
        if next_at > now:
            await asyncio.sleep(min(next_at, stop_at) - now)
            if time.monotonic() >= stop_at:
                return
        await step(n)
        next_at = max(next_at + interval, time.monotonic() - interval)


class Load:
    """The soak's clients of one platform, sharing one connection pool."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        sessions: dict[str, list[str]],
        mix: Mix,
        seed: int = 1,
    ) -> None:
        self.client = client
        self.sessions = sessions
        self.mix = mix
        self.recorder = Recorder()
        self.accepted = Accepted()
        self.watches: list[WatchStats] = []
        self.rng = random.Random(seed)
        self.circuits = _standard_circuits(64, seed)
        self._keys = itertools.count()

    async def _send(
        self, op: str, method: str, path: str, **kwargs: Any
    ) -> tuple[httpx.Response | None, float]:
        started = time.perf_counter()
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.recorder.add(op, time.perf_counter() - started, 0, False, repr(exc))
            return None, 0.0
        return response, time.perf_counter() - started

    async def call(self, op: str, method: str, path: str, **kwargs: Any) -> Any:
        """One request; a 2xx answer is a success.  Its JSON body, or ``None``."""
        response, elapsed = await self._send(op, method, path, **kwargs)
        if response is None:
            return None
        ok = response.is_success
        self.recorder.add(op, elapsed, response.status_code, ok, "" if ok else response.text)
        return response.json() if ok and response.content else None

    async def execute(self, op: str, session_id: str, body: dict[str, Any]) -> None:
        """An execute that must be accepted and, when answered 200, have succeeded."""
        key = f"soak-{next(self._keys)}"
        path = f"/sessions/{session_id}/execute"
        response, elapsed = await self._send(
            op, "POST", path, json={**body, "idempotency_key": key}
        )
        if response is None:
            return
        status, ok, detail = response.status_code, False, response.text
        if status in (200, 202):
            document = response.json()
            if isinstance(document.get("id"), str):
                self.accepted.execution(document["id"], session_id, key)
            self.accepted.answered_202 += status == 202
            ok = status == 202 or document.get("state") == "succeeded"
        self.recorder.add(op, elapsed, status, ok, detail)

    async def refused(self, op: str, session_id: str, body: dict[str, Any], want: int) -> None:
        """A probe the governance checks must refuse with ``want``."""
        response, elapsed = await self._send(
            op, "POST", f"/sessions/{session_id}/execute", json=body
        )
        if response is not None:
            status = response.status_code
            self.recorder.add(op, elapsed, status, status == want, response.text)

    # The loops, one per kind of client.

    async def churn_sessions(self, stop_at: float) -> None:
        async def step(_: int) -> None:
            made = await self.call(
                "POST /sessions", "POST", "/sessions", json={"config": SESSION_CONFIG}
            )
            if made is not None:
                await self.call(
                    "POST /sessions/{id}/complete", "POST", f"/sessions/{made['id']}/complete"
                )

        await paced(self.mix.sessions_per_s, stop_at, step)

    async def local(self, session_id: str, stop_at: float) -> None:
        async def step(n: int) -> None:
            body = {"agent": "echo", "inputs": {"n": n, "pad": "x" * (n % 64)}}
            await self.execute("execute local echo", session_id, body)

        await paced(self.mix.local_per_s, stop_at, step)

    async def remote(self, session_id: str, stop_at: float) -> None:
        async def step(n: int) -> None:
            body = {"agent": "echo", "backend": "remote", "inputs": {"n": n}, "wait_s": 30}
            await self.execute("execute remote echo (2 runners)", session_id, body)

        await paced(self.mix.remote_per_s, stop_at, step)

    async def quantum(self, session_id: str, stop_at: float) -> None:
        async def step(n: int) -> None:
            source = self.circuits[n % len(self.circuits)]
            body = _sample_body(source, self.rng.randint(100, 1000), seed=n)
            await self.execute("execute quantum.sample on aer (2 runners)", session_id, body)

        await paced(self.mix.quantum_per_s, stop_at, step)

    async def workflows(self, session_id: str, stop_at: float) -> None:
        async def step(n: int) -> None:
            body = {"workflow": WORKFLOW, "params": {"n": n}, "wait_s": 60}
            path = f"/sessions/{session_id}/execute"
            response, elapsed = await self._send("run workflow", "POST", path, json=body)
            if response is None:
                return
            status, ok = response.status_code, False
            if status in (200, 202):
                run = response.json()
                self.accepted.runs[run["id"]] = session_id
                ok = status == 202 or run.get("state") == "succeeded"
            self.recorder.add("run workflow", elapsed, status, ok, response.text)

        await paced(self.mix.workflows_per_s, stop_at, step)

    async def read(self, stop_at: float) -> None:
        work = [
            s for kind in ("local", "remote", "quantum", "workflow") for s in self.sessions[kind]
        ]

        async def step(n: int) -> None:
            session_id = self.rng.choice(work)
            recent = self.accepted.recent.get(session_id)
            if n % 3 == 0 and recent:
                eid = recent[-1 - self.rng.randrange(len(recent))]
                path = f"/sessions/{session_id}/executions/{eid}"
                await self.call("GET /sessions/{id}/executions/{eid}", "GET", path)
            elif n % 3 == 1:
                path = f"/sessions/{session_id}/results"
                await self.call("GET /sessions/{id}/results", "GET", path, params={"limit": 20})
            else:
                path = f"/sessions/{session_id}/status"
                await self.call("GET /sessions/{id}/status", "GET", path)

        await paced(self.mix.reads_per_s, stop_at, step)

    async def probe_governance(self, session_id: str, stop_at: float) -> None:
        """Work the checks must refuse: too wide a circuit, a target not allowed."""

        async def step(n: int) -> None:
            if n % 2 == 0:
                body = _sample_body(WIDE, 100, seed=n)
                await self.refused("refused: circuit over max_qubits (422)", session_id, body, 422)
            else:
                body = _sample_body(self.circuits[0], 100, seed=n, target="fake:fake_manila")
                await self.refused("refused: target not allowed (403)", session_id, body, 403)

        await paced(self.mix.denied_per_s, stop_at, step)

    async def watch(self, session_id: str) -> None:
        """Follow the session's event stream until cancelled, resuming after a drop."""
        stats = WatchStats(session_id)
        self.watches.append(stats)
        last = -1
        path = f"/sessions/{session_id}/events"
        while True:
            headers = {"Last-Event-ID": str(last)} if last >= 0 else {}
            decoder = SSEDecoder()
            try:
                async with self.client.stream("GET", path, headers=headers) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        event = decoder.feed(line)
                        if event is None:
                            continue
                        index = int(event.get("id", "-1"))
                        if index <= last:
                            stats.out_of_order += 1
                        last = max(last, index)
                        stats.events += 1
                        data = json.loads(event["data"])
                        lag = datetime.now(UTC) - datetime.fromisoformat(
                            data["timestamp"].replace("Z", "+00:00")
                        )
                        self.recorder.add(
                            "event delivered (stream lag)", lag.total_seconds(), 200, True
                        )
                        if data.get("action") in FINAL_ACTIONS:
                            stats.finals[data["resource_id"]] += 1
            except httpx.HTTPError as exc:
                self.recorder.add("event stream (re)connect", 0.0, 0, False, repr(exc))
            stats.reconnects += 1
            await asyncio.sleep(0.5)

    async def run(self, stop_at: float) -> None:
        """Every loop until ``stop_at``."""
        loops: list[Awaitable[None]] = []
        if self.mix.sessions_per_s > 0:
            loops.append(self.churn_sessions(stop_at))
        if self.mix.reads_per_s > 0:
            loops += [self.read(stop_at) for _ in range(self.mix.reader_clients)]
        for kind, method in (
            ("local", self.local),
            ("remote", self.remote),
            ("quantum", self.quantum),
            ("workflow", self.workflows),
        ):
            loops += [method(session_id, stop_at) for session_id in self.sessions[kind]]
        if self.sessions["quantum"] and self.mix.denied_per_s > 0:
            loops.append(self.probe_governance(self.sessions["quantum"][0], stop_at))
        await asyncio.gather(*loops)
