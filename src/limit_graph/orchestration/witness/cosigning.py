"""One witness step: check a new checkpoint against the last one cosigned, and cosign it.

:meth:`Witness.observe` takes the log's signed note and a way to fetch a consistency
proof.  It opens the note with the pinned log key (every line by that key must verify,
lines by other keys are ignored), reads the checkpoint and checks its origin, then
compares it with the last checkpoint it cosigned -- or, the first time, with the pinned
``(size, root)`` if one was given, else nothing (trust on first use):

- smaller tree: a **rollback**, refused;
- same size, other root: a **split view**, refused;
- same size and root: nothing new, the kept cosignature stands;
- larger tree: the RFC 6962 consistency proof from the old size to the new is fetched
  and verified; a proof that fails is a **forked history**, refused.

What passes is cosigned (C2SP ``tlog-cosignature``, ``cosignature/v1``: "as of this
time, the largest consistent tree this witness has seen has this root") and kept
before it is returned.  A timestamp never goes back: after a clock step backwards the
last one is reused.  A refusal raises :class:`Refusal`, changes nothing kept, and
writes an evidence file (``evidence/<time>-<kind>-<old>-<new>.json``): both notes as
received and kept, the proof, and both sizes and roots.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NoReturn

from limit_graph.core import merkle, notes
from limit_graph.orchestration.witness.state import (
    CHECKPOINT_FILE,
    EVIDENCE_DIR,
    Cosigned,
    StateError,
    StateLock,
    TrustedLog,
    WitnessError,
    load_or_make_key,
    open_cosigned,
    pin_log,
    read_checkpoint,
    read_log,
    write_atomic,
    write_new,
)

__all__ = ["Anchor", "FetchProof", "Observation", "Refusal", "RefusalKind", "Witness"]

FetchProof = Callable[[int, int], Sequence[bytes]]
"""``fetch_proof(first, second)``: the log's consistency proof between two tree sizes."""
RefusalKind = Literal[
    "rollback", "split-view", "inconsistent", "bad-signature", "wrong-origin", "malformed"
]
Status = Literal["trusted-on-first-use", "checked-against-pin", "consistent", "unchanged"]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Anchor:
    """A checkpoint the operator pins, that the first one cosigned must be consistent with."""

    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.root_hash) != merkle.HASH_SIZE:
            raise StateError("a pinned checkpoint is a size of 0 or more and a 32-byte root")


@dataclass(frozen=True)
class Observation:
    """What one step saw and did."""

    status: Status
    checkpoint: notes.Checkpoint
    note: str
    """The note as kept: the log's signature and this witness's cosignature."""
    cosigned_at: int
    previous_size: int | None

    @property
    def cosigned(self) -> bool:
        """Whether a new cosignature was made (not for an unchanged checkpoint)."""
        return self.status != "unchanged"


class Refusal(WitnessError):
    """A checkpoint the witness will not cosign; ``evidence`` is the file that shows why
    (``None`` when it could not be written, as the message then says)."""

    def __init__(self, kind: RefusalKind, message: str, evidence: Path | None) -> None:
        where = f"; evidence in {evidence}" if evidence else ""
        super().__init__(f"{message}{where}")
        self.kind = kind
        self.evidence = evidence


def _describe(size: int, root: bytes | None) -> str:
    return f"size {size:,} with root {_b64(root)}" if root is not None else f"size {size:,}"


