"""RFC 6962 Merkle trees (RFC 9162 §2.1): hashes, perfect subtrees, compact ranges, proofs.

Written by hand because no kept Python library implements RFC 6962 proofs over stored
nodes; standard library only, so that the verification kit runs without the platform.

- **Hashes** (RFC 6962 §2.1): a leaf is ``SHA-256(0x00 || data)``, an inner node
  ``SHA-256(0x01 || left || right)``; the two prefixes keep a leaf from passing for a node.
  The hash of ``n > 1`` leaves, MTH, splits them at ``k``, the largest power of two below
  ``n``, so its left side is always a *perfect* subtree of ``k`` leaves.
- **Node ids**: ``(level, index)`` names the perfect subtree of the leaves
  ``[index << level, (index + 1) << level)``; level 0 are the leaf hashes.  Such a node
  never changes once its last leaf is in, so a store writes each once.
- **Why perfect nodes are enough**: every range RFC 6962's recursion hashes starts at a
  multiple of the largest power of two not above its size, so it is the perfect subtrees
  of the binary digits of its size, largest first (:func:`range_node_ids`), and its MTH
  their right fold (:func:`hash_of_range`).  A proof is O(log n) of them, fetched at once
  (:func:`inclusion_node_ids`, :func:`consistency_node_ids`).

Edge cases, decided once here:

- the empty tree's root is :data:`EMPTY_ROOT`; it has no leaf, hence no inclusion proof;
- a consistency proof *from* size 0 is refused: RFC 9162 §2.1.4.2 is defined for a
  first size above 0, and every tree extends the empty one, so it would prove nothing;
- between equal sizes the proof is empty and only the two roots are compared;
- a leaf hash, root or proof element that is not :data:`HASH_SIZE` bytes is refused
  before any hashing, so bytes added before or after an element cannot be absorbed;
- every refusal is a :class:`ProofError` (a :class:`ValueError`) saying what is wrong;
- a proof binds the tree size only through the tree's shape, as in RFC 9162: the path
  of leaf 0 among 3 leaves also leads to the same root "among 4", so a root is to be
  trusted together with its size (a signed checkpoint holds both), never alone.

>>> leaves = [leaf_hash(bytes([n])) for n in range(5)]
>>> tree = MerkleTree(leaves)
>>> tree.root() == root_of(leaves)
True
>>> verify_inclusion(3, 5, leaves[3], tree.inclusion_proof(3, 5), tree.root())
>>> verify_consistency(2, 5, tree.root(2), tree.root(), tree.consistency_proof(2, 5))
>>> verify_inclusion(3, 5, leaves[2], tree.inclusion_proof(3, 5), tree.root())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
limit_graph.core.merkle.ProofError: root mismatch: the proof of index 3 in a tree of size 5 ...
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleTree",
    "NodeId",
    "ProofError",
    "consistency_node_ids",
    "consistency_proof",
    "hash_of_range",
    "inclusion_node_ids",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_node_ids",
    "root_from_inclusion",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}), the root of the empty tree: the SHA-256 of the empty string (RFC 6962 §2.1)."""

NodeId = tuple[int, int]
"""``(level, index)``: the perfect subtree of leaves ``[index << level, (index + 1) << level)``."""

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof, or a request for one, that cannot prove what it is said to; the message
    says what is wrong (an index beyond the size, a count of hashes, a root mismatch)."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of a leaf (RFC 6962 §2.1)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an inner node (RFC 6962 §2.1)."""
    return _sha256(b"\x01" + left + right).digest()


def _count(value: int, what: str) -> int:
    """``value`` as an int (any integer type, not a float), or :class:`TypeError`."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None


def _check_hash(digest: bytes, what: str, error: type[ValueError] = ProofError) -> None:
    if not isinstance(digest, bytes):
        raise TypeError(f"{what} must be bytes, not {type(digest).__name__}")
    if len(digest) != HASH_SIZE:
        raise error(f"{what} is {len(digest)} bytes, not {HASH_SIZE}")


def _leaf_list(leaf_hashes: Iterable[bytes]) -> list[bytes]:
    """The leaf hashes as a list, every one checked before any is used."""
    leaves = list(leaf_hashes)
    for n, digest in enumerate(leaves):
        _check_hash(digest, f"leaf hash {n}", ValueError)
    return leaves


def _split(n: int) -> int:
    """RFC 6962's ``k`` for ``n > 1`` leaves: the largest power of two below ``n``."""
    return 1 << ((n - 1).bit_length() - 1)


