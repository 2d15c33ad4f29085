"""RFC 6962 hashes: leaves, inner nodes, the tree hash (MTH) and its perfect subtrees."""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}), the root of the empty tree: the SHA-256 of the empty string (RFC 6962 §2.1)."""

NodeId = tuple[int, int]
"""``(level, index)``: the perfect subtree of leaves ``[index << level, (index + 1) << level)``."""

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof, or a request for one, that cannot prove what it is said to; the message
    says what is wrong (an index beyond the size, a count of hashes, a root mismatch)."""

    __module__ = "limit_graph.core.merkle"  # where users import it from


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
