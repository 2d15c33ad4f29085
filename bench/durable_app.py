"""The second anchor: the least a durable ``echo`` can do on this stack.

A FastAPI app with the bare app's pydantic body (``bench/bare_app.py``) that, per
request, writes the record and one hash-chained entry (SHA-256 over the previous hash
and the record's JSON) to SQLite in WAL mode with ``synchronous=FULL``, group-committed
by one writer thread, and answers after the commit.  No authentication, no policy, no
Merkle tree, no events: what separates the platform from it is what the platform does
beyond a durable record (``docs/performance.md``).

``LIMIT_BENCH_DB`` names the database file (a temporary one by default).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

MAX_BATCH = 512


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str
    inputs: dict[str, Any]


class Record(BaseModel):
    id: uuid.UUID
    agent: str
    state: str
    inputs: dict[str, Any]
    result: dict[str, Any]
    finished_at: datetime


class Writer:
    """One thread, one connection: each batch of records in one transaction."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, doc TEXT)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, record TEXT, hash BLOB)"
        )
        self._prev = b"\0" * 32
        self._seq = 0
        self._queue: asyncio.Queue[tuple[Record, asyncio.Future[None]]] = asyncio.Queue()
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._db.close()

    async def write(self, record: Record) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((record, done))
        await done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self._commit, [record for record, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for _, done in batch:
                    done.set_result(None)

    def _commit(self, records: list[Record]) -> None:
        with self._lock:
            rows, entries = [], []
            prev, seq = self._prev, self._seq
            for record in records:
                doc = record.model_dump_json()
                prev = hashlib.sha256(prev + doc.encode()).digest()
                rows.append((str(record.id), doc))
                entries.append((seq, str(record.id), prev))
                seq += 1
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO records VALUES (?, ?)", rows)
                self._db.executemany("INSERT INTO ledger VALUES (?, ?, ?)", entries)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._prev, self._seq = prev, seq


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    path = os.environ.get("LIMIT_BENCH_DB") or os.path.join(
        tempfile.mkdtemp(prefix="limit-bench-durable-"), "anchor.db"
    )
    writer = Writer(path)
    writer.start()
    app.state.writer = writer
    try:
        yield
    finally:
        await writer.stop()


app = FastAPI(lifespan=lifespan)


@app.post("/echo")
async def echo(body: Payload) -> Record:
    record = Record(
        id=uuid.uuid4(),
        agent=body.agent,
        state="succeeded",
        inputs=body.inputs,
        result=json.loads(json.dumps(body.inputs)),
        finished_at=datetime.now(UTC),
    )
    await app.state.writer.write(record)
    return record


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
