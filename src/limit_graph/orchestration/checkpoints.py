"""Signed checkpoints of the ledger: the key that signs them, and the service that makes
them every N entries or T seconds and publishes each outside the database.

**The key** is an Ed25519 key made on first start, named by the log's origin, kept in the
store's bookkeeping documents encrypted (AES-256-GCM) under the server secret, and
opened once per process.  (Not under the data keys of encryption at rest: a data-key
rotation re-seals the records it knows and retires the old key, and a bookkeeping
document is not one of them.)
Its public half, in the note verifier-key format (``<origin>+<key id>+<base64>``), is
what verifiers and witnesses are given (``GET /audit/checkpoint``, ``limit audit key``).
Several API processes starting at once agree on one key: each writes its new key only
if none is stored, then reads back the one that is.

**A checkpoint** is the C2SP ``tlog-checkpoint`` body -- origin, tree size, base64 root
-- signed as a C2SP signed note.  :class:`Checkpointer` looks at the ledger's head every
``poll_s`` and signs one when ``checkpoint_entries`` are new, or when
``checkpoint_interval_s`` has passed with anything new.  Each is stored (one per tree
size: processes that race store it once), then written to ``<checkpoint_dir>/latest.note``
(atomically) and POSTed to ``checkpoint_url`` if set; a failed publication is logged and
tried again with the next checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from limit_graph.core import notes
from limit_graph.core.durable import replace_durably
from limit_graph.core.ledger_settings import LedgerSettings
from limit_graph.core.models import utcnow
from limit_graph.core.stopping import Stopper
from limit_graph.governance.secrets import ServerSecret
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger_store import StoredCheckpoint

__all__ = ["LATEST_NOTE", "Checkpointer", "LedgerKey", "load_ledger_key", "stored_verifier_key"]

log = logging.getLogger(__name__)

KEY_NAMESPACE = "ledger"
KEY_NAME = "checkpoint-signer"
PURPOSE = "ledger-signing-key"
LATEST_NOTE = "latest.note"


@dataclass(frozen=True)
class LedgerKey:
    """The ledger's signer and what verifiers are given of it."""

    signer: notes.Signer

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier_key()

    @property
    def key_id(self) -> str:
        return self.signer.key_id.hex()

    @property
    def verifier(self) -> notes.Verifier:
        return notes.Verifier.from_verifier_key(self.verifier_key)


def _seal(secret: ServerSecret, seed: bytes) -> dict[str, str]:
    return {"sealed": secret.encrypt(seed, purpose=PURPOSE), "by": "server-secret"}


def _open(secret: ServerSecret, stored: dict[str, str]) -> bytes:
    return secret.decrypt(stored["sealed"], purpose=PURPOSE)


async def load_ledger_key(storage: Storage, secret: ServerSecret, origin: str) -> LedgerKey:
    """The ledger's signing key for ``origin``: the stored one, or a new one stored first."""
    key = f"{KEY_NAME}:{origin}"
    stored = await storage.get_value(KEY_NAMESPACE, key)
    if stored is None:
        made = notes.Signer.generate(origin)
        document = {
            **_seal(secret, made.private_bytes()),
            "verifier_key": made.verifier_key(),
            "created_at": utcnow().isoformat(),
        }
        await storage.put_value(KEY_NAMESPACE, key, document, only_if_absent=True)
        stored = await storage.get_value(KEY_NAMESPACE, key)
        assert stored is not None
    signer = notes.Signer.from_private_bytes(origin, _open(secret, stored))
    if signer.verifier_key() != stored["verifier_key"]:
        raise RuntimeError("the ledger's signing key does not match its stored public key")
    return LedgerKey(signer)


async def stored_verifier_key(storage: Storage, origin: str) -> str | None:
    """The ledger's public key for ``origin`` as the store holds it (``None``: no key
    yet).  A verifier that does not trust the store brings its own exported copy."""
    stored = await storage.get_value(KEY_NAMESPACE, f"{KEY_NAME}:{origin}")
    return str(stored["verifier_key"]) if stored is not None else None


class Checkpointer:
    """Makes, stores and publishes the ledger's signed checkpoints (module docstring)."""

    def __init__(
        self,
        storage: Storage,
        key: LedgerKey,
        settings: LedgerSettings,
        folder: Path,
        *,
        poll_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._storage = storage
        self.key = key
        self._settings = settings
        self._folder = folder
        self._poll_s = min(poll_s, settings.checkpoint_interval_s)
        self._monotonic = monotonic
        self._http = http
        self._task: asyncio.Task[None] | None = None
        self._stopper = Stopper()
        self._last_size = -1
        self._last_at = monotonic()
        self._lock = asyncio.Lock()

    @property
    def origin(self) -> str:
        return self._settings.origin

    @property
    def latest_path(self) -> Path:
        return self._folder / LATEST_NOTE

    async def checkpoint(self) -> StoredCheckpoint | None:
        """Sign the ledger's head now unless the latest checkpoint already has it; the
        checkpoint of the head either way (``None`` for an empty ledger)."""
        async with self._lock:
            head = await self._storage.ledger.head()
            latest = await self._storage.ledger.latest_checkpoint()
            if latest is not None and latest.tree_size >= head.size:
                self._last_size = latest.tree_size
                return latest
            if head.size == 0:
                return None
            body = notes.Checkpoint(self.origin, head.size, head.root).text()
            made = StoredCheckpoint(
                tree_size=head.size,
                root_hash=head.root,
                timestamp=utcnow(),
                key_id=self.key.key_id,
                note=notes.sign_note(body, self.key.signer),
            )
            await self._storage.ledger.add_checkpoint(made)
            self._last_size, self._last_at = head.size, self._monotonic()
            await self._publish(made)
            return made

    async def due(self) -> bool:
        """Whether enough is new, or anything has waited long enough."""
        size = (await self._storage.ledger.head()).size
        if self._last_size < 0:
            latest = await self._storage.ledger.latest_checkpoint()
            self._last_size = latest.tree_size if latest is not None else 0
        new = size - self._last_size
        waited = self._monotonic() - self._last_at
        return new >= self._settings.checkpoint_entries or (
            new > 0 and waited >= self._settings.checkpoint_interval_s
        )

    async def _publish(self, checkpoint: StoredCheckpoint) -> None:
        try:
            await asyncio.to_thread(
                replace_durably, self.latest_path, checkpoint.note.encode(), make_parents=True
            )
        except OSError as exc:
            log.error(
                "checkpoint %d not written to %s: %s", checkpoint.tree_size, self._folder, exc
            )
        url = self._settings.checkpoint_url
        if url is None:
            return
        try:
            client = self._http or httpx.AsyncClient(timeout=10.0)
            try:
                answer = await client.post(
                    url, content=checkpoint.note, headers={"content-type": "text/plain"}
                )
                answer.raise_for_status()
            finally:
                if self._http is None:
                    await client.aclose()
        except httpx.HTTPError as exc:
            log.error("checkpoint %d not accepted by %s: %s", checkpoint.tree_size, url, exc)

    def start(self) -> None:
        self._stopper = Stopper()
        self._task = asyncio.create_task(self._run(), name="limit-checkpointer")

    async def _run(self) -> None:
        while True:
            try:
                if await self.due():
                    await self.checkpoint()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("the ledger checkpoint failed; trying again")
            if not await self._stopper.wait(self._poll_s):
                return

    async def close(self) -> None:
        await self._stopper.stop(self._task)
        self._task = None
