"""The ledger's checkpoints: the key made once and kept sealed, a checkpoint every N
entries or T seconds when anything is new, and each one published outside the database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from limit_graph.core import notes
from limit_graph.core.ledger_settings import LedgerSettings
from limit_graph.governance.secrets import ServerSecret
from limit_graph.orchestration.checkpoints import (
    KEY_NAME,
    KEY_NAMESPACE,
    Checkpointer,
    load_ledger_key,
    stored_verifier_key,
)
from limit_graph.storage.base import Storage
from limit_graph.storage.file import FileStorage
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.memory import MemoryStorage
from tests.fixtures.clock import FakeClock

ORIGIN = "example.test/ledger"
SECRET = ServerSecret("a server secret for the checkpoint tests")


async def _write(storage: Storage, count: int) -> None:
    for n in range(count):
        await storage.write_entry(
            EntryDraft(
                actor="alice",
                action="thing.done",
                resource_type="thing",
                resource_id=f"t-{n}",
                session_id=None,
                payload={"n": n},
            )
        )


async def _make(
    storage: Storage, tmp_path: Path, clock: FakeClock, **settings: object
) -> Checkpointer:
    key = await load_ledger_key(storage, SECRET, ORIGIN)
    config = LedgerSettings(origin=ORIGIN, **settings)
    return Checkpointer(storage, key, config, tmp_path / "checkpoints", monotonic=clock)


async def test_the_key_is_made_once_sealed_and_read_back_by_every_process(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "store")
    await storage.start()
    made = await asyncio.gather(*(load_ledger_key(storage, SECRET, ORIGIN) for _ in range(4)))
    assert len({key.verifier_key for key in made}) == 1
    await storage.close()
    storage = FileStorage(tmp_path / "store")  # the next start reads the key back
    await storage.start()
    again = await load_ledger_key(storage, SECRET, ORIGIN)
    assert again.verifier_key == made[0].verifier_key
    assert await stored_verifier_key(storage, ORIGIN) == made[0].verifier_key

    stored = await storage.get_value(KEY_NAMESPACE, f"{KEY_NAME}:{ORIGIN}")
    assert stored is not None
    seed = made[0].signer.private_bytes()
    assert seed.hex() not in str(stored) and seed not in str(stored).encode()
    with pytest.raises(Exception, match="(?i)decrypt|secret|tag|invalid"):
        await load_ledger_key(storage, ServerSecret("another secret altogether"), ORIGIN)


async def test_a_checkpoint_comes_after_n_entries_or_t_seconds_when_anything_is_new(
    tmp_path: Path,
) -> None:
    storage = MemoryStorage()
    clock = FakeClock()
    checkpointer = await _make(
        storage, tmp_path, clock, checkpoint_entries=5, checkpoint_interval_s=10
    )
    assert not await checkpointer.due()  # empty: nothing to sign
    await _write(storage, 4)
    assert not await checkpointer.due()  # 4 of 5, and 10 s have not passed
    await _write(storage, 1)
    assert await checkpointer.due()  # 5 new
    first = await checkpointer.checkpoint()
    assert first is not None and first.tree_size == 5
    assert not await checkpointer.due()
    clock.advance(60)
    assert not await checkpointer.due()  # nothing new, however long

    await _write(storage, 1)
    assert await checkpointer.due()  # the first entry after a quiet minute: at once
    second = await checkpointer.checkpoint()
    assert second is not None and second.tree_size == 6
    await _write(storage, 1)
    clock.advance(9.9)
    assert not await checkpointer.due()
    clock.advance(0.1)
    assert await checkpointer.due()  # one new entry, 10 s after the last checkpoint

    assert [c.tree_size for c in await storage.ledger.checkpoints(after_size=-1)] == [
        5,
        6,
    ]


async def test_a_checkpoint_is_a_signed_note_of_the_head(tmp_path: Path) -> None:
    storage = MemoryStorage()
    checkpointer = await _make(storage, tmp_path, FakeClock())
    assert await checkpointer.checkpoint() is None  # an empty ledger has none
    await _write(storage, 3)

    made = await checkpointer.checkpoint()

    assert made is not None
    head = await storage.ledger.head()
    opened = notes.open_note(made.note, [checkpointer.key.verifier])
    body = notes.parse_checkpoint(opened.text)
    assert (body.origin, body.size, body.root_hash) == (ORIGIN, 3, head.root)
    assert (made.tree_size, made.root_hash, made.key_id) == (3, head.root, checkpointer.key.key_id)
    # Asked again with nothing new, it answers the same checkpoint and signs none.
    assert await checkpointer.checkpoint() == made
    assert len(await storage.ledger.checkpoints(after_size=-1)) == 1


async def test_each_checkpoint_is_written_to_the_folder_atomically(tmp_path: Path) -> None:
    storage = MemoryStorage()
    checkpointer = await _make(storage, tmp_path, FakeClock())
    await _write(storage, 2)
    first = await checkpointer.checkpoint()
    await _write(storage, 2)
    second = await checkpointer.checkpoint()
    assert first is not None and second is not None

    assert checkpointer.latest_path.read_text(encoding="utf-8") == second.note
    assert sorted(p.name for p in checkpointer.latest_path.parent.iterdir()) == ["latest.note"]


async def test_a_folder_that_cannot_be_written_does_not_stop_the_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = MemoryStorage()
    blocked = tmp_path / "checkpoints"
    blocked.write_text("a file where the folder should be", encoding="utf-8")
    key = await load_ledger_key(storage, SECRET, ORIGIN)
    checkpointer = Checkpointer(storage, key, LedgerSettings(origin=ORIGIN), blocked)
    await _write(storage, 1)

    made = await checkpointer.checkpoint()

    assert made is not None and await storage.ledger.latest_checkpoint() == made
    assert "checkpoint 1 not written to" in caplog.text


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str]] = []
    status = 204

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        length = int(self.headers["content-length"])
        body = self.rfile.read(length).decode("utf-8")
        type(self).received.append((self.headers["content-type"], body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, type[_Collector]]]:
    handler = type("Collector", (_Collector,), {"received": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/checkpoints", handler
    finally:
        server.shutdown()
        server.server_close()


async def test_each_checkpoint_is_posted_to_the_url_and_a_refusal_is_logged(
    tmp_path: Path,
    collector: tuple[str, type[_Collector]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, handler = collector
    storage = MemoryStorage()
    checkpointer = await _make(storage, tmp_path, FakeClock(), checkpoint_url=url)
    await _write(storage, 2)
    made = await checkpointer.checkpoint()
    assert made is not None
    assert handler.received == [("text/plain", made.note)]

    handler.status = 500
    await _write(storage, 1)
    refused = await checkpointer.checkpoint()

    assert refused is not None and refused.tree_size == 3  # stored all the same
    assert f"checkpoint 3 not accepted by {url}" in caplog.text


async def test_the_background_task_checkpoints_and_stops(tmp_path: Path) -> None:
    storage = MemoryStorage()
    key = await load_ledger_key(storage, SECRET, ORIGIN)
    settings = LedgerSettings(origin=ORIGIN, checkpoint_entries=2)
    checkpointer = Checkpointer(storage, key, settings, tmp_path, poll_s=0.01)
    checkpointer.start()
    try:
        await _write(storage, 2)
        for _ in range(500):
            if await storage.ledger.latest_checkpoint() is not None:
                break
            await asyncio.sleep(0.01)
        latest = await storage.ledger.latest_checkpoint()
        assert latest is not None and latest.tree_size == 2
    finally:
        await checkpointer.close()
