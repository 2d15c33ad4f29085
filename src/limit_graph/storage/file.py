"""File storage: one JSON file per record, committed through a redo journal.

A commit writes every new file beside its target (``*.tmp``), fsyncs them, then
writes ``journal.json`` naming the renames; once the journal is on disk the commit
is decided, and the renames follow.  On start, a journal left by a crash is rolled
forward and stray temporary files (a commit that never reached its journal) are
removed, so a crash at any point leaves either the whole transaction or none of it.
One process owns a folder at a time (an exclusive ``flock`` on ``.lock``).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from limit_graph.core import durable
from limit_graph.core.errors import Conflict
from limit_graph.core.models import ProvenanceEntry, Session, WorkflowRun
from limit_graph.core.sealing import KeyEncryptionKeys
from limit_graph.storage.file_errors import writes_under
from limit_graph.storage.file_identity import IDENTITY_FOLDERS, identity_files, load_identity
from limit_graph.storage.file_ledger import (
    CHECKPOINTS_FOLDER,
    FileLedger,
    load_checkpoints,
)
from limit_graph.storage.file_lineage import FileLineageStore
from limit_graph.storage.file_quotas import QUOTA_FOLDERS, load_quotas, quota_files
from limit_graph.storage.file_sealing import FileKeyRingBackend, FileSeals
from limit_graph.storage.keyring import KeyRing
from limit_graph.storage.ledger_upgrade import leaf_of_chained
from limit_graph.storage.legacy_chain import GENESIS_HASH, verify_chain_document
from limit_graph.storage.memory import MemoryStorage
from limit_graph.storage.memory_transaction import StagedWrites

__all__ = ["FileStorage"]

JOURNAL = "journal.json"
RECORD_FOLDERS = (
    "sessions",
    "executions",
    "workflow_runs",
    "archives",
    "ledger",
    CHECKPOINTS_FOLDER,
    *IDENTITY_FOLDERS,
    *QUOTA_FOLDERS,
)


class FileStorage(MemoryStorage):
    """Records as JSON files under ``root``; the memory backend serves reads."""

    kind = "file"

    def __init__(
        self, root: Path, *, keks: KeyEncryptionKeys | None = None, key_refresh_s: float = 30.0
    ) -> None:
        self.root = Path(root)
        super().__init__()
        self._lock_file: IO[bytes] | None = None
        self._unfinished_commit = False
        self._keys = FileKeyRingBackend(
            self.root, self.transaction, self._identity, lambda: self._seals, self._archives.get
        )
        self._keyring = KeyRing(self._keys, keks, refresh_s=key_refresh_s)
        self._seals = FileSeals(self._keyring)
        """Sensitive executions and archives are sealed in their files."""
        self._lineage = FileLineageStore(self.root / "lineage")

    def _make_ledger(self) -> FileLedger:
        return FileLedger(self._entries, self._lock, self.root)

    def _tenant_of(self, staged: StagedWrites, session_id: uuid.UUID) -> str | None:
        session = staged.sessions.get(session_id) or self._sessions.get(session_id)
        return session.tenant if session is not None else None

    def _folder(self, name: str) -> Path:
        return self.root / name

    async def start(self) -> None:
        await asyncio.to_thread(self._open)
        await self._keyring.start()

    async def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    async def ping(self) -> None:
        if not self.root.is_dir():
            raise OSError(f"storage folder {self.root} is gone")
        self._refuse_if_unfinished()

    def _refuse_if_unfinished(self) -> None:
        if self._unfinished_commit:
            raise OSError(
                f"storage folder {self.root} holds a commit whose renames failed; "
                "restart to roll it forward"
            )

    def _open(self) -> None:
        for name in (*RECORD_FOLDERS, "kv"):
            self._folder(name).mkdir(parents=True, exist_ok=True)
        lock = open(self.root / ".lock", "wb")  # noqa: SIM115 - held for the store's life
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise Conflict(f"storage folder {self.root} is in use by another process") from None
        self._lock_file = lock
        try:
            self._recover()
            self._keyring.adopt(self._keys.read_records())
            self._load()
        except BaseException:  # a store that did not start holds no lock
            self._lock_file = None
            lock.close()
            raise

    def _recover(self) -> None:
        journal = self.root / JOURNAL
        if journal.exists():
            try:
                renames = json.loads(journal.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                renames = []  # the journal itself was torn: the commit was never decided
            self._roll_forward(renames)
            journal.unlink()
        for stray in self.root.rglob(f"*{durable.TMP_SUFFIX}"):
            stray.unlink()

    def _roll_forward(self, renames: list[list[str]]) -> None:
        for tmp, final in renames:
            tmp_path = self.root / tmp
            if tmp_path.exists():
                os.replace(tmp_path, self.root / final)
        for name in RECORD_FOLDERS:
            durable.fsync_dir(self._folder(name))

    def _load(self) -> None:
        staged = StagedWrites()
        for path in self._folder("sessions").glob("*.json"):
            session = Session.model_validate_json(path.read_bytes())
            staged.sessions[session.id] = session
        executions = [
            self._seals.load_execution(p.read_bytes(), staged.sessions)
            for p in self._folder("executions").glob("*.json")
        ]
        for execution in sorted(executions, key=lambda e: (e.submitted_at, e.id)):
            staged.executions[execution.id] = execution
        for path in self._folder("workflow_runs").glob("*.json"):
            run = WorkflowRun.model_validate_json(path.read_bytes())
            staged.workflow_runs[run.id] = run
        for path in self._folder("archives").glob("*.json"):
            session_id = uuid.UUID(path.stem)
            tenant = self._tenant_of(staged, session_id)
            staged.archives[session_id] = self._seals.load_archive(
                session_id, path.read_bytes(), tenant
            )
        staged.entries = self._load_ledger(staged)
        staged.identity = load_identity(self.root)
        staged.quotas = load_quotas(self.root)
        self._apply(staged)
        self._ledger.load_checkpoints(load_checkpoints(self.root))
        for path in self._folder("kv").glob("*.json"):
            item = json.loads(path.read_bytes())
            expires = item["expires_at"]
            self._values[(item["namespace"], item["key"])] = (
                item["value"],
                datetime.fromisoformat(expires) if expires else None,
            )

    def _load_ledger(self, staged: StagedWrites) -> list[ProvenanceEntry]:
        """The ledger's entries; a folder written before the Merkle ledger (a hash chain)
        has its chain checked and is rewritten as leaves, in one journalled commit."""
        paths = sorted(self._folder("ledger").glob("*.json"))
        documents = [json.loads(path.read_bytes()) for path in paths]
        if not any("entry_hash" in document for document in documents):
            return [ProvenanceEntry.model_validate(document) for document in documents]
        prev = GENESIS_HASH
        for n, document in enumerate(documents):
            problem = verify_chain_document(document, n, prev)
            if problem is not None:
                raise RuntimeError(
                    f"storage folder {self.root}: the ledger's hash chain does not verify: "
                    f"{problem}; it is not upgraded (restore it from a backup first)"
                )
            prev = document["entry_hash"]
        tenants = {session.id: session.tenant for session in staged.sessions.values()}
        entries = [leaf_of_chained(document, tenants) for document in documents]
        self._write_files(
            [(f"ledger/{e.index:012d}.json", e.model_dump_json().encode()) for e in entries]
        )
        return entries

    def _value_path(self, namespace: str, key: str) -> Path:
        name = hashlib.sha256(f"{namespace}\0{key}".encode()).hexdigest()
        return self._folder("kv") / f"{name}.json"

    async def _persist_value(
        self, namespace: str, key: str, value: dict[str, Any], expires_at: datetime | None
    ) -> None:
        """One file per document, replaced atomically (no journal: nothing else changes)."""
        item = {
            "namespace": namespace,
            "key": key,
            "value": value,
            "expires_at": expires_at.isoformat() if expires_at else None,
        }
        path = self._value_path(namespace, key)
        with writes_under(self.root):
            await asyncio.to_thread(durable.replace_durably, path, json.dumps(item).encode())

    async def _forget_values(self, gone: list[tuple[str, str]]) -> None:
        def remove() -> None:
            for namespace, key in gone:
                self._value_path(namespace, key).unlink(missing_ok=True)
            durable.fsync_dir(self._folder("kv"))

        if gone:
            await asyncio.to_thread(remove)

    async def _persist(self, staged: StagedWrites) -> None:
        self._refuse_if_unfinished()
        await self._seals.prepare(list(staged.executions.values()), list(staged.archives.values()))
        with writes_under(self.root):
            await asyncio.to_thread(self._commit_files, staged)

    def _files_of(self, staged: StagedWrites) -> list[tuple[str, bytes]]:
        files: list[tuple[str, bytes]] = []
        for session in staged.sessions.values():
            files.append((f"sessions/{session.id}.json", session.model_dump_json().encode()))
        for execution in staged.executions.values():
            tenant = self._tenant_of(staged, execution.session_id)
            data = self._seals.execution_file(execution, tenant)
            files.append((f"executions/{execution.id}.json", data))
        for run in staged.workflow_runs.values():
            files.append((f"workflow_runs/{run.id}.json", run.model_dump_json().encode()))
        for session_id, bundle in staged.archives.items():
            data = self._seals.archive_file(session_id, bundle, self._tenant_of(staged, session_id))
            files.append((f"archives/{session_id}.json", data))
        for entry in staged.entries:
            files.append((f"ledger/{entry.index:012d}.json", entry.model_dump_json().encode()))
        files += identity_files(staged.identity)
        files += quota_files(staged.quotas)
        return files

    def _commit_files(self, staged: StagedWrites) -> None:
        self._write_files(self._files_of(staged))

    def _write_files(self, files: list[tuple[str, bytes]]) -> None:
        """Write ``files`` (name under the root, bytes) all or none: each to a temporary
        file, then a journal of their renames, then the renames."""
        renames = [[name + durable.TMP_SUFFIX, name] for name, _ in files]
        journal = self.root / JOURNAL
        unfinished_journal = journal.with_suffix(durable.TMP_SUFFIX)
        try:
            for (tmp, _), (_, data) in zip(renames, files, strict=True):
                durable.write_durably(self.root / tmp, data)
            durable.write_durably(unfinished_journal, json.dumps(renames).encode())
            os.replace(unfinished_journal, journal)
            durable.fsync_dir(self.root)
        except BaseException:
            for tmp, _ in renames:
                (self.root / tmp).unlink(missing_ok=True)
            unfinished_journal.unlink(missing_ok=True)  # one a full disk cut short
            raise
        try:
            self._roll_forward(renames)
            journal.unlink()
        except BaseException:
            # Decided but not applied: another commit would overwrite this journal and
            # reuse its ledger indexes, so none may follow until a restart rolls it forward.
            self._unfinished_commit = True
            raise