def _span(node: NodeId) -> str:
    level, index = node
    return f"leaves {index << level}..{((index + 1) << level) - 1}"


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves (given by their leaf hashes), in O(n) and without recursion:
    level by level, a level's odd last node carried up unchanged, which is RFC 6962's
    split (the left side a perfect subtree, the right side the rest)."""
    level = _leaf_list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        even = len(level) & ~1
        above = [
            _sha256(b"\x01" + a + b).digest()
            for a, b in zip(level[0:even:2], level[1:even:2], strict=True)
        ]
        above.extend(level[even:])
        level = above
    return level[0]


def range_node_ids(begin: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up ``[begin, end)`` as RFC 6962's recursion splits
    it: one per binary digit of its size, largest (leftmost) first.  That holds only for
    the ranges the recursion makes, those whose ``begin`` is a multiple of the largest
    power of two not above their size (any range from 0 among them); others are refused.

    >>> range_node_ids(0, 7)
    [(2, 0), (1, 2), (0, 6)]
    """
    begin, end = _count(begin, "begin"), _count(end, "end")
    if not 0 <= begin <= end:
        raise ValueError(f"[{begin}, {end}) is not a range of leaves")
    size = end - begin
    if size and begin % (1 << (size.bit_length() - 1)):
        top = 1 << (size.bit_length() - 1)
        raise ValueError(
            f"[{begin}, {end}) is not a range of RFC 6962's recursion: its first subtree "
            f"of {top} leaves would start at {begin}, not at a multiple of {top}"
        )
    return _perfect(begin, end)


def _perfect(begin: int, end: int) -> list[NodeId]:
    """:func:`range_node_ids` of a range known to be one of the recursion's."""
    ids: list[NodeId] = []
    size = end - begin
    while size:
        level = size.bit_length() - 1
        ids.append((level, begin >> level))
        begin += 1 << level
        size -= 1 << level
    return ids


