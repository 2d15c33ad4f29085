"""Data-key rotation while the store serves: nothing written before, during or after it is
lost, every record ends up under the new key, the old one is retired, and a rotation a
restart cut short carries on."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from limit_graph.core.encryption_settings import EncryptionSettings
from limit_graph.core.errors import Conflict
from limit_graph.core.models import Execution, Session
from limit_graph.core.sealing import KeyEncryptionKeys
from limit_graph.orchestration.data_keys import DataKeyRotation, RotationPhase
from limit_graph.storage.base import Storage
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.keyring import DataKeyState
from limit_graph.storage.ledger import verify_entries
from limit_graph.storage.memory import MemoryStorage
from tests.fixtures.records import commit_session, make_session
from tests.fixtures.sealing import (
    SEALED_KINDS,
    dump,
    new_keks,
    open_sealed,
    opened,
    rewrite_execution,
    sensitive_execution,
    stored_document,
)

SETTINGS = EncryptionSettings(rotation_batch_size=7, key_refresh_s=0)


async def _instantly(_: float) -> None:
    await asyncio.sleep(0)


class Written:
    """What the test wrote last to each execution, to compare every record with."""

    def __init__(self) -> None:
        self.last: dict[Any, Execution] = {}

    async def write(self, store: Storage, execution: Execution) -> None:
        stored = await store.write_execution(execution, actor="alice", action="execution.saved")
        self.last[stored.id] = stored

    async def fill(self, store: Storage, count: int) -> Session:
        """A new session holding ``count`` new sensitive executions."""
        session = await commit_session(store, make_session())
        for _ in range(count):
            await self.write(store, sensitive_execution(session)[0])
        return session

    async def check(self, store: Storage) -> None:
        for execution_id, expected in self.last.items():
            found = await store.get_execution(execution_id)
            assert found is not None, f"execution {execution_id} was lost"
            assert found.model_dump(exclude={"provenance_entry"}) == expected.model_dump(
                exclude={"provenance_entry"}
            )


async def _churn(store: Storage, session: Session, written: Written, stop: asyncio.Event) -> int:
    """Writes new sensitive executions and rewrites old ones until ``stop``; reads all
    the while.  How many writes it made."""
    count = 0
    rng = random.Random(7)
    while not stop.is_set():
        if written.last and rng.random() < 0.5:
            earlier = rng.choice(list(written.last.values()))
            again = earlier.model_copy(update={"result": {"answer": f"again-{count}"}})
            await written.write(store, again)
        else:
            await written.write(store, sensitive_execution(session)[0])
        some = rng.choice(list(written.last))
        assert (await store.get_execution(some)) is not None
        count += 1
        await asyncio.sleep(0)
    return count


@pytest.mark.parametrize("kind", SEALED_KINDS)
async def test_rotation_under_concurrent_writes_and_reads_loses_nothing(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = open_sealed(kind, request, tmp_path)
    keks = new_keks()
    written = Written()
    async with opened(backend, keks) as store:
        old = store.keyring.active_id()
        session = await written.fill(store, 40)
        rotation = DataKeyRotation(store, SETTINGS, sleep=_instantly)
        stop = asyncio.Event()
        churn = asyncio.create_task(_churn(store, session, written, stop))
        started = await rotation.rotate("admin")
        assert started.retiring == [old] and started.active != old
        with pytest.raises(Conflict, match="running"):
            await rotation.rotate("admin")
        done = await rotation.wait()
        stop.set()
        writes = await churn
        assert done is not None and done.phase is RotationPhase.DONE, done
        assert done.resealed > 0 and writes > 0  # some of the 40 the churn rewrote first
        states = {r.kid: r.state for r in store.keyring.records()}
        assert states == {old: DataKeyState.RETIRED, done.active: DataKeyState.ACTIVE}
        await written.check(store)
        assert verify_entries(await store.list_entries(limit=100_000)) is None
        actions = [e.action for e in await store.list_entries(limit=100_000)]
        assert actions.count("data_key.rotated") == 1 and actions.count("data_key.retired") == 1
    assert f"lgenc:v1:{old}:" not in dump(backend)
    assert f"lgenc:v1:{done.active}:" in dump(backend)
    async with opened(backend, keks) as reopened:
        await written.check(reopened)


@pytest.mark.parametrize("kind", [p for p in SEALED_KINDS if p.id != "file"])
async def test_a_process_that_sealed_late_under_the_old_key_is_swept(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Another process keeps sealing under the old key until it re-reads the ring; the
    rotation's settle waits that out, and its sweep reseals what was sealed meanwhile."""
    backend = open_sealed(kind, request, tmp_path)
    keks = new_keks()
    written = Written()
    settled = asyncio.Event()

    async def settle(_: float) -> None:
        await settled.wait()

    async with opened(backend, keks) as store:
        old = store.keyring.active_id()
        session = await written.fill(store, 10)
        stale = DatabaseStorage(backend.location, keks=keks, key_refresh_s=3600)
        await stale.start()
        try:
            rotation = DataKeyRotation(store, SETTINGS, sleep=settle)
            await rotation.rotate("admin")
            for _ in range(12):  # still under the old key: it has not looked since
                await written.write(stale, sensitive_execution(session)[0])
            assert f"lgenc:v1:{old}:" in dump(backend)
        finally:
            await stale.close()
        settled.set()
        done = await rotation.wait()
        assert done is not None and done.phase is RotationPhase.DONE
        await written.check(store)
    assert f"lgenc:v1:{old}:" not in dump(backend)


