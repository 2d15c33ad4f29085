"""Encryption at rest for the file store: sensitive records sealed in their files, and
data keys kept in ``keyring/``.

The file store serves reads from memory, so only its files are sealed: a sensitive
execution's file holds its sealed form (:func:`~limit_graph.storage.sealed.seal_execution`)
and an archive with one is sealed whole; both are opened once, at start.  Which data key
each file is sealed under is remembered (:class:`FileSeals`), so that a rotation finds
them without reading every file, and rewrites one by writing the record again through
the store's journal, under the store's lock.

A data key's file (``keyring/<kid>.json``) is replaced atomically and made durable before
anything is sealed under the key or its ledger entry commits.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from limit_graph.core.errors import SealError
from limit_graph.core.models import Execution, Session
from limit_graph.core.sealing import SecretKey, token_key_id
from limit_graph.storage.identity import IdentityStore
from limit_graph.storage.keyring import DataKeyRecord, KeyRing, ResealProgress
from limit_graph.storage.memory_keyring import (
    SIGNING_CURSOR,
    KeyRingStaging,
    MemoryKeyRingBackend,
)
from limit_graph.storage.memory_transaction import StagedWrites
from limit_graph.storage.sealed import (
    Resealer,
    archive_is_sensitive,
    execution_key_ids,
    open_archive,
    open_execution,
    seal_archive,
    seal_execution,
)

__all__ = ["KEYRING_FOLDER", "FileKeyRingBackend", "FileSeals", "FileStaging"]

KEYRING_FOLDER = "keyring"
_KINDS = ("executions", "archives")


class FileStaging(KeyRingStaging, Protocol):
    """What a rotation needs of the file store's transaction."""

    @property
    def staged(self) -> StagedWrites: ...

    async def get_execution(self, execution_id: uuid.UUID) -> Execution | None: ...

    async def save_archive(self, session_id: uuid.UUID, bundle: dict[str, Any]) -> None: ...


