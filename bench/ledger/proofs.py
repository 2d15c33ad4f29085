"""Inclusion proofs at a million entries: in the process and through the API.

On the big ledger (:mod:`bench.ledger.build`), in Postgres and in SQLite, for random
indexes and the tree's whole size, each proof checked against the root (untimed):

- in the process: the store's read of the proof's nodes plus
  :func:`~limit_graph.core.merkle.inclusion_proof` (one query of O(log n) keyed rows),
  then :meth:`AuditService.inclusion` of a started platform (also the head and the
  entry's leaf hash: three reads); the anchor is the same pool's bare round trip
  (``SELECT 1`` on a connection it hands out);
- through the API: ``GET /audit/proof/inclusion?index=&size=`` of ``limit up`` on that
  database under uvicorn on loopback, from an ``httpx`` client; the anchor is a bare
  FastAPI ``GET /health`` under uvicorn, from the same client.

Both platforms run with lineage off: the ledger was loaded in bulk, and a platform that
had written it would have derived its lineage as it went, where these would spend the
run catching up a million entries beside the proofs being timed.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text

from bench.serving import serve
from limit_graph.core import merkle
from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import free_port
from limit_graph.orchestration.platform import Platform
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.ledger import decode_hash

__all__ = ["ProofResult", "measure", "rows"]

IN_PROCESS_TARGET_MS = 0.5
HTTP_TARGET_MS = 5.0
KEY = "bench-ledger-admin-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
POOL = "anchor: a bare round trip on the store's pool (`SELECT 1`)"
STORE = "the store's nodes read + `merkle.inclusion_proof`"
SERVICE = "`AuditService.inclusion` of a started platform (one read of the nodes, leaf included)"
BARE = "anchor: bare FastAPI `GET /health` under uvicorn"
API = "`GET /audit/proof/inclusion`, `limit up` under uvicorn (random index, size = head)"


@dataclass(frozen=True)
class ProofResult:
    database: str
    size: int
    samples: dict[str, list[float]]
    """Seconds per call, by row name."""
    anchors: dict[str, str]
    """Each row's anchor row."""


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e3


async def _timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    for _ in range(min(50, count)):
        await call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def _store_proofs(
    url: str, size: int, count: int, rng: random.Random
) -> dict[str, list[float]]:
    storage = DatabaseStorage(url)
    await storage.start()
    try:
        head = await storage.ledger.head()
        assert head.size >= size

        async def prove() -> None:
            index = rng.randrange(size)
            nodes = await storage.ledger.nodes(merkle.inclusion_node_ids(index, size))
            merkle.inclusion_proof(index, size, nodes)

        async def bare() -> None:
            async with storage.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        # every proof checked once, untimed
        for _ in range(20):
            index = rng.randrange(head.size)
            ids = merkle.inclusion_node_ids(index, head.size)
            proof = merkle.inclusion_proof(index, head.size, await storage.ledger.nodes(ids))
            [leaf] = (await storage.ledger.nodes([(0, index)])).values()
            merkle.verify_inclusion(index, head.size, leaf, proof, head.root)
        return {
            POOL: await _timed(bare, count),
            STORE: await _timed(prove, count),
        }
    finally:
        await storage.close()


async def _service_proofs(
    url: str, home: Path, size: int, count: int, rng: random.Random
) -> list[float]:
    settings = load_settings(environ={}, home=str(home), storage__url=url, lineage__enabled=False)
    platform = await Platform.start(settings)
    try:

        async def prove() -> None:
            index = rng.randrange(size)
            proof = await platform.audit.inclusion(index, size)
            assert proof.hashes or size == 1

        head = await platform.storage.ledger.head()
        index = rng.randrange(head.size)
        proof = await platform.audit.inclusion(index, head.size)
        merkle.verify_inclusion(index, head.size, proof.leaf_hash, proof.hashes, head.root)
        return await _timed(prove, count)
    finally:
        await platform.close()


