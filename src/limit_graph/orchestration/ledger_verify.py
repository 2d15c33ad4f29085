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
4. at the end, the entries must be as many as the head says, and the root the head's;
   an entry stored beyond the head must be one written since (the head has moved on).

The checkpoints are read first, then the head, and the entries up to it: entries
written while it runs are the next verification's, so a busy ledger verifies too.

A rewritten database whose checkpoints were re-signed fails step 3 against the
exported public key; one cut short fails against a checkpoint copied outside it.

It is written to check a million entries in seconds (``bench/ledger`` times it): pages
of :data:`PAGE` rows, the next one read while this one is checked; each row's own checks
(step 1, :mod:`limit_graph.core.ledger_rows`) run in a second process for a ledger of
:data:`CHECK_APART_FROM` entries or more, while this one makes the tree over the page
before; a leaf in the form the platform writes is read by one regular expression that
accepts exactly that JSON (any other leaf is parsed as JSON and judged as before); each
page's new tree nodes are hashed a level at a time (:class:`_Tree`) and compared with
the stored ones read in one query; the nodes of every consecutive checkpoints'
consistency proof are read at once.  Problems are still found in entry order, as if the
entries were checked one by one, so the first bad entry named is the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sys
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256

from limit_graph.core import merkle, notes
from limit_graph.core.errors import NotFound
from limit_graph.core.ledger_rows import Row, first_problem, frame
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger_store import LeafRow, StoredCheckpoint, TreeHead

__all__ = ["LedgerReport", "verify_ledger"]

logger = logging.getLogger(__name__)

PAGE = 16_384
CHECK_APART_FROM = 8 * PAGE
"""Ledgers of at least this many entries have their rows checked in a second process
(where the machine has a second core); below it, starting one costs more than it saves."""


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


class _Tree:
    """The tree over the leaves so far, extended a page of leaves at a time: each level's
    new nodes are hashed pairwise in one pass, where appending leaf by leaf to a
    :class:`~limit_graph.core.merkle.CompactRange` costs a call and a list shuffle per
    leaf.  ``edge`` is the compact range (one perfect subtree per set bit of ``size``),
    by level.

    >>> leaves = [merkle.leaf_hash(bytes([n])) for n in range(11)]
    >>> tree, edge = _Tree(), merkle.CompactRange.empty()
    >>> made = [tree.extend(leaves[:3]).nodes(), tree.extend(leaves[3:]).nodes()]
    >>> ours = [node for ids, digests in made for node in zip(ids, digests)]
    >>> sorted(ours) == sorted(n for n in edge.extend(leaves) if n[0][0] > 0)
    True
    >>> tree.root() == edge.root() == merkle.root_of(leaves)
    True
    """

    __slots__ = ("edge", "size")

    def __init__(self) -> None:
        self.size = 0
        self.edge: dict[int, bytes] = {}

    def extend(self, leaves: list[bytes]) -> _Extension:
        """Add the leaves (each :data:`~limit_graph.core.merkle.HASH_SIZE` bytes); what
        they complete."""
        start = self.size
        levels = [leaves]
        while levels[-1]:
            level = len(levels) - 1
            nodes = levels[-1]
            if (start >> level) & 1:  # the first is a right child: its left is the edge's
                nodes = [self.edge[level], *nodes]
            pairs = zip(nodes[0::2], nodes[1::2], strict=False)  # an odd last one waits
            levels.append([sha256(b"\x01" + left + right).digest() for left, right in pairs])
        done = _Extension(start, levels, dict(self.edge))
        self.size = end = start + len(leaves)
        self.edge = {level: done.node(level, (end >> level) - 1) for level in _bits(end)}
        return done

    def root(self) -> bytes:
        return merkle.hash_of_range([self.edge[level] for level in reversed(_bits(self.size))])


def _bits(size: int) -> list[int]:
    """The levels of the set bits of ``size``, lowest first."""
    return [level for level in range(size.bit_length()) if size >> level & 1]


@dataclass(frozen=True, slots=True)
class _Extension:
    """What one :meth:`_Tree.extend` made: at each level, the nodes from index
    ``start >> level`` on that its leaves completed, beside the edge before them."""

    start: int
    levels: list[list[bytes]]
    before: dict[int, bytes]

    def node(self, level: int, idx: int) -> bytes:
        """A node completed by these leaves or, to their left, by earlier ones."""
        first = self.start >> level
        if idx >= first:
            return self.levels[level][idx - first]
        return self.before[level]  # the only earlier node a range or root needs

    def root(self, size: int) -> bytes:
        """The root of the first ``size`` leaves, for a size these leaves reach."""
        return merkle.hash_of_range(
            [self.node(level, (size >> level) - 1) for level in reversed(_bits(size))]
        )

    def nodes(self) -> tuple[list[merkle.NodeId], list[bytes]]:
        """The perfect subtrees of two leaves or more that these leaves completed: their
        ids, and their hashes in the same order."""
        ids = [
            (level, idx)
            for level in range(1, len(self.levels))
            for idx in range(self.start >> level, (self.start >> level) + len(self.levels[level]))
        ]
        return ids, [digest for level in self.levels[1:] for digest in level]


