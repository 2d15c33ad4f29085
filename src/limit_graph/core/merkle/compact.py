"""The tree as it grows: its right edge (:class:`CompactRange`) and a whole tree in
memory (:class:`MerkleTree`)."""

from __future__ import annotations

from collections.abc import Iterable

from limit_graph.core.merkle.hashing import (
    HASH_SIZE,
    NodeId,
    ProofError,
    _check_hash,
    _count,
    _leaf_list,
    _perfect,
    _sha256,
    hash_of_range,
    node_hash,
    range_node_ids,
)
from limit_graph.core.merkle.proofs import (
    _check_index,
    _check_sizes,
    _consistency_ranges,
    _hashes,
    _path_ranges,
)


class CompactRange:
    """The right edge of the tree over leaves ``[0, size)``: the hashes of its perfect
    subtrees, largest (leftmost) first, one per set bit of ``size``.  It is all an append
    needs: a new leaf merges with the edge's smallest subtrees while they are its size.

    >>> from limit_graph.core.merkle import leaf_hash
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
