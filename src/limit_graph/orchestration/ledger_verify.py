"""Verify a whole ledger: every entry's hashes, the tree over them, its stored nodes and
head, and every signed checkpoint -- those the ledger keeps and copies kept outside it.

One pass over the entries as stored (:meth:`LedgerStore.scan`), page by page:

1. each row is the next index (a gap or a repeat names the first missing entry); its
   leaf hashes to its ``leaf_hash``, the leaf's own index agrees, and the payload (unless
   an erasable one was erased) hashes, after its salt, to the leaf's ``payload_sha256``;
2. the leaves extend a compact range, and each perfect subtree that completes is
   compared with the node the store holds for it (proofs are read from those nodes);
3. at every checkpointed size the root so far must be the checkpoint's; a checkpoint's
   note must carry a valid signature of one of the trusted keys for the log's origin,
   and consecutive checkpoints must be consistent by the store's own proof;
4. at the end, the entries must be as many as the head says, and the root the head's.

A rewritten database whose checkpoints were re-signed fails step 3 against the
exported public key; one cut short fails against a checkpoint copied outside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from limit_graph.core import merkle, notes
from limit_graph.core.errors import NotFound
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import LedgerHead, text_digest
from limit_graph.storage.ledger_store import LeafRow, StoredCheckpoint

__all__ = ["LedgerReport", "verify_ledger"]

PAGE = 2000


@dataclass(frozen=True)
class LedgerReport:
    """What :func:`verify_ledger` found: ``first_bad`` is the first entry that does not
    verify (or the first of a range one of which was changed, when only a checkpoint
    shows it), ``None`` when the problem is not an entry's."""

    ok: bool
    size: int
    first_bad: int | None
    detail: str | None
    checkpoints: int = 0
    external: int = 0
    erased: int = 0


class _Bad(Exception):
    def __init__(self, first_bad: int | None, detail: str) -> None:
        super().__init__(detail)
        self.first_bad = first_bad
        self.detail = detail


@dataclass
class _Seen:
    """A checkpoint to meet on the way: its size and root, and where it came from."""

    size: int
    root: bytes
    source: str


@dataclass
class _Pass:
    head: LedgerHead = field(default_factory=LedgerHead)
    erased: int = 0
    last_match: int = 0


def _row_problem(row: LeafRow, expected: int) -> str | None:
    if row.index != expected:
        return f"entry {expected} is missing (the next stored entry is {row.index})"
    if merkle.leaf_hash(row.leaf) != row.leaf_hash:
        return f"entry {expected}: its leaf_hash does not match the entry's fields"
    try:
        leaf = json.loads(row.leaf)
    except ValueError:
        return f"entry {expected}: its fields are not JSON"
    if leaf.get("index") != expected:
        return f"entry {expected}: its fields say it is entry {leaf.get('index')}"
    erasable = leaf.get("erasable") is True
    if row.payload is None:
        return None if erasable else f"entry {expected}: its payload is missing"
    if erasable != (row.salt is not None):
        return f"entry {expected}: an erasable payload needs its salt, and only it"
    if text_digest(row.payload, row.salt) != leaf.get("payload_sha256"):
        return f"entry {expected}: its payload does not match payload_sha256"
    return None