@dataclass
class _Pass:
    tree: _Tree = field(default_factory=_Tree)
    erased: int = 0
    last_match: int = 0


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
    pairs = list(zip(stored, stored[1:], strict=False))
    wanted = {
        node
        for before, after in pairs
        for node in merkle.consistency_node_ids(before.tree_size, after.tree_size)
    }
    try:
        every: dict[merkle.NodeId, bytes] | None = await storage.ledger.nodes(sorted(wanted))
    except NotFound:
        every = None  # then each pair reads its own, and the first one missing a node fails
    for before, after in pairs:
        ids = merkle.consistency_node_ids(before.tree_size, after.tree_size)
        nodes = every if every is not None else await storage.ledger.nodes(ids)
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


async def _compare_nodes(storage: Storage, made: tuple[list[merkle.NodeId], list[bytes]]) -> None:
    ids, digests = made
    if not ids:
        return
    try:
        stored = await storage.ledger.nodes(ids)
    except NotFound as exc:
        missing = str(exc)
        try:  # read again in the order they were completed, to name the first missing
            await storage.ledger.nodes(sorted(ids, key=lambda n: ((n[1] + 1) << n[0], n[0])))
        except NotFound as again:
            missing = str(again)
        raise _Bad(None, f"the tree's nodes are incomplete: {missing}") from None
    if [stored[node] for node in ids] == digests:
        return
    wrong = [node for node, digest in zip(ids, digests, strict=True) if stored[node] != digest]
    level, idx = min(wrong, key=lambda n: ((n[1] + 1) << n[0], n[0]))  # the first made
    first = idx << level
    raise _Bad(
        first,
        f"the stored tree node over entries {first}..{((idx + 1) << level) - 1} "
        "does not match those entries",
    )


_Checked = tuple[list[LeafRow], Awaitable[tuple[int, str] | None]]
"""A page of rows, and the first problem among them once it is found."""