def _http_samples(
    port: int, count: int, path: Callable[[], str], headers: dict[str, str]
) -> list[float]:
    samples = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        for n in range(count + min(50, count)):
            started = time.perf_counter()
            answer = client.get(path())
            took = time.perf_counter() - started
            if answer.status_code != 200:
                raise RuntimeError(f"GET {path()}: {answer.status_code} {answer.text[:300]}")
            if n >= min(50, count):
                samples.append(took)
    return samples


def _http_proofs(
    url: str, home: Path, size: int, count: int, rng: random.Random
) -> dict[str, list[float]]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LIMIT_", "DATABASE_"))}
    env = {  # the settings the in-process platform had: its home's KEK, not the caller's
        **inherited,
        "LIMIT_HOME": str(home),
        "LIMIT_ADMIN_API_KEY": KEY,
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": url,
    }
    found: dict[str, list[float]] = {}
    home.mkdir(parents=True, exist_ok=True)
    bare_port = free_port()
    bare = [
        sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1",
        "--port", str(bare_port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with serve(bare, bare_port, env, ROOT):
        found[BARE] = _http_samples(bare_port, count, lambda: "/health", {})
    port = free_port()
    limit = str(Path(sys.executable).parent / "limit")
    config = home / "bench.toml"
    config.write_text("[lineage]\nenabled = false\n", encoding="utf-8")
    command = [limit, "up", "--no-prefect", "--config", str(config), "--bind", f"127.0.0.1:{port}"]
    with serve(command, port, env, home):
        auth = {"X-API-Key": KEY}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth) as client:
            checkpoint = client.get("/audit/checkpoint").json()
        tree = int(checkpoint["tree_size"])
        root = decode_hash(checkpoint["root_hash"])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth) as client:
            index = rng.randrange(tree)
            answer = client.get(f"/audit/proof/inclusion?index={index}&size={tree}").json()
        merkle.verify_inclusion(
            index,
            tree,
            decode_hash(answer["leaf_hash"]),
            [decode_hash(h) for h in answer["hashes"]],
            root,
        )
        found[API] = _http_samples(
            port,
            count,
            lambda: f"/audit/proof/inclusion?index={rng.randrange(size)}&size={tree}",
            auth,
        )
    return found


def measure(
    url: str, size: int, home: Path, count: int, http_count: int, *, database: str = "Postgres"
) -> ProofResult:
    rng = random.Random(6962)
    home.mkdir(parents=True, exist_ok=True)
    samples = asyncio.run(_store_proofs(url, size, count, rng))
    # one home for both platforms: the server opens the keys the first one sealed
    samples[SERVICE] = asyncio.run(_service_proofs(url, home, size, count, rng))
    samples.update(_http_proofs(url, home, size, http_count, rng))
    anchors = {STORE: POOL, SERVICE: POOL, API: BARE}
    return ProofResult(database, size, samples, anchors)


def rows(result: ProofResult) -> list[str]:
    lines = [
        f"| inclusion proof at {result.size:,} entries, {result.database} | p50 ms | p99 ms | "
        "p50 vs its anchor |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, samples in result.samples.items():
        anchor = result.anchors.get(name)
        ratio = (
            f"{statistics.median(samples) / statistics.median(result.samples[anchor]):.1f}x"
            if anchor
            else "1.0x (anchor)"
        )
        lines.append(f"| {name} | {_p(samples, 0.5):.3f} | {_p(samples, 0.99):.3f} | {ratio} |")
    store, api = _p(result.samples[STORE], 0.5), _p(result.samples[API], 0.5)
    lines += [
        "",
        f"{result.database}: in process {store:.3f} ms p50 (target < {IN_PROCESS_TARGET_MS} ms: "
        f"{'meets' if store < IN_PROCESS_TARGET_MS else 'misses'}); through the API "
        f"{api:.2f} ms p50 (target < {HTTP_TARGET_MS:.0f} ms: "
        f"{'meets' if api < HTTP_TARGET_MS else 'misses'}); "
        f"{len(result.samples[STORE]):,} in-process and {len(result.samples[API]):,} "
        "HTTP samples, random indexes, size = the head.",
    ]
    return lines