@pytest.mark.parametrize("kind", SEALED_KINDS)
async def test_a_restart_mid_rotation_carries_on(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = open_sealed(kind, request, tmp_path)
    keks = new_keks()
    written = Written()
    settling = asyncio.Event()

    async def hang(_: float) -> None:
        settling.set()
        await asyncio.Event().wait()  # the settle that never ends: the platform stops first

    async with opened(backend, keks) as store:
        old = store.keyring.active_id()
        session = await written.fill(store, 20)
        rotation = DataKeyRotation(store, SETTINGS, sleep=hang)
        await rotation.rotate("admin")
        await settling.wait()
        progress = await rotation.progress()
        assert progress is not None and progress.phase is RotationPhase.SETTLING
        assert progress.resealed > 0
        await rotation.close()  # the platform stops mid-rotation
        for _ in range(5):  # and more is written before it stops
            await written.write(store, sensitive_execution(session)[0])
    async with opened(backend, keks) as store:
        resumed = DataKeyRotation(store, SETTINGS, sleep=_instantly)
        await resumed.start()
        done = await resumed.wait()
        assert done is not None and done.phase is RotationPhase.DONE
        states = {r.kid: r.state for r in store.keyring.records()}
        assert old is not None and states[old] is DataKeyState.RETIRED
        await written.check(store)
    assert f"lgenc:v1:{old}:" not in dump(backend)


async def test_a_rotation_rewraps_every_data_key_under_a_new_kek(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = open_sealed("sqlite", request, tmp_path)
    first = new_keks()
    written = Written()
    async with opened(backend, first) as store:
        await written.fill(store, 1)
    second = new_keks(first.current)
    async with opened(backend, second) as store:
        rotation = DataKeyRotation(store, SETTINGS, sleep=_instantly)
        started = await rotation.rotate("admin")
        assert started.rewrapped, "the data key of the first KEK is re-wrapped"
        await rotation.wait()
        assert {r.kek_id for r in store.keyring.records()} == {second.current.kid}
    async with opened(backend, KeyEncryptionKeys(second.current)) as store:
        await written.check(store)


async def test_a_store_without_a_kek_has_nothing_to_rotate() -> None:
    store = MemoryStorage()
    await store.start()
    rotation = DataKeyRotation(store, SETTINGS, sleep=_instantly)
    with pytest.raises(Conflict, match="no key-encryption key"):
        await rotation.rotate("admin")
    assert await rotation.progress() is None
    assert (await rotation.status())["keys"] == []


async def test_a_rotation_that_cannot_open_a_record_fails_and_retires_nothing(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = open_sealed("sqlite", request, tmp_path)
    keks = new_keks()
    written = Written()
    async with opened(backend, keks) as store:
        session = await written.fill(store, 3)
        first, second = [
            await store.write_execution(
                sensitive_execution(session)[0], actor="alice", action="execution.saved"
            )
            for _ in range(2)
        ]
        old = store.keyring.active_id()
        held = {e.id: stored_document(backend, e.id)["inputs"] for e in (first, second)}
        # Their sealed inputs swapped behind the store's back: neither opens where it is.
        rewrite_execution(backend, first.id, lambda doc: doc.update(inputs=held[second.id]))
        rewrite_execution(backend, second.id, lambda doc: doc.update(inputs=held[first.id]))
        rotation = DataKeyRotation(store, SETTINGS, sleep=_instantly)
        await rotation.rotate("admin")
        failed = await rotation.wait()
        assert failed is not None and failed.phase is RotationPhase.FAILED
        assert failed.error is not None and "does not decrypt" in failed.error
        states = {r.kid: r.state for r in store.keyring.records()}
        assert old is not None and states[old] is DataKeyState.RETIRING
        await written.check(store)
