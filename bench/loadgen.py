"""A lean HTTP/1.1 load generator: keep-alive connections on asyncio streams.

It spends little CPU per request (pre-built request bytes, Content-Length framing),
so that on a 2-core machine most of the cores go to the server under test.  Each
connection sends its next request when the previous answer is complete.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_request(
    method: str, host: str, port: int, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    status, _ = await _read_answer(reader)
    return status


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and body of the next response on ``reader``."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    body = b""
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                break
    elif length:
        body = await reader.readexactly(length)
    return status, body


async def run_load(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    connections: int,
    duration_s: float,
    warmup_s: float = 1.0,
) -> LoadResult:
    """Drive the server for ``warmup_s`` (not counted) and then ``duration_s``."""
    result = LoadResult()
    started = time.perf_counter()
    measure_from = started + warmup_s
    stop_at = measure_from + duration_s

    async def connection(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        try:
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                writer.write(requests[i % len(requests)])
                i += 1
                status = await _read_response(reader)
                done = time.perf_counter()
                if done >= measure_from and sent < stop_at:
                    result.requests += 1
                    result.latencies.append(done - sent)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    if status >= 400:
                        result.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(n) for n in range(connections)))
    result.seconds = duration_s
    return result


def median_run(
    port: int,
    requests: list[bytes],
    *,
    repeat: int,
    connections: int,
    duration_s: float,
    warmup_s: float,
) -> LoadResult:
    """The run of median throughput among ``repeat`` runs of :func:`run_load` on
    127.0.0.1."""
    runs = [
        asyncio.run(
            run_load(
                "127.0.0.1",
                port,
                requests,
                connections=connections,
                duration_s=duration_s,
                warmup_s=warmup_s,
            )
        )
        for _ in range(repeat)
    ]
    runs.sort(key=lambda r: r.rps)
    return runs[len(runs) // 2]


async def run_each(
    host: str, port: int, requests: list[bytes], *, connections: int
) -> tuple[float, list[tuple[int, bytes]]]:
    """Send every request once over ``connections`` keep-alive connections; the seconds
    from the first request to the last answer, and each answer (status, body) in the
    order of ``requests``."""
    answers: list[tuple[int, bytes]] = [(0, b"")] * len(requests)
    queue = iter(range(len(requests)))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in queue:
                writer.write(requests[index])
                answers[index] = await _read_answer(reader)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(min(connections, len(requests)))))
    return time.perf_counter() - started, answers