class _RowChecks:
    """:func:`~limit_graph.core.ledger_rows.first_problem` of each page: in a process of
    its own (``python -m limit_graph.core.ledger_rows``, started by :meth:`start`) when
    ``apart``, else here.  Pages go down its pipe in order and their answers come back in
    that order; should the process fail, the pages still waiting are checked here."""

    def __init__(self, apart: bool) -> None:
        self._apart = apart
        self._child: asyncio.subprocess.Process | None = None
        self._waiting: deque[asyncio.Future[tuple[int, str] | None]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._more = asyncio.Event()
        self._unanswered: set[asyncio.Task[tuple[int, str] | None]] = set()

    async def start(self) -> None:
        if not self._apart:
            return
        try:
            self._child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "limit_graph.core.ledger_rows",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            logger.warning("ledger rows are checked in this process: %s", exc)
            return
        self._reader = asyncio.create_task(self._answers(self._child))

    async def _answers(self, child: asyncio.subprocess.Process) -> None:
        assert child.stdout is not None
        try:
            while True:
                while not self._waiting:
                    self._more.clear()
                    await self._more.wait()
                size = int.from_bytes(await child.stdout.readexactly(8), "big")
                answer = pickle.loads(await child.stdout.readexactly(size))  # noqa: S301
                self._waiting.popleft().set_result(answer)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            logger.warning("the ledger row checker stopped (%s); checking here", exc)
            self._child = None
            while self._waiting:
                self._waiting.popleft().set_exception(_ChildGone())

    def check(self, rows: list[LeafRow], start: int) -> Awaitable[tuple[int, str] | None]:
        given = [(r.index, r.leaf, r.leaf_hash, r.payload, r.salt) for r in rows]
        child = self._child
        if child is None or child.stdin is None:
            done: asyncio.Future[tuple[int, str] | None] = (
                asyncio.get_running_loop().create_future()
            )
            done.set_result(first_problem(given, start))
            return done
        answer = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        self._more.set()
        child.stdin.write(frame(pickle.dumps((given, start), protocol=pickle.HIGHEST_PROTOCOL)))
        waiting = asyncio.create_task(self._wait(child.stdin, answer, given, start))
        self._unanswered.add(waiting)
        waiting.add_done_callback(self._unanswered.discard)
        return waiting

    async def _wait(
        self,
        pipe: asyncio.StreamWriter,
        answer: asyncio.Future[tuple[int, str] | None],
        given: list[Row],
        start: int,
    ) -> tuple[int, str] | None:
        try:
            await pipe.drain()
            return await answer
        except (_ChildGone, ConnectionError):
            return first_problem(given, start)

    async def close(self) -> None:
        """Stop the process; a page still in it (after a bad one) is not waited for."""
        for waiting in list(self._unanswered):
            waiting.cancel()
        await asyncio.gather(*self._unanswered, return_exceptions=True)
        child, self._child = self._child, None
        if child is not None and child.stdin is not None:
            child.stdin.close()
            try:
                await asyncio.wait_for(child.wait(), 5)
            except TimeoutError:
                child.kill()
                await child.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


class _ChildGone(Exception):
    """The row checker's process stopped before it answered."""


def _page(
    rows: list[LeafRow],
    problem: tuple[int, str] | None,
    meet: dict[int, list[_Seen]],
    state: _Pass,
) -> _Extension:
    """Extend the tree by a page of rows that should follow it, the first ``problem``
    among them as :class:`_RowChecks` found it, and check the checkpoints they reach; the
    nodes they complete.  Entries are judged in order, and a checkpoint when its last
    entry is in, as if one at a time."""
    start = state.tree.size
    bad = None
    if problem is not None:
        offset, detail = problem
        bad, rows = _Bad(start + offset, detail), rows[:offset]
    state.erased += sum(row.payload is None for row in rows)
    done = state.tree.extend([row.leaf_hash for row in rows])
    for size in sorted(s for s in meet if start < s <= state.tree.size):
        for seen in meet[size]:
            if done.root(size) != seen.root:
                raise _Bad(
                    state.last_match,
                    f"the entries from {state.last_match} to {size - 1} do not match "
                    f"{seen.source}: one of them was changed",
                )
            state.last_match = size
    if bad is not None:
        raise bad
    return done


async def _scan(
    storage: Storage, meet: dict[int, list[_Seen]], state: _Pass, size: int, checks: _RowChecks
) -> int:
    """Check the first ``size`` entries (the head's: entries written meanwhile are the
    next verification's): while a page's tree is made here, the next page is read and
    its rows checked by ``checks``."""

    async def read(after: int, start: int) -> _Checked:
        rows = await storage.ledger.scan(after=after, limit=max(1, min(PAGE, size - after - 1)))
        return rows, checks.check(rows, start)

    if size <= 0:
        return 0
    rows, problem = await read(-1, 0)
    while rows:
        last = rows[-1].index
        following = None
        if last + 1 < size:
            following = asyncio.create_task(read(last, state.tree.size + len(rows)))
        try:
            done = _page(rows, await problem, meet, state)
            await _compare_nodes(storage, done.nodes())
        except BaseException:
            if following is not None:
                await asyncio.gather(following, return_exceptions=True)  # let it finish
            raise
        if following is None:
            break
        rows, problem = await following
    return state.tree.size


async def _nothing_beyond(storage: Storage, head: TreeHead) -> None:
    """An entry stored past the head is one written since it was read -- whose own
    transaction moved the head on -- or one put there behind the platform's back."""
    if not await storage.ledger.scan(after=head.size - 1, limit=1):
        return
    if (await storage.ledger.head()).size <= head.size:
        raise _Bad(head.size, f"entry {head.size} is stored beyond the head of {head.size} entries")


async def verify_ledger(
    storage: Storage,
    *,
    verifiers: Sequence[notes.Verifier] = (),
    origin: str | None = None,
    external: Sequence[tuple[str, str]] = (),
    check_apart: bool | None = None,
) -> LedgerReport:
    """Check the whole ledger (module docstring); ``verifiers`` are the keys a checkpoint
    must be signed by (none: signatures are not checked), ``external`` the copies of
    checkpoints kept outside the database, as (where, note text).  ``check_apart``: check
    the rows in a second process (by default for a ledger of :data:`CHECK_APART_FROM`
    entries or more, on a machine of two cores or more)."""
    state = _Pass()
    stored: list[StoredCheckpoint] = []
    head: TreeHead | None = None
    if check_apart is None:
        big = (await storage.ledger.head()).size >= CHECK_APART_FROM
        check_apart = big and (os.cpu_count() or 1) > 1
    checks = _RowChecks(check_apart)
    await checks.start()
    try:
        # The checkpoints before the head: each was signed over a head no later than it.
        stored = await _stored_checkpoints(storage, verifiers, origin)
        head = await storage.ledger.head()
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
        size = await _scan(storage, meet, state, head.size, checks)
        beyond = [s for s in meet if s > size]
        if beyond:
            sources = ", ".join(seen.source for s in sorted(beyond) for seen in meet[s])
            raise _Bad(size, f"the ledger's head holds {size} entries, fewer than {sources} saw")
        if size != head.size:
            raise _Bad(
                min(size, head.size),
                f"the ledger head records {head.size} entries but {size} are stored",
            )
        if state.tree.root() != head.root:
            raise _Bad(state.last_match, "the entries' tree root is not the head's")
        await _nothing_beyond(storage, head)
    except _Bad as bad:
        if head is None:  # a checkpoint failed before the head was read
            head = await storage.ledger.head()
        return LedgerReport(
            False, head.size, bad.first_bad, bad.detail, len(stored), len(external), state.erased
        )
    finally:
        await checks.close()
    return LedgerReport(True, head.size, None, None, len(stored), len(external), state.erased)