def hash_of_range(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from the hashes of its perfect subtrees (:func:`range_node_ids`
    order): RFC 6962 puts each larger left subtree over the MTH of everything right of
    it, so this is a right fold.  No subtrees is the empty range, :data:`EMPTY_ROOT`."""
    for n, digest in enumerate(hashes):
        _check_hash(digest, f"subtree hash {n}", ValueError)
    return _fold(hashes) if hashes else EMPTY_ROOT


def _fold(hashes: Sequence[bytes]) -> bytes:
    result = hashes[-1]
    for digest in reversed(hashes[:-1]):
        result = _sha256(b"\x01" + digest + result).digest()
    return result


def _check_index(index: int, size: int) -> tuple[int, int]:
    index, size = _count(index, "index"), _count(size, "size")
    if size <= 0:
        raise ProofError(f"a tree of size {size} has no leaves, so no inclusion proof")
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below tree size {size}")
    return index, size


def _check_sizes(first: int, second: int) -> tuple[int, int]:
    first, second = _count(first, "first size"), _count(second, "second size")
    if first <= 0:
        raise ProofError(
            f"consistency from a tree of size {first} is not defined (RFC 9162 §2.1.4.2 "
            "needs a first size above 0; every tree extends the empty one)"
        )
    if first > second:
        raise ProofError(f"first size {first} is beyond second size {second}")
    return first, second


def _path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs are PATH(index, D[0:size]) (RFC 6962 §2.1.1), bottom to top:
    at each split, the side the leaf is not on."""
    ranges: list[tuple[int, int]] = []
    begin, end = 0, size
    while end - begin > 1:
        k = _split(end - begin)
        if index < begin + k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin += k
    ranges.reverse()
    return ranges


def _consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs are PROOF(first, D[0:second]) (RFC 6962 §2.1.2), bottom to
    top: SUBPROOF's recursion unrolled, ending with the subtree equal to the rest of the
    first tree, which is left out while it is the first tree itself (``b`` true)."""
    ranges: list[tuple[int, int]] = []
    begin, end, m, whole = 0, second, first, True
    while m != end - begin:
        k = _split(end - begin)
        if m <= k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin, m, whole = begin + k, m - k, False
    if not whole:
        ranges.append((begin, end))
    ranges.reverse()
    return ranges


def _ids(ranges: Iterable[tuple[int, int]]) -> list[NodeId]:
    """The nodes of the ranges, each once: a proof's ranges never overlap."""
    return [node for begin, end in ranges for node in _perfect(begin, end)]


def _reader(nodes: Mapping[NodeId, bytes]) -> Callable[[NodeId], bytes]:
    """A node's hash from ``nodes``, or an error naming the node that is missing or bad."""

    def read(node: NodeId) -> bytes:
        try:
            digest = nodes[node]
        except KeyError:
            raise KeyError(f"no hash given for node {node} ({_span(node)})") from None
        _check_hash(digest, f"the hash of node {node}", ValueError)
        return digest

    return read


def _hashes(ranges: list[tuple[int, int]], read: Callable[[NodeId], bytes]) -> list[bytes]:
    return [_fold([read(node) for node in _perfect(b, e)]) for b, e in ranges]


def inclusion_node_ids(index: int, size: int) -> list[NodeId]:
    """Every stored node the inclusion proof of ``index`` in a tree of ``size`` leaves is
    made of, each once, so that a store fetches them in one query."""
    return _ids(_path_ranges(*_check_index(index, size)))


def inclusion_proof(index: int, size: int, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(index, D[0:size]), bottom to top, from ``nodes`` (holding at
    least :func:`inclusion_node_ids`)."""
    return _hashes(_path_ranges(*_check_index(index, size)), _reader(nodes))


def consistency_node_ids(first: int, second: int) -> list[NodeId]:
    """Every stored node the consistency proof from ``first`` to ``second`` leaves is made
    of, each once (none when the sizes are equal)."""
    return _ids(_consistency_ranges(*_check_sizes(first, second)))


def consistency_proof(first: int, second: int, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """RFC 6962 §2.1.2 PROOF(first, D[0:second]), from ``nodes`` (holding at least
    :func:`consistency_node_ids`); empty when the sizes are equal."""
    return _hashes(_consistency_ranges(*_check_sizes(first, second)), _reader(nodes))


def _inclusion_length(index: int, size: int) -> int:
    """How many hashes PATH(index, D[0:size]) has: a sibling per level below the point
    where ``index`` and the last leaf part, then one per left subtree above it."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_length(first: int, second: int) -> int:
    """How many hashes PROOF(first, D[0:second]) has (``first < second``): the path of the
    first tree's last perfect subtree, and that subtree unless it is the first tree."""
    level = (first & -first).bit_length() - 1
    index = (first - 1) >> level
    return _inclusion_length(index, ((second - 1) >> level) + 1) + (1 if index else 0)


def _inclusion_miscount(index: int, size: int, proof: Sequence[bytes]) -> ProofError:
    needed = _inclusion_length(index, size)
    return ProofError(
        f"proof has {len(proof)} hashes, a tree of size {size} needs {needed} for index {index}"
    )


def _consistency_miscount(first: int, second: int, proof: Sequence[bytes]) -> ProofError:
    needed = _consistency_length(first, second)
    return ProofError(f"proof has {len(proof)} hashes, sizes {first} and {second} need {needed}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` at ``index`` in a tree of ``size``
    leaves, by RFC 9162 §2.1.3.2: ``fn`` and ``sn`` walk the leaf's and the last leaf's
    positions up a level per element.  Where the node is a right child the element is its
    left sibling; where it is the last of its level it has no sibling, so the levels up to
    where it is a right child are skipped (the RFC's tree carries such a node up) and the
    element is the sibling there; otherwise the element is on the right.  A proof of the
    wrong length is refused."""
    index, size = _check_index(index, size)
    _check_hash(leaf, "the leaf hash")
    for n, digest in enumerate(proof):
        _check_hash(digest, f"proof element {n}")
    fn, sn, r = index, size - 1, leaf
    for digest in proof:
        if sn == 0:
            raise _inclusion_miscount(index, size, proof)
        if fn & 1 or fn == sn:
            r = node_hash(digest, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, digest)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _inclusion_miscount(index, size, proof)
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Return if ``proof`` shows ``leaf`` (a leaf hash) at ``index`` in the tree of
    ``size`` leaves whose root is ``root``; raise :class:`ProofError` saying why not."""
    _check_hash(root, "the root")
    found = root_from_inclusion(index, size, leaf, proof)
    if found != root:
        raise ProofError(
            f"root mismatch: the proof of index {index} in a tree of size {size} leads to "
            f"{found.hex()}, not {root.hex()}"
        )


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Return if ``proof`` shows that the tree of ``first`` leaves (root ``first_root``)
    is a prefix of the tree of ``second`` (root ``second_root``), by RFC 9162 §2.1.4.2:
    ``fr`` rebuilds the first root from the nodes left of the first tree's end, ``sr``
    the second from all of them; raise :class:`ProofError` saying why not."""
    first, second = _check_sizes(first, second)
    _check_hash(first_root, "the first root")
    _check_hash(second_root, "the second root")
    for n, digest in enumerate(proof):
        _check_hash(digest, f"proof element {n}")
    if first == second:
        if proof:
            raise ProofError(
                f"proof has {len(proof)} hashes, equal sizes ({first}) need an empty one"
            )
        if first_root != second_root:
            raise ProofError(f"root mismatch: two different roots for tree size {first}")
        return
    if not proof:
        raise _consistency_miscount(first, second, proof)
    path = [first_root, *proof] if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise _consistency_miscount(first, second, proof)
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _consistency_miscount(first, second, proof)
    if fr != first_root:
        raise ProofError(f"root mismatch: the proof leads to another root for size {first}")
    if sr != second_root:
        raise ProofError(f"root mismatch: the proof leads to another root for size {second}")


class CompactRange:
    """The right edge of the tree over leaves ``[0, size)``: the hashes of its perfect
    subtrees, largest (leftmost) first, one per set bit of ``size``.  It is all an append
    needs: a new leaf merges with the edge's smallest subtrees while they are its size.

    >>> edge = CompactRange.empty()
    >>> [node for node, _ in edge.extend(leaf_hash(bytes([n])) for n in range(3))]
    [(0, 0), (0, 1), (1, 0), (0, 2)]
    >>> edge.size, len(edge.hashes)
    (3, 2)
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int, hashes: Iterable[bytes]) -> None:
        size, hashes = _count(size, "size"), list(hashes)
        if size < 0:
            raise ValueError(f"a tree size is not negative: {size}")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a range of {size} leaves has {size.bit_count()} subtrees, not {len(hashes)}"
            )
        for n, digest in enumerate(hashes):
            _check_hash(digest, f"subtree hash {n}", ValueError)
        self.size = size
        self.hashes = hashes

    @classmethod
    def empty(cls) -> CompactRange:
        """The edge of the empty tree."""
        return cls(0, [])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self.size, self.hashes) == (other.size, other.hashes)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self.size}, root={self.root().hex()[:16]}...)"

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Add a leaf hash; the perfect nodes it completes, lowest level first: the leaf,
        then each parent it finishes (one per trailing 1 bit of the old size)."""
        _check_hash(leaf, "the leaf hash", ValueError)
        index, level, digest = self.size, 0, leaf
        made: list[tuple[NodeId, bytes]] = [((0, index), leaf)]
        while index & 1:
            digest = node_hash(self.hashes.pop(), digest)
            index >>= 1
            level += 1
            made.append(((level, index), digest))
        self.hashes.append(digest)
        self.size += 1
        return made

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[NodeId, bytes]]:
        """:meth:`append` each leaf hash (all or, if one is malformed, none); all the
        nodes they complete, in that order."""
        made: list[tuple[NodeId, bytes]] = []
        for leaf in _leaf_list(leaves):
            made.extend(self.append(leaf))
        return made

    def nodes(self) -> list[tuple[NodeId, bytes]]:
        """The edge's subtrees with their ids (:func:`range_node_ids` of ``[0, size)``)."""
        return list(zip(range_node_ids(0, self.size), self.hashes, strict=True))

    def root(self) -> bytes:
        """MTH of the leaves so far (:data:`EMPTY_ROOT` for none)."""
        return hash_of_range(self.hashes)

    def to_bytes(self) -> bytes:
        """The hashes, concatenated: what a store keeps beside the size."""
        return b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes | bytearray | memoryview) -> CompactRange:
        """The range :meth:`to_bytes` wrote for ``size`` leaves; :class:`ValueError` unless
        ``data`` is exactly one hash per set bit of ``size``."""
        size, data = _count(size, "size"), bytes(data)
        if size < 0:
            raise ValueError(f"a tree size is not negative: {size}")
        want = size.bit_count() * HASH_SIZE
        if len(data) != want:
            raise ValueError(
                f"the edge of a tree of {size} leaves is {size.bit_count()} hashes "
                f"({want} bytes), not {len(data)} bytes"
            )
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, want, HASH_SIZE)])


