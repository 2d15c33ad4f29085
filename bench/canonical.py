"""Hashing a document as RFC 8785 has it, against the canonical JSON it replaced.

The anchor is the platform's hash before RFC 8785: ``json.dumps`` with sorted keys and
minimal separators, Python's float ``repr`` and code-point member order, then SHA-256.
Each row is ``sha256_hex`` on one document, both functions timed in the same run,
interleaved (``--loops`` calls a sample, the median of ``--repeat`` samples):

- an execution as the platform stores and hashes it (``Execution.document()``) whose
  estimator result holds exact standard errors (``0.0``) and whose timeout is
  ``30.0``: floats ECMAScript writes otherwise, so the text is rewritten;
- the same execution whose floats all have a fraction (``30.5``): written alike, so
  the text is only scanned;
- a float-heavy result: 500 floats, a fifth of them integral, some tiny or huge;
- a document with non-ASCII keys (and no character above U+FFFF, the common case).

The pure-Python ``rfc8785`` package (a test dependency: the independent reference the
tests compare with) is timed too, for scale.  ``python -m bench.canonical`` prints the
table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from limit_graph.core.canonical import canonical_json, sha256_hex
from limit_graph.core.models import BackendKind, CheckResult, Execution, ExecutionState

MAX_RATIO = 1.3
"""What the common case (some floats) may cost against the anchor."""


def before(document: Any) -> str:
    """The anchor: the platform's hash before RFC 8785."""
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def execution_document(timeout_s: float, stds: list[float]) -> dict[str, Any]:
    """A finished estimator execution, as stored and hashed."""
    now = datetime(2025, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    execution = Execution(
        id=uuid.UUID(int=1),
        session_id=uuid.UUID(int=2),
        agent="quantum.estimate",
        agent_version="1.2.0",
        backend=BackendKind.QUANTUM,
        instance="aer-1",
        state=ExecutionState.SUCCEEDED,
        inputs={
            "target": "aer",
            "pubs": [
                {
                    "circuit": {"qasm3": "OPENQASM 3.0; qubit[2] q; h q[0]; cx q[0], q[1];"},
                    "observables": [{"pauli": "ZZ", "coeff": 1.5}, {"pauli": "XX", "coeff": 0.5}],
                    "parameter_values": {"theta": 0.7853981633974483},
                }
            ],
            "seed": 7,
        },
        result={
            "pubs": [{"evs": [0.9999999999999998, 0.4375], "stds": stds}],
            "target": "aer",
            "metadata": {
                "target": "aer",
                "target_kind": "aer",
                "simulator": True,
                "snapshot_id": "ideal",
                "pubs": [
                    {
                        "circuit_sha256": "ab" * 32,
                        "transpiled_sha256": "cd" * 32,
                        "num_qubits": 2,
                        "depth": 3,
                        "size": 4,
                        "optimization_level": 1,
                        "seed_transpiler": 7,
                        "precision": 0.015625,
                    }
                ],
            },
        },
        attempts=1,
        submitted_at=now,
        started_at=now,
        finished_at=now,
        provenance_entry=41,
        timeout_s=timeout_s,
        actor="alice",
        checks=[CheckResult(check="circuit-limits", passed=True, policy_ids=["limits"])],
    )
    return execution.document()


def float_heavy_document() -> dict[str, Any]:
    """500 floats: most with a fraction, a fifth integral, some tiny and some huge."""
    rng = random.Random(8785)
    values: list[float] = []
    for i in range(500):
        if i % 5 == 0:
            values.append(float(rng.randint(-100, 100)))
        elif i % 25 == 1:
            values.append(rng.random() * 1e-6)
        elif i % 25 == 2:
            values.append(rng.random() * 1e18)
        else:
            values.append(rng.uniform(-10, 10))
    return {"series": values, "labels": [f"x{i}" for i in range(50)], "n": len(values)}


def non_ascii_document() -> dict[str, Any]:
    """Keys and values in several scripts, all within the Basic Multilingual Plane."""
    return {
        "données": {"température": 21.5, "humidité": 0.43, "capteur": "salle-à-manger"},
        "名前": "量子回路",
        "ключ": [{"значение": i, "метка": f"α{i}"} for i in range(20)],
        "état": "terminé",
        "Größe": 1024,
    }


def per_call_us(function: Callable[[Any], str], document: Any, loops: int) -> float:
    started = time.perf_counter()
    for _ in range(loops):
        function(document)
    return (time.perf_counter() - started) / loops * 1e6


def measure(
    document: Any, loops: int, repeat: int, others: dict[str, Callable[[Any], str]]
) -> dict[str, float]:
    """Median µs a call of ``before`` and of each of ``others``, sampled interleaved."""
    functions = {"before": before, **others}
    for function in functions.values():
        per_call_us(function, document, loops)  # warm up
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeat):
        for name, function in functions.items():
            samples[name].append(per_call_us(function, document, loops))
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=200, help="calls per sample")
    parser.add_argument("--repeat", type=int, default=51, help="samples per function")
    args = parser.parse_args()
    others: dict[str, Callable[[Any], str]] = {"after": sha256_hex}
    try:
        import rfc8785
    except ImportError:
        pass
    else:
        others["rfc8785"] = lambda d: hashlib.sha256(rfc8785.dumps(d)).hexdigest()
    cases = [
        ("execution, floats rewritten (0.0, 30.0)", execution_document(30.0, [0.0, 0.0])),
        ("execution, floats written alike (30.5)", execution_document(30.5, [0.25, 0.125])),
        ("float-heavy: 500 floats, 1 in 5 integral", float_heavy_document()),
        ("non-ASCII keys (BMP only)", non_ascii_document()),
    ]
    print(f"sha256_hex against the pre-RFC 8785 hash (median of {args.repeat} x {args.loops})\n")
    print("| document | bytes | before µs | after µs | after / before | rfc8785 / before |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, document in cases:
        times = measure(document, args.loops, args.repeat, others)
        size = len(canonical_json(document).encode("utf-8"))
        reference = f"{times['rfc8785'] / times['before']:.1f}" if "rfc8785" in times else "-"
        print(
            f"| {label} | {size:,} | {times['before']:.1f} | {times['after']:.1f} "
            f"| {times['after'] / times['before']:.2f} | {reference} |"
        )
    print(f"\nThe common case (some floats) should stay within {MAX_RATIO}x.")


if __name__ == "__main__":
    main()