def _trusted(
    note: str, verifiers: Sequence[notes.Verifier], origin: str | None, source: str
) -> notes.Checkpoint:
    try:
        opened = notes.open_note(note, verifiers) if verifiers else notes.parse_note(note)
        checkpoint = notes.parse_checkpoint(opened.text)
    except notes.NoteError as exc:
        raise _Bad(None, f"{source}: {exc}") from None
    if origin is not None and checkpoint.origin != origin:
        raise _Bad(None, f"{source}: it is a checkpoint of {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


async def _stored_checkpoints(
    storage: Storage, verifiers: Sequence[notes.Verifier], origin: str | None
) -> list[StoredCheckpoint]:
    found: list[StoredCheckpoint] = []
    while page := await storage.ledger.checkpoints(after_size=found[-1].tree_size if found else -1):
        for stored in page:
            source = f"checkpoint {stored.tree_size}"
            checkpoint = _trusted(stored.note, verifiers, origin, source)
            if (checkpoint.size, checkpoint.root_hash) != (stored.tree_size, stored.root_hash):
                raise _Bad(None, f"{source}: its note and its row disagree")
        found.extend(page)
    return found


async def _check_consistency(storage: Storage, stored: list[StoredCheckpoint]) -> None:
    for before, after in zip(stored, stored[1:], strict=False):
        nodes = await storage.ledger.nodes(
            merkle.consistency_node_ids(before.tree_size, after.tree_size)
        )
        proof = merkle.consistency_proof(before.tree_size, after.tree_size, nodes)
        try:
            merkle.verify_consistency(
                before.tree_size, after.tree_size, before.root_hash, after.root_hash, proof
            )
        except merkle.ProofError as exc:
            raise _Bad(
                before.tree_size,
                f"checkpoints {before.tree_size} and {after.tree_size} are not consistent: {exc}",
            ) from None


async def _compare_nodes(storage: Storage, made: list[tuple[merkle.NodeId, bytes]]) -> None:
    wanted = {node: digest for node, digest in made if node[0] > 0}
    if not wanted:
        return
    try:
        stored = await storage.ledger.nodes(list(wanted))
    except NotFound as exc:
        raise _Bad(None, f"the tree's nodes are incomplete: {exc}") from None
    for (level, idx), digest in wanted.items():
        if stored[(level, idx)] != digest:
            first = idx << level
            raise _Bad(
                first,
                f"the stored tree node over entries {first}..{((idx + 1) << level) - 1} "
                "does not match those entries",
            )


async def _scan(storage: Storage, meet: dict[int, list[_Seen]], state: _Pass) -> int:
    expected = 0
    while rows := await storage.ledger.scan(after=expected - 1, limit=PAGE):
        made: list[tuple[merkle.NodeId, bytes]] = []
        for row in rows:
            problem = _row_problem(row, expected)
            if problem is not None:
                raise _Bad(expected, problem)
            if row.payload is None:
                state.erased += 1
            made.extend(state.head.edge.append(row.leaf_hash))
            expected += 1
            for seen in meet.get(expected, ()):
                if state.head.root() != seen.root:
                    raise _Bad(
                        state.last_match,
                        f"the entries from {state.last_match} to {expected - 1} do not match "
                        f"{seen.source}: one of them was changed",
                    )
                state.last_match = expected
        await _compare_nodes(storage, made)
    return expected


async def verify_ledger(
    storage: Storage,
    *,
    verifiers: Sequence[notes.Verifier] = (),
    origin: str | None = None,
    external: Sequence[tuple[str, str]] = (),
) -> LedgerReport:
    """Check the whole ledger (module docstring); ``verifiers`` are the keys a checkpoint
    must be signed by (none: signatures are not checked), ``external`` the copies of
    checkpoints kept outside the database, as (where, note text)."""
    head = await storage.ledger.head()
    state = _Pass()
    stored: list[StoredCheckpoint] = []
    try:
        stored = await _stored_checkpoints(storage, verifiers, origin)
        meet: dict[int, list[_Seen]] = {}
        for checkpoint in stored:
            seen = _Seen(
                checkpoint.tree_size, checkpoint.root_hash, f"checkpoint {checkpoint.tree_size}"
            )
            meet.setdefault(seen.size, []).append(seen)
        for source, note in external:
            parsed = _trusted(note, verifiers, origin, source)
            meet.setdefault(parsed.size, []).append(_Seen(parsed.size, parsed.root_hash, source))
        await _check_consistency(storage, stored)
        size = await _scan(storage, meet, state)
        beyond = [s for s in meet if s > size]
        if beyond:
            sources = ", ".join(seen.source for s in sorted(beyond) for seen in meet[s])
            raise _Bad(size, f"the ledger holds {size} entries, fewer than {sources} saw")
        if size != head.size:
            raise _Bad(
                min(size, head.size),
                f"the ledger head records {head.size} entries but {size} are stored",
            )
        if state.head.root() != head.root:
            raise _Bad(state.last_match, "the entries' tree root is not the head's")
    except _Bad as bad:
        return LedgerReport(
            False, head.size, bad.first_bad, bad.detail, len(stored), len(external), state.erased
        )
    return LedgerReport(True, head.size, None, None, len(stored), len(external), state.erased)
