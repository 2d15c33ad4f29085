"""RFC 6962 inclusion and consistency proofs (RFC 9162 §2.1.3, §2.1.4): which nodes a
proof is made of, the proof from a store's nodes, and its verification."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from limit_graph.core.merkle.hashing import (
    NodeId,
    ProofError,
    _check_hash,
    _count,
    _fold,
    _perfect,
    _span,
    _split,
    node_hash,
)


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