class Witness:
    """A witness on its state folder (:mod:`.state`); it holds the folder's lock until
    :meth:`close`.  ``clock`` gives POSIX seconds for the cosignatures' timestamps."""

    def __init__(
        self,
        folder: Path,
        *,
        log: TrustedLog | None = None,
        name: str | None = None,
        expect: Anchor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self._clock = clock
        if log is None and read_log(folder) is None:
            pin_log(folder, None)  # says that a log key is needed, before anything is made
        self.cosigner, self.made_key = load_or_make_key(folder, name)
        self.verifier = self.cosigner.verifier()
        self._lock = StateLock(folder)
        self._lock.acquire()
        try:
            self.log = pin_log(folder, log)
            self.last: Cosigned | None = read_checkpoint(folder, self.log, self.verifier)
        except BaseException:
            self._lock.release()
            raise
        if (
            self.last is not None
            and expect is not None
            and expect.size == self.last.checkpoint.size
            and expect.root_hash != self.last.checkpoint.root_hash
        ):
            self._lock.release()
            raise StateError(
                f"the pinned checkpoint is {_describe(expect.size, expect.root_hash)}, but "
                f"this witness cosigned {_describe(expect.size, self.last.checkpoint.root_hash)}"
            )
        self.expect = expect

    def __enter__(self) -> Witness:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._lock.release()

    @property
    def verifier_key(self) -> str:
        """This witness's public key (a type 0x04 verifier key), for the log's clients."""
        return self.verifier.verifier_key()

    def observe(self, note: str, fetch_proof: FetchProof) -> Observation:
        """Check the log's ``note`` (module docstring) and cosign it, or raise
        :class:`Refusal`; what ``fetch_proof`` raises but :class:`merkle.ProofError`
        (the log could not be reached) passes through, nothing changed."""
        seen = self._open(note)
        last = self.last
        if last is not None:
            before, before_root = last.checkpoint.size, last.checkpoint.root_hash
        elif self.expect is not None:
            before, before_root = self.expect.size, self.expect.root_hash
        else:
            return self._cosign(seen, note, "trusted-on-first-use")
        size, root = seen.size, seen.root_hash
        pair = f"the log signed {_describe(size, root)}; this witness"
        pair += " cosigned " if last is not None else " was told to expect "
        pair += _describe(before, before_root)
        if size < before:
            self._refuse("rollback", f"rollback: {pair}", note)
        if size == before:
            if root != before_root:
                self._refuse("split-view", f"split view: {pair}", note)
            if last is not None and seen.text() == last.checkpoint.text():
                return Observation("unchanged", seen, last.note, last.timestamp, before)
        elif before > 0:
            proof: Sequence[bytes] | None = None
            try:
                proof = list(fetch_proof(before, size))
                merkle.verify_consistency(before, size, before_root, root, proof)
            except merkle.ProofError as exc:
                self._refuse(
                    "inconsistent",
                    f"forked history: {pair}, and the log's consistency proof from "
                    f"{before:,} to {size:,} does not hold ({exc})",
                    note,
                    (before, size, proof),
                )
        return self._cosign(
            seen, note, "consistent" if last is not None else "checked-against-pin", before
        )

    def _open(self, note: str) -> notes.Checkpoint:
        """The checkpoint of a note signed by the log's key, with the log's origin."""
        try:
            parsed = notes.parse_note(note)
        except notes.NoteError as exc:
            self._refuse("malformed", f"not a signed note: {exc}", note, signed=False)
        try:
            notes.open_note(note, [self.log.verifier])
        except notes.NoteError as exc:
            self._refuse(
                "bad-signature",
                f"bad signature: {exc} (the log's key is {self.log.verifier_key})",
                note,
                signed=False,
            )
        try:
            checkpoint = notes.parse_checkpoint(parsed.text)
        except notes.NoteError as exc:
            self._refuse(
                "malformed", f"the log signed a note that is not a checkpoint: {exc}", note
            )
        if checkpoint.origin != self.log.origin:
            self._refuse(
                "wrong-origin",
                f"wrong origin: the checkpoint is of {checkpoint.origin!r}, this witness "
                f"checks {self.log.origin!r}",
                note,
            )
        if checkpoint.size == 0 and checkpoint.root_hash != merkle.EMPTY_ROOT:
            self._refuse(
                "malformed", "the log signed an empty tree whose root is not the empty root", note
            )
        return checkpoint

    def _cosign(
        self, seen: notes.Checkpoint, note: str, status: Status, before: int | None = None
    ) -> Observation:
        """Cosign the checkpoint, keep it (before returning), and say so."""
        text = seen.text()
        earliest = self.last.timestamp if self.last is not None else 1
        timestamp = max(int(self._clock()), earliest)
        own = self.cosigner.cosign(text, timestamp)
        logs = notes.verified_signatures(notes.parse_note(note), [self.log.verifier])
        kept = notes.format_note(notes.Note(text, (*logs, own)))
        cosigned = open_cosigned(kept, self.log, self.verifier)
        path = self.folder / CHECKPOINT_FILE
        try:
            write_atomic(path, kept, 0o644)
        except OSError as exc:
            raise StateError(f"cannot keep the cosigned checkpoint in {path}: {exc}") from None
        self.last = cosigned
        return Observation(status, seen, kept, timestamp, before)

    def _refuse(
        self,
        kind: RefusalKind,
        message: str,
        note: str,
        proof: tuple[int, int, Sequence[bytes] | None] | None = None,
        *,
        signed: bool = True,
    ) -> NoReturn:
        """Write the evidence and raise the :class:`Refusal` (never returns)."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        last = self.last
        previous: dict[str, Any] | None = None
        if last is not None:
            previous = {
                "tree_size": last.checkpoint.size,
                "root_hash": _b64(last.checkpoint.root_hash),
                "note": last.note,
                "cosigned_at": last.timestamp,
            }
        elif self.expect is not None:
            previous = {
                "tree_size": self.expect.size,
                "root_hash": _b64(self.expect.root_hash),
                "note": None,
                "pinned": True,
            }
        received: dict[str, Any] = {"note": note}
        with_checkpoint = _checkpoint_of(note)
        if with_checkpoint is not None:
            received |= {
                "tree_size": with_checkpoint.size,
                "root_hash": _b64(with_checkpoint.root_hash),
            }
        document = {
            "kind": kind,
            "detail": message,
            "seen_at": now.isoformat().replace("+00:00", "Z"),
            "origin": self.log.origin,
            "log_key": self.log.verifier_key,
            "signed_by_log": signed,
            "witness_key": self.verifier_key,
            "last": previous,
            "received": received,
            "proof": None
            if proof is None
            else {
                "first": proof[0],
                "second": proof[1],
                "hashes": None if proof[2] is None else [_b64(h) for h in proof[2]],
            },
        }
        old = previous["tree_size"] if previous else "none"
        new = received.get("tree_size", "none")
        stem = f"{now:%Y%m%dT%H%M%SZ}-{kind}-{old}-{new}"
        try:
            evidence = _write_evidence(self.folder / EVIDENCE_DIR, stem, document)
        except OSError as exc:
            message += f" (the evidence could not be written: {exc})"
            evidence = None
        raise Refusal(kind, message, evidence)


def _checkpoint_of(note: str) -> notes.Checkpoint | None:
    """The checkpoint a note claims, unverified (for the evidence), if it reads as one."""
    try:
        return notes.parse_checkpoint(notes.parse_note(note).text)
    except notes.NoteError:
        return None


def _write_evidence(folder: Path, stem: str, document: dict[str, Any]) -> Path:
    folder.mkdir(mode=0o700, exist_ok=True)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    for n in range(1000):
        path = folder / (f"{stem}.json" if n == 0 else f"{stem}-{n}.json")
        try:
            write_new(path, text, 0o644)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{folder} holds 1000 evidence files named {stem}")