class MerkleTree:
    """Every perfect subtree of a tree, in memory: one contiguous buffer of hashes per
    level (2n hashes in all).  Roots of any earlier size and proofs come from those nodes
    as a store's would; ``MerkleTree(leaf_hashes)`` builds a whole tree level by level."""

    __slots__ = ("_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        leaves = _leaf_list(leaf_hashes)
        self._size = len(leaves)
        below = b"".join(leaves)
        self._levels = [bytearray(below)]
        while len(below) >= 2 * HASH_SIZE:  # each pair of nodes (64 bytes) makes a parent
            pairs = range(0, len(below) - 2 * HASH_SIZE + 1, 2 * HASH_SIZE)
            below = b"".join(
                _sha256(b"\x01" + below[i : i + 2 * HASH_SIZE]).digest() for i in pairs
            )
            self._levels.append(bytearray(below))

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._size

    def node(self, level: int, index: int) -> bytes:
        """The hash of perfect subtree ``(level, index)``; :class:`KeyError` unless it is
        complete in this tree."""
        level, index = _count(level, "level"), _count(index, "index")
        if not (0 <= level < len(self._levels) and 0 <= index < self._size >> level):
            raise KeyError(f"the tree has no node ({level}, {index})")
        return self._read((level, index))

    def _read(self, node: NodeId) -> bytes:
        start = node[1] * HASH_SIZE
        return bytes(self._levels[node[0]][start : start + HASH_SIZE])

    def nodes(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        """The hashes of the given nodes, as a store's bulk read returns them."""
        return {(level, index): self.node(level, index) for level, index in ids}

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Add a leaf hash; the perfect nodes it completes, lowest level first (as
        :meth:`CompactRange.append`)."""
        _check_hash(leaf, "the leaf hash", ValueError)
        index, level, digest = self._size, 0, leaf
        made: list[tuple[NodeId, bytes]] = [((0, index), leaf)]
        self._levels[0] += leaf
        while index & 1:
            digest = node_hash(self._read((level, index - 1)), digest)
            index >>= 1
            level += 1
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += digest
            made.append(((level, index), digest))
        self._size += 1
        return made

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[NodeId, bytes]]:
        """:meth:`append` each leaf hash (all or, if one is malformed, none); all the
        nodes they complete, in that order."""
        made: list[tuple[NodeId, bytes]] = []
        for leaf in _leaf_list(leaves):
            made.extend(self.append(leaf))
        return made

    def _size_at(self, size: int | None) -> int:
        size = self._size if size is None else _count(size, "size")
        if not 0 <= size <= self._size:
            raise ValueError(f"size {size} is not a size of this tree (0..{self._size})")
        return size

    def compact_range(self, size: int | None = None) -> CompactRange:
        """The right edge of the tree of the first ``size`` leaves (default: all)."""
        size = self._size_at(size)
        return CompactRange(size, [self._read(node) for node in _perfect(0, size)])

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all), from O(log n) stored nodes."""
        return self.compact_range(size).root()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 PATH of ``index`` in the tree of the first ``size`` leaves."""
        index, size = _check_index(index, size)
        if size > self._size:
            raise ProofError(f"tree size {size} is beyond this tree's {self._size} leaves")
        return _hashes(_path_ranges(index, size), self._read)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 6962 PROOF from the first ``first`` leaves to the first ``second``."""
        first, second = _check_sizes(first, second)
        if second > self._size:
            raise ProofError(f"tree size {second} is beyond this tree's {self._size} leaves")
        return _hashes(_consistency_ranges(first, second), self._read)