class FileSeals:
    """Seals and opens the file store's sensitive files, and remembers each one's key."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._key: SecretKey | None = None
        self.under: dict[tuple[str, uuid.UUID], str] = {}
        """(``executions`` | ``archives``, record id) → the data key its file is under."""

    async def prepare(self, executions: Sequence[Execution], archives: Sequence[Any]) -> None:
        """Fetch the active key before a commit that seals something (its files are
        written off the event loop, where no key can be fetched)."""
        sealing = any(e.sensitive for e in executions) or any(
            archive_is_sensitive(a) for a in archives
        )
        self._key = await self.ring.active() if sealing else None

    def _sealing_key(self) -> SecretKey:
        if self._key is None:
            raise SealError("no data key was fetched for this commit")
        return self._key

    def execution_file(self, execution: Execution, tenant: str | None) -> bytes:
        place = ("executions", execution.id)
        if not execution.sensitive:
            self.under.pop(place, None)
            return execution.model_dump_json().encode()
        key = self._sealing_key()
        doc = seal_execution(execution, tenant=_known(tenant, execution.session_id), key=key)
        self.under[place] = key.kid
        return json.dumps(doc).encode()

    def archive_file(
        self, session_id: uuid.UUID, bundle: dict[str, Any], tenant: str | None
    ) -> bytes:
        place = ("archives", session_id)
        if not archive_is_sensitive(bundle):
            self.under.pop(place, None)
            return json.dumps(bundle).encode()
        key = self._sealing_key()
        doc = seal_archive(
            bundle, tenant=_known(tenant, session_id), session_id=session_id, key=key
        )
        self.under[place] = key.kid
        return json.dumps(doc).encode()

    def load_execution(self, data: bytes, sessions: Mapping[uuid.UUID, Session]) -> Execution:
        doc = json.loads(data)
        if not doc.get("sensitive"):
            return Execution.model_validate(doc)
        session = sessions.get(uuid.UUID(doc["session_id"]))
        tenant = _known(session.tenant if session else None, doc["session_id"])
        execution = open_execution(doc, tenant=tenant, key_for=self.ring.key)
        kids = execution_key_ids(doc)
        if kids:
            self.under[("executions", execution.id)] = min(kids)
        return execution

    def load_archive(
        self, session_id: uuid.UUID, data: bytes, tenant: str | None
    ) -> dict[str, Any]:
        doc = json.loads(data)
        if set(doc) != {"sealed"}:
            return dict(doc)
        bundle = open_archive(
            doc, tenant=_known(tenant, session_id), session_id=session_id, key_for=self.ring.key
        )
        self.under[("archives", session_id)] = token_key_id(doc["sealed"])
        return bundle

    def ids_under(self, kind: str, kid: str) -> list[uuid.UUID]:
        return sorted(
            (i for (k, i), held in self.under.items() if k == kind and held == kid), key=str
        )


def _known(tenant: str | None, session_id: object) -> str:
    if tenant is None:
        raise SealError(f"no session {session_id} to bind its sealed records to")
    return tenant


class FileKeyRingBackend(MemoryKeyRingBackend):
    """Data keys as files in ``keyring/``; a rotation rewrites the records' files."""

    def __init__(
        self,
        root: Path,
        transaction: Callable[[], AbstractAsyncContextManager[FileStaging]],
        identity: IdentityStore,
        seals: Callable[[], FileSeals],
        archive_of: Callable[[uuid.UUID], dict[str, Any] | None],
    ) -> None:
        super().__init__(transaction, identity)
        self._folder = root / KEYRING_FOLDER
        self._file_transaction = transaction
        self._seals = seals
        self._archive_of = archive_of

    def read_records(self) -> list[DataKeyRecord]:
        """The keys on disk (at start, before the records sealed under them are read)."""
        self._folder.mkdir(parents=True, exist_ok=True)
        records = [
            DataKeyRecord.model_validate_json(path.read_bytes())
            for path in self._folder.glob("*.json")
        ]
        self.load(records)
        return records

    async def _persist(self, records: Sequence[DataKeyRecord]) -> None:
        for record in records:
            path = self._folder / f"{record.kid}.json"
            aside = path.with_suffix(".tmp")
            with open(aside, "wb") as fh:
                fh.write(record.model_dump_json().encode())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(aside, path)
        fd = os.open(self._folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def reseal(
        self, kid: str, reseal: Resealer, *, limit: int, cursor: str | None
    ) -> ResealProgress:
        if cursor is not None and cursor.startswith(SIGNING_CURSOR):
            return await super().reseal(kid, reseal, limit=limit, cursor=cursor)
        first, _, after = (cursor or f"{_KINDS[0]}:").partition(":")
        seals = self._seals()
        for kind in _KINDS[_KINDS.index(first) :]:
            ids = [i for i in seals.ids_under(kind, kid) if str(i) > after]
            after = ""
            if ids:
                chosen = ids[:limit]
                await self._rewrite(kind, chosen)
                following = f"{kind}:{chosen[-1]}" if len(ids) > limit else _next(kind)
                return ResealProgress(len(chosen), following)
        return await super().reseal(kid, reseal, limit=limit, cursor=None)

    async def _rewrite(self, kind: str, ids: Sequence[uuid.UUID]) -> None:
        """Write the records again, under the store's lock: their files are sealed under
        the active key, and whatever was written to them meanwhile is what is written."""
        async with self._file_transaction() as tx:
            for record_id in ids:
                if kind == "executions":
                    current = await tx.get_execution(record_id)
                    if current is not None:
                        tx.staged.executions[record_id] = current
                else:
                    bundle = self._archive_of(record_id)
                    if bundle is not None:
                        await tx.save_archive(record_id, bundle)


def _next(kind: str) -> str:
    """The cursor of the kind after ``kind`` (its first record)."""
    index = _KINDS.index(kind) + 1
    return f"{_KINDS[index]}:" if index < len(_KINDS) else SIGNING_CURSOR
