"""RFC 6962 proofs and roots of a large in-memory tree, against the hashing they cannot avoid.

One run builds a :class:`~limit_graph.core.merkle.MerkleTree` of ``--leaves`` leaf hashes
(1,000,000 by default) and measures, each against its anchor in the same run:

- an inclusion proof of a random leaf in the whole tree (``MerkleTree.inclusion_proof``,
  the node reads and the hashing of the non-perfect ranges), and its verification
  (``verify_inclusion``): p50 and p99 over ``--proofs`` proofs; the anchor is as many
  bare SHA-256 node hashes as the proof has elements, what a verifier cannot do without;
- a consistency proof from a random earlier size, and its verification, likewise;
- the root of all the leaves recomputed (``root_of``) and the tree built at once
  (``MerkleTree(leaves)``); the anchor is the ``n - 1`` bare node hashes of the tree.

``python -m bench.merkle`` prints the table; the target is an inclusion proof well under
0.5 ms at a million leaves.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
from collections.abc import Callable

from limit_graph.core.merkle import MerkleTree, root_of, verify_consistency, verify_inclusion

TARGET_US = 500.0
"""An inclusion proof at a million leaves, in-process: well under this."""


def bare_hashes(count: int) -> float:
    """Seconds for ``count`` SHA-256 node hashes and nothing else: the anchor."""
    left, right = hashlib.sha256(b"l").digest(), hashlib.sha256(b"r").digest()
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for _ in range(count):
        sha256(b"\x01" + left + right).digest()
    return time.perf_counter() - started


def timed_us(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1e6


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return statistics.median(samples), cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=1000, help="proofs of each kind")
    args = parser.parse_args()
    n, rng = args.leaves, random.Random(6962)
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]

    build_s = -time.perf_counter()
    tree = MerkleTree(leaves)
    build_s += time.perf_counter()
    root_s = -time.perf_counter()
    root = root_of(leaves)
    root_s += time.perf_counter()
    anchor_s = bare_hashes(n - 1)
    assert root == tree.root()

    rows: list[tuple[str, float, float, float]] = []
    for kind in ("inclusion", "consistency"):
        make: list[float] = []
        check: list[float] = []
        floor: list[float] = []
        for _ in range(args.proofs):
            if kind == "inclusion":
                index = rng.randrange(n)
                proof = tree.inclusion_proof(index, n)
                make.append(timed_us(lambda i=index: tree.inclusion_proof(i, n)))
                check.append(
                    timed_us(lambda i=index, p=proof: verify_inclusion(i, n, leaves[i], p, root))
                )
            else:
                first = rng.randrange(1, n)
                proof = tree.consistency_proof(first, n)
                first_root = tree.root(first)
                make.append(timed_us(lambda f=first: tree.consistency_proof(f, n)))
                check.append(
                    timed_us(
                        lambda f=first, p=proof, r=first_root: verify_consistency(f, n, r, root, p)
                    )
                )
            floor.append(bare_hashes(len(proof)) * 1e6)
        anchor = statistics.median(floor)
        for what, samples in ((f"{kind} proof", make), (f"{kind} verification", check)):
            p50, p99 = percentiles(samples)
            rows.append((what, p50, p99, p50 / anchor))

    print(f"RFC 6962 Merkle tree of {n:,} leaves, {args.proofs} proofs of each kind\n")
    print("| operation | p50 µs | p99 µs | p50 / bare hashes of its proof |")
    print("| --- | ---: | ---: | ---: |")
    for what, p50, p99, ratio in rows:
        print(f"| {what} | {p50:.1f} | {p99:.1f} | {ratio:.1f} |")
    print("\n| whole tree | seconds | / bare hashes of the tree |")
    print("| --- | ---: | ---: |")
    print(f"| `root_of` (recompute the root) | {root_s:.2f} | {root_s / anchor_s:.2f} |")
    print(f"| `MerkleTree(leaves)` (all nodes) | {build_s:.2f} | {build_s / anchor_s:.2f} |")
    print(f"| bare SHA-256 node hashes (anchor) | {anchor_s:.2f} | 1.00 |")
    inclusion_p50 = rows[0][1]
    verdict = "within" if inclusion_p50 < TARGET_US else "OVER"
    print(f"\nInclusion proof p50 {inclusion_p50:.1f} µs: {verdict} the {TARGET_US:.0f} µs target.")


if __name__ == "__main__":
    main()
