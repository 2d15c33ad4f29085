"""The quantum backend against qiskit-aer called directly, in one run.

The platform (`limit up --no-prefect`, embedded SQLite) with one `limit runner
--pool quantum` process:

- overhead: a 20-qubit, depth-10 random circuit at 4,000 shots on `aer`, through
  `POST /sessions/{id}/execute` (`quantum.sample`, waiting for the result), against
  transpiling and running the same circuit on `AerSimulator` in this process; medians
  of `--repeat` runs each, as a ratio;
- throughput: `--small` 5-qubit circuits of standard gates at 1,000 shots (all
  different) through the REST API, executions per second from the first submission to
  the last result; then half as many with `random_circuit`'s wider gate set, which
  Qiskit's native OpenQASM 3 importer refuses and its Python importer parses (~15 ms);
  then the standard ones again with a second runner on the pool;
- cache hit: the same seeded request with `allow_cached`, answered from the result
  cache; client-side latency over HTTP.

``python -m bench.quantum`` prints the table; ``python -m bench`` includes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.dispatch import ADMIN_KEY, platform_server, runners_for, wait_runners
from bench.loadgen import build_request, run_each

OVERHEAD_QUBITS, OVERHEAD_DEPTH, OVERHEAD_SHOTS = 20, 10, 4000


def _random_qasm3(qubits: int, depth: int, seed: int) -> str:
    from qiskit import qasm3
    from qiskit.circuit.random import random_circuit

    circuit = random_circuit(qubits, depth, measure=False, seed=seed)
    circuit.measure_all()
    text: str = qasm3.dumps(circuit)
    return text


def _standard_qasm3(qubits: int, depth: int, seed: int) -> str:
    """A random circuit of `stdgates.inc` gates (h, sx, x, rz, ry, cx): what users write."""
    import random

    from qiskit import QuantumCircuit, qasm3

    rng = random.Random(seed)
    circuit = QuantumCircuit(qubits)
    for _ in range(depth):
        for qubit in range(qubits):
            gate = rng.choice(["h", "sx", "x", "rz", "ry"])
            if gate in ("rz", "ry"):
                getattr(circuit, gate)(rng.uniform(0, 6.283), qubit)
            else:
                getattr(circuit, gate)(qubit)
        order = list(range(qubits))
        rng.shuffle(order)
        for a, b in zip(order[::2], order[1::2], strict=False):
            circuit.cx(a, b)
    circuit.measure_all()
    text: str = qasm3.dumps(circuit)
    return text


def _direct_aer(source: str, shots: int, seed: int) -> float:
    """Seconds to transpile and run the circuit on AerSimulator, as a qiskit-aer user
    with the circuit in hand does (parsing not counted)."""
    from qiskit import qasm3, transpile
    from qiskit_aer import AerSimulator

    circuit = qasm3.loads(source)
    started = time.perf_counter()
    simulator = AerSimulator(seed_simulator=seed)
    compiled = transpile(circuit, simulator, optimization_level=1, seed_transpiler=seed)
    simulator.run(compiled, shots=shots).result().get_counts()
    return time.perf_counter() - started


def _sample_body(source: str, shots: int, seed: int, **extra: Any) -> dict[str, Any]:
    return {
        "agent": "quantum.sample",
        "backend": "quantum",
        "wait_s": 120,
        "inputs": {
            "target": "aer",
            "pubs": [{"circuit": {"format": "qasm3", "source": source}, "shots": shots}],
            "seed": seed,
            **extra,
        },
    }


def measure(workdir: Path, repeat: int, small: int) -> dict[str, Any]:
    big = _random_qasm3(OVERHEAD_QUBITS, OVERHEAD_DEPTH, seed=11)
    direct = [_direct_aer(big, OVERHEAD_SHOTS, seed=7) for _ in range(repeat)]
    with (
        platform_server(workdir) as url,
        httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=300) as client,
        runners_for(url, "quantum", 1, 8),
    ):
        session_id = client.post("/sessions", json={}).json()["id"]
        execute = f"/sessions/{session_id}/execute"
        warm = client.post(execute, json=_sample_body(big, OVERHEAD_SHOTS, 7)).json()
        assert warm["state"] == "succeeded", warm
        through: list[float] = []
        for _ in range(repeat):
            started = time.perf_counter()
            done = client.post(execute, json=_sample_body(big, OVERHEAD_SHOTS, 7)).json()
            through.append(time.perf_counter() - started)
            assert done["state"] == "succeeded", done
        sources = [_standard_qasm3(5, 5, seed=1000 + n) for n in range(small)]
        rate = asyncio.run(_throughput(url, session_id, sources))
        exotic = [_random_qasm3(5, 5, seed=5000 + n) for n in range(small // 2)]
        exotic_rate = asyncio.run(_throughput(url, session_id, exotic))
        with runners_for(url, "quantum", 1, 8):
            wait_runners(client, 2, ("quantum",))
            more = [_standard_qasm3(5, 5, seed=9000 + n) for n in range(small)]
            two_rate = asyncio.run(_throughput(url, session_id, more))
        cached_body = _sample_body(sources[0], 1000, 3, allow_cached=True)
        first = client.post(execute, json=cached_body).json()
        assert first["state"] == "succeeded", first
        hits: list[float] = []
        for _ in range(200):
            started = time.perf_counter()
            hit = client.post(execute, json=cached_body).json()
            hits.append(time.perf_counter() - started)
            assert hit["cache_hit"] is True, hit
    return {
        "direct_s": statistics.median(direct),
        "platform_s": statistics.median(through),
        "repeat": repeat,
        "small": small,
        "small_per_s": rate,
        "exotic_per_s": exotic_rate,
        "two_runners_per_s": two_rate,
        "cache_p50_ms": statistics.median(hits) * 1000,
        "cache_p99_ms": sorted(hits)[int(0.99 * len(hits))] * 1000,
    }


CLIENTS = 64
"""Requests in flight: each waits for its result, so fewer would measure latency."""


async def _throughput(url: str, session_id: str, sources: list[str]) -> float:
    """Executions per second of ``sources``, CLIENTS at a time, from the first request
    to the last answer.  The lean generator of ``bench/loadgen.py`` sends them: httpx
    spends 5–8 ms of CPU per request at this concurrency, which on two cores would be
    taken from the platform under test."""
    parsed = httpx.URL(url)
    host, port = parsed.host, int(parsed.port or 80)
    headers = {"X-API-Key": ADMIN_KEY}
    path = f"/sessions/{session_id}/execute"
    requests = [
        build_request(
            "POST", host, port, path, headers, json.dumps(_sample_body(s, 1000, n)).encode()
        )
        for n, s in enumerate(sources)
    ]
    elapsed, answers = await run_each(host, port, requests, connections=CLIENTS)
    states = {
        json.loads(body).get("state", f"HTTP {status}") if status == 200 else f"HTTP {status}"
        for status, body in answers
    }
    assert states == {"succeeded"}, states
    return len(sources) / elapsed


def rows(m: dict[str, Any]) -> list[str]:
    ratio = m["platform_s"] / m["direct_s"]
    return [
        "| quantum | value | vs anchor |",
        "| --- | ---: | ---: |",
        f"| qiskit-aer directly: {OVERHEAD_QUBITS} qubits, depth {OVERHEAD_DEPTH}, "
        f"{OVERHEAD_SHOTS:,} shots (median of {m['repeat']}) | {m['direct_s'] * 1000:,.0f} ms | "
        "1.00x (anchor) |",
        f"| the same through REST, quantum runner | {m['platform_s'] * 1000:,.0f} ms | "
        f"{ratio:.2f}x |",
        f"| 5-qubit circuits of standard gates, 1,000 shots, through REST, one runner "
        f"(n={m['small']}, all different; target >= 100/s) | {m['small_per_s']:,.0f} "
        "executions/s | |",
        f"| the same, two runners (n={m['small']}; target >= 180/s) | "
        f"{m['two_runners_per_s']:,.0f} executions/s | "
        f"{m['two_runners_per_s'] / m['small_per_s']:.2f}x of one runner |",
        f"| the same with `random_circuit`'s gate set (rccx, cu3…: Qiskit's Python OpenQASM 3 "
        f"importer, n={m['small'] // 2}) | {m['exotic_per_s']:,.0f} executions/s | |",
        f"| cache hit over HTTP, p50 / p99 | {m['cache_p50_ms']:.1f} / "
        f"{m['cache_p99_ms']:.1f} ms | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quantum")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--small", type=int, default=500)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="limit-bench-quantum-"))
    for line in rows(measure(workdir, args.repeat, args.small)):
        print(line)


if __name__ == "__main__":
    main()
