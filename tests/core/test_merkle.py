"""RFC 6962 Merkle trees: the published test vectors, a recursive reference written from
the RFC's definitions (every size and index up to 70 leaves, random ones beyond), every
corruption of every proof refused, compact ranges and the in-memory tree agreeing with
it, and every bad input refused with an error that says what is wrong."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limit_graph.core.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    MerkleTree,
    NodeId,
    ProofError,
    consistency_node_ids,
    consistency_proof,
    hash_of_range,
    inclusion_node_ids,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_node_ids,
    root_from_inclusion,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# --- Published vectors ------------------------------------------------------------------
# The 8-leaf test tree of Certificate Transparency's reference implementation
# (google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc: kInputs,
# kSHA256Roots, kSHA256Paths, kSHA256Proofs, whose leaf numbers count from 1) and of
# transparency-dev/merkle (testonly/constants.go: LeafInputs, NodeHashes, RootHashes,
# CompactTrees; proof/verify_test.go before commit bcba819 moved them to testdata/, with
# the extra consistency proof 6 -> 7).  Indices below count from 0.

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]

ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
"""The root at every size from 0 (the empty tree) to 8."""

COMPACT_EDGES = [
    [],
    [(0, 0)],
    [(1, 0)],
    [(1, 0), (0, 2)],
    [(2, 0)],
    [(2, 0), (0, 4)],
    [(2, 0), (1, 2)],
    [(2, 0), (1, 2), (0, 6)],
    [(3, 0)],
]
"""CompactTrees: the nodes (level, index) of the right edge at each size."""

INCLUSION_PROOFS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
"""(index, tree size, PATH)."""

CONSISTENCY_PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
"""(first size, second size, PROOF)."""

# transparency-dev/merkle, proof/proof_test.go (TestInclusion, TestConsistency): the nodes
# (level, index) each proof is made of, in trees of up to 95 leaves.
INCLUSION_NODES: dict[tuple[int, int], set[NodeId]] = {
    (1, 0): set(),
    (2, 0): {(0, 1)},
    (2, 1): {(0, 0)},
    (3, 1): {(0, 0), (0, 2)},
    (7, 0): {(0, 1), (1, 1), (0, 6), (1, 2)},
    (7, 1): {(0, 0), (1, 1), (0, 6), (1, 2)},
    (7, 2): {(0, 3), (1, 0), (0, 6), (1, 2)},
    (7, 3): {(0, 2), (1, 0), (0, 6), (1, 2)},
    (7, 4): {(0, 5), (0, 6), (2, 0)},
    (7, 5): {(0, 4), (0, 6), (2, 0)},
    (7, 6): {(1, 2), (2, 0)},
    (4, 2): {(0, 3), (1, 0)},
    (5, 3): {(0, 2), (1, 0), (0, 4)},
    (6, 3): {(0, 2), (1, 0), (1, 2)},
    (6, 4): {(0, 5), (2, 0)},
    (15, 10): {(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)},
    (31, 24): {(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)},
    (95, 81): {(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)},
}
"""(tree size, index) -> nodes."""

CONSISTENCY_NODES: dict[tuple[int, int], set[NodeId]] = {
    (1, 2): {(0, 1)},
    (1, 4): {(0, 1), (1, 1)},
    (1, 6): {(0, 1), (1, 1), (1, 2)},
    (2, 3): {(0, 2)},
    (2, 8): {(1, 1), (2, 1)},
    (3, 7): {(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)},
    (4, 7): {(0, 6), (1, 2)},
    (5, 7): {(0, 4), (0, 5), (0, 6), (2, 0)},
    (6, 7): {(1, 2), (0, 6), (2, 0)},
    (7, 8): {(0, 6), (0, 7), (1, 2), (2, 0)},
    **{(n, n): set() for n in (1, 2, 3, 4, 5, 7, 8)},
    (2, 4): {(1, 1)},
    (3, 5): {(0, 2), (0, 3), (1, 0), (0, 4)},
    (3, 6): {(0, 2), (0, 3), (1, 0), (1, 2)},
    (4, 6): {(1, 2)},
    (1, 7): {(0, 1), (1, 1), (0, 6), (1, 2)},
    (10, 15): {(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)},
    (24, 31): {(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)},
    (81, 95): {
        *((0, 80), (0, 81), (1, 41), (2, 21)),
        *((0, 94), (1, 46), (2, 22), (4, 4), (6, 0)),
    },
}
"""(first size, second size) -> nodes."""

# transparency-dev/merkle, cmd/proofgen (testdata/inclusion/single-entry): the tree of the
# one leaf "data", and the "random" hash its probes use as a wrong root or an added element.
DATA_LEAF = base64.b64decode("DTrtAjFI/9KiWfvQzcf7PPl1ZYdg03dbgq9vkKrMLfw=")
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def hexes(hashes: Sequence[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


@pytest.fixture(scope="module")
def vector_tree() -> MerkleTree:
    tree = MerkleTree()
    tree.extend(leaf_hash(data) for data in LEAF_INPUTS)
    return tree


def test_hashes_of_the_published_tree(vector_tree: MerkleTree) -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0] and HASH_SIZE == 32
    assert leaf_hash(b"data") == DATA_LEAF
    assert [[h.hex() for h in level] for level in _levels(vector_tree)] == NODE_HASHES
    for size, root in enumerate(ROOTS):
        leaves = [leaf_hash(d) for d in LEAF_INPUTS[:size]]
        assert vector_tree.root(size).hex() == root
        assert root_of(leaves).hex() == root
        edge = CompactRange.empty()
        edge.extend(leaves)
        assert edge.root().hex() == root
        assert [node for node, _ in edge.nodes()] == COMPACT_EDGES[size]
        assert hexes(edge.hashes) == [NODE_HASHES[lv][i] for lv, i in COMPACT_EDGES[size]]


def _levels(tree: MerkleTree) -> list[list[bytes]]:
    levels: list[list[bytes]] = []
    for level in range(tree.size.bit_length()):
        levels.append([tree.node(level, i) for i in range(tree.size >> level)])
    return levels


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_PROOFS)
def test_published_inclusion_proofs(
    vector_tree: MerkleTree, index: int, size: int, path: list[str]
) -> None:
    assert hexes(vector_tree.inclusion_proof(index, size)) == path
    leaf = leaf_hash(LEAF_INPUTS[index])
    proof = [bytes.fromhex(h) for h in path]
    verify_inclusion(index, size, leaf, proof, bytes.fromhex(ROOTS[size]))
    with pytest.raises(ProofError, match="root mismatch"):
        verify_inclusion(index, size, leaf, proof, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY_PROOFS)
def test_published_consistency_proofs(
    vector_tree: MerkleTree, first: int, second: int, path: list[str]
) -> None:
    assert hexes(vector_tree.consistency_proof(first, second)) == path
    first_root, second_root = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    proof = [bytes.fromhex(h) for h in path]
    verify_consistency(first, second, first_root, second_root, proof)
    with pytest.raises(ProofError):
        verify_consistency(first, second, first_root, SOME_HASH, proof)


def test_published_node_ids() -> None:
    for (size, index), nodes in INCLUSION_NODES.items():
        ids = inclusion_node_ids(index, size)
        assert set(ids) == nodes and len(ids) == len(nodes), (size, index)
    for (first, second), nodes in CONSISTENCY_NODES.items():
        ids = consistency_node_ids(first, second)
        assert set(ids) == nodes and len(ids) == len(nodes), (first, second)


def test_the_single_entry_tree() -> None:
    verify_inclusion(0, 1, DATA_LEAF, [], DATA_LEAF)
    with pytest.raises(ProofError, match="the leaf hash is 0 bytes"):
        verify_inclusion(0, 1, b"", [], DATA_LEAF)
    with pytest.raises(ProofError, match="the root is 0 bytes"):
        verify_inclusion(0, 1, DATA_LEAF, [], b"")


# --- A reference written from the RFC's definitions ------------------------------------
# RFC 6962 §2.1: MTH, PATH and PROOF/SUBPROOF as the text gives them, recursive, over the
# data entries D[begin:end] (named by their bounds so that MTH can be remembered).

N = 70
DATA = [b"entry %d" % i for i in range(2 * N + 2)]
LEAVES = [hashlib.sha256(b"\x00" + d).digest() for d in DATA]


def ref_split(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def ref_mth(begin: int, end: int) -> bytes:
    n = end - begin
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + DATA[begin]).digest()
    k = ref_split(n)
    return hashlib.sha256(b"\x01" + ref_mth(begin, begin + k) + ref_mth(begin + k, end)).digest()


def ref_path_ranges(m: int, begin: int, end: int) -> list[tuple[int, int]]:
    """PATH(m, D[begin:end]) as the ranges whose MTH it lists."""
    n = end - begin
    if n == 1:
        return []
    k = ref_split(n)
    if m < k:
        return [*ref_path_ranges(m, begin, begin + k), (begin + k, end)]
    return [*ref_path_ranges(m - k, begin + k, end), (begin, begin + k)]


def ref_subproof_ranges(m: int, begin: int, end: int, b: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[begin:end], b) as the ranges whose MTH it lists."""
    n = end - begin
    if m == n:
        return [] if b else [(begin, end)]
    k = ref_split(n)
    if m <= k:
        return [*ref_subproof_ranges(m, begin, begin + k, b), (begin + k, end)]
    return [*ref_subproof_ranges(m - k, begin + k, end, False), (begin, begin + k)]


def ref_path(m: int, n: int) -> list[bytes]:
    return [ref_mth(*r) for r in ref_path_ranges(m, 0, n)]


def ref_proof(m: int, n: int) -> list[bytes]:
    return [ref_mth(*r) for r in ref_subproof_ranges(m, 0, n, True)]


def ref_perfect(begin: int, end: int) -> list[NodeId]:
    """The stored nodes of a range the recursion makes: split as MTH does until each
    part is a perfect, aligned subtree."""
    n = end - begin
    if n & (n - 1) == 0 and begin % n == 0:
        return [(n.bit_length() - 1, begin // n)]
    k = ref_split(n)
    return ref_perfect(begin, begin + k) + ref_perfect(begin + k, end)


def ref_nodes(ranges: list[tuple[int, int]]) -> list[NodeId]:
    return [node for r in ranges for node in ref_perfect(*r)]


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    """The tree of the first 2N + 2 entries, built a leaf at a time."""
    built = MerkleTree()
    built.extend(LEAVES)
    return built


class RecordingNodes(dict[NodeId, bytes]):
    """A store's answer for a set of nodes that notes which ones were read."""

    def __init__(self, nodes: dict[NodeId, bytes]) -> None:
        super().__init__(nodes)
        self.read: list[NodeId] = []

    def __getitem__(self, key: NodeId) -> bytes:
        self.read.append(key)
        return super().__getitem__(key)


def test_roots_match_the_reference_at_every_size(tree: MerkleTree) -> None:
    edge = CompactRange.empty()
    for size in range(2 * N + 3):
        assert root_of(LEAVES[:size]) == ref_mth(0, size), size
        assert tree.root(size) == ref_mth(0, size), size
        assert edge.root() == ref_mth(0, size), size
        assert edge == tree.compact_range(size), size
        assert MerkleTree(LEAVES[:size]).root() == ref_mth(0, size), size
        if size < len(LEAVES):
            edge.append(LEAVES[size])


def test_inclusion_proofs_match_the_reference(tree: MerkleTree) -> None:
    for size in range(1, N + 1):
        root = ref_mth(0, size)
        for index in range(size):
            expected = ref_path(index, size)
            ids = inclusion_node_ids(index, size)
            assert ids == ref_nodes(ref_path_ranges(index, 0, size)), (index, size)
            nodes = RecordingNodes(tree.nodes(ids))
            proof = inclusion_proof(index, size, nodes)
            assert proof == expected, (index, size)
            assert sorted(nodes.read) == sorted(ids), (index, size)
            assert tree.inclusion_proof(index, size) == expected
            assert root_from_inclusion(index, size, LEAVES[index], proof) == root
            verify_inclusion(index, size, LEAVES[index], proof, root)


def test_consistency_proofs_match_the_reference(tree: MerkleTree) -> None:
    for second in range(1, N + 1):
        for first in range(1, second + 1):
            expected = ref_proof(first, second)
            ids = consistency_node_ids(first, second)
            assert ids == ref_nodes(ref_subproof_ranges(first, 0, second, True))
            nodes = RecordingNodes(tree.nodes(ids))
            proof = consistency_proof(first, second, nodes)
            assert proof == expected, (first, second)
            assert sorted(nodes.read) == sorted(ids), (first, second)
            assert tree.consistency_proof(first, second) == expected
            verify_consistency(first, second, ref_mth(0, first), ref_mth(0, second), proof)


def test_ranges_of_the_recursion_decompose_as_the_reference(tree: MerkleTree) -> None:
    for end in range(N + 1):
        for begin in range(end + 1):
            size = end - begin
            aligned = size == 0 or begin % (1 << (size.bit_length() - 1)) == 0
            if not aligned:
                with pytest.raises(ValueError, match="not a range of RFC 6962's recursion"):
                    range_node_ids(begin, end)
                continue
            ids = range_node_ids(begin, end)
            assert ids == (ref_perfect(begin, end) if size else []), (begin, end)
            digests = [tree.node(*i) for i in ids]
            assert hash_of_range(digests) == ref_mth(begin, end), (begin, end)


# --- Every corruption refused -------------------------------------------------------------

Forgery = tuple[str, tuple[object, ...]]


def _element_forgeries(
    proof: list[bytes], extra: Sequence[bytes]
) -> Iterator[tuple[str, list[bytes]]]:
    """The proof with one thing wrong in its list of hashes (random bits are flipped
    by the property tests below)."""
    for j, digest in enumerate(proof):
        for byte, bit in ((0, 0x01), (HASH_SIZE - 1, 0x80)):
            yield f"bit {bit:#x} of byte {byte} of element {j} flipped", _flip(proof, j, byte, bit)
        yield f"element {j} removed", proof[:j] + proof[j + 1 :]
        yield f"junk before element {j}", _put(proof, j, b"\x00" + digest)
        yield f"junk after element {j}", _put(proof, j, digest + b"\x00")
        yield f"element {j} cut short", _put(proof, j, digest[:-1])
    for j in range(len(proof) + 1):
        yield f"a random hash added at {j}", [*proof[:j], SOME_HASH, *proof[j:]]
    for n, digest in enumerate(extra):
        yield f"extra hash {n} before", [digest, *proof]
        yield f"extra hash {n} after", [*proof, digest]
    for j in range(len(proof) - 1):
        if proof[j] != proof[j + 1]:
            yield f"elements {j} and {j + 1} swapped", _swap(proof, j, j + 1)
    if len(proof) > 2:
        yield "first and last swapped", _swap(proof, 0, len(proof) - 1)
        yield "reversed", proof[::-1]
    if proof:
        yield "empty", []
        yield "empty element", _put(proof, 0, b"")


def _put(proof: list[bytes], j: int, digest: bytes | bytearray) -> list[bytes]:
    return [*proof[:j], bytes(digest), *proof[j + 1 :]]


def _flip(proof: list[bytes], element: int, byte: int, bit: int) -> list[bytes]:
    flipped = bytearray(proof[element])
    flipped[byte] ^= bit
    return _put(proof, element, flipped)


def _swap(proof: list[bytes], a: int, b: int) -> list[bytes]:
    swapped = list(proof)
    swapped[a], swapped[b] = swapped[b], swapped[a]
    return swapped


def inclusion_forgeries(index: int, size: int, proof: list[bytes]) -> Iterator[Forgery]:
    leaf, root = LEAVES[index], ref_mth(0, size)
    yield "index - 1", (index - 1, size, leaf, proof, root)
    yield "index + 1", (index + 1, size, leaf, proof, root)
    yield "index XOR 2", (index ^ 2, size, leaf, proof, root)
    yield "size doubled", (index, size * 2, leaf, proof, root)
    yield "size halved", (index, size // 2, leaf, proof, root)
    yield "size 0", (index, 0, leaf, proof, root)
    yield "negative size", (index, -size, leaf, proof, root)
    yield "another leaf", (index, size, LEAVES[index + 1], proof, root)
    yield "the leaf's data", (index, size, DATA[index], proof, root)
    yield "a node hash as the leaf", (index, size, node_hash(leaf, leaf), proof, root)
    yield "leaf cut short", (index, size, leaf[:-1], proof, root)
    yield "junk after the leaf", (index, size, leaf + b"\x00", proof, root)
    yield "empty root", (index, size, leaf, proof, EMPTY_ROOT)
    yield "random root", (index, size, leaf, proof, SOME_HASH)
    yield "root of size + 1", (index, size, leaf, proof, ref_mth(0, size + 1))
    yield "root with junk", (index, size, leaf, proof, root + b"\x00")
    extra = (root, leaf, bytes(HASH_SIZE))
    for what, forged in _element_forgeries(proof, extra):
        yield what, (index, size, leaf, forged, root)


def consistency_forgeries(first: int, second: int, proof: list[bytes]) -> Iterator[Forgery]:
    r1, r2 = ref_mth(0, first), ref_mth(0, second)
    yield "first - 1", (first - 1, second, r1, r2, proof)
    yield "first + 1", (first + 1, second, r1, r2, proof)
    yield "first XOR 2", (first ^ 2, second, r1, r2, proof)
    yield "first doubled", (first * 2, second, r1, r2, proof)
    yield "first halved", (first // 2, second, r1, r2, proof)
    yield "second doubled", (first, second * 2, r1, r2, proof)
    yield "second halved", (first, second // 2, r1, r2, proof)
    if first != second:
        yield "sizes swapped", (second, first, r1, r2, proof)
    yield "first 0", (0, second, EMPTY_ROOT, r2, proof)
    yield "wrong first root", (first, second, SOME_HASH, r2, proof)
    yield "wrong second root", (first, second, r1, SOME_HASH, proof)
    yield "first root of first + 1", (first, second, ref_mth(0, first + 1), r2, proof)
    yield "second root of second + 1", (first, second, r1, ref_mth(0, second + 1), proof)
    yield "first root cut short", (first, second, r1[:-1], r2, proof)
    yield "second root with junk", (first, second, r1, r2 + b"\x00", proof)
    if r1 != r2:
        yield "roots swapped", (first, second, r2, r1, proof)
    extra = (r1, r2, bytes(HASH_SIZE))
    for what, forged in _element_forgeries(proof, extra):
        yield what, (first, second, r1, r2, forged)


def _accepted(verify: Callable[..., None], forgeries: Iterator[Forgery]) -> list[str]:
    """The forgeries ``verify`` did not refuse with a ProofError."""
    wrong: list[str] = []
    for what, args in forgeries:
        try:
            verify(*args)
        except ProofError:
            continue
        except Exception as exc:  # any other error is a finding too
            wrong.append(f"{what}: {type(exc).__name__}: {exc}")
        else:
            wrong.append(f"{what}: accepted")
    return wrong


def test_every_corrupted_inclusion_proof_is_refused() -> None:
    wrong: list[str] = []
    for size in range(1, N + 1):
        for index in range(size):
            forgeries = inclusion_forgeries(index, size, ref_path(index, size))
            wrong += [f"{index}/{size}: {w}" for w in _accepted(verify_inclusion, forgeries)]
    assert wrong == []


def test_every_corrupted_consistency_proof_is_refused() -> None:
    wrong: list[str] = []
    for second in range(1, N + 1):
        for first in range(1, second + 1):
            forgeries = consistency_forgeries(first, second, ref_proof(first, second))
            wrong += [f"{first}->{second}: {w}" for w in _accepted(verify_consistency, forgeries)]
    assert wrong == []


def test_a_proof_binds_the_size_only_through_the_trees_shape() -> None:
    # RFC 9162's algorithm, as written: the path of leaf 0 in 3 leaves is also a path
    # to the same root in a tree of 4, so a root is to be trusted with its size (a
    # signed checkpoint holds both), never alone.
    proof = ref_path(0, 3)
    verify_inclusion(0, 4, LEAVES[0], proof, ref_mth(0, 3))
    verify_consistency(2, 4, ref_mth(0, 2), ref_mth(0, 3), ref_proof(2, 3))


# --- Random sizes ----------------------------------------------------------------------

BIG = 1500
BIG_DATA = [b"big entry %d" % i for i in range(BIG)]


@functools.cache
def big_mth(begin: int, end: int) -> bytes:
    if end - begin == 1:
        return hashlib.sha256(b"\x00" + BIG_DATA[begin]).digest()
    k = ref_split(end - begin)
    return hashlib.sha256(b"\x01" + big_mth(begin, begin + k) + big_mth(begin + k, end)).digest()


@functools.cache
def big_tree() -> MerkleTree:
    return MerkleTree(hashlib.sha256(b"\x00" + d).digest() for d in BIG_DATA)


@st.composite
def size_and_index(draw: st.DrawFn, top: int = BIG) -> tuple[int, int]:
    size = draw(st.integers(1, top))
    return size, draw(st.integers(0, size - 1))


@st.composite
def bit_flip(draw: st.DrawFn, length: int) -> tuple[int, int, int]:
    """Which element, byte and bit to flip, for a proof of ``length`` hashes."""
    return (
        draw(st.integers(0, length - 1)),
        draw(st.integers(0, HASH_SIZE - 1)),
        draw(st.sampled_from([1 << b for b in range(8)])),
    )


@settings(max_examples=300, deadline=None)
@given(size_and_index(), st.data())
def test_inclusion_at_random_sizes(at: tuple[int, int], data: st.DataObject) -> None:
    size, index = at
    leaf, root = big_tree().node(0, index), big_mth(0, size)
    proof = big_tree().inclusion_proof(index, size)
    assert proof == [big_mth(*r) for r in ref_path_ranges(index, 0, size)]
    verify_inclusion(index, size, leaf, proof, root)
    if proof:
        forged = _flip(proof, *data.draw(bit_flip(len(proof))))
        with pytest.raises(ProofError, match="root mismatch"):
            verify_inclusion(index, size, leaf, forged, root)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    with pytest.raises(ProofError):
        verify_inclusion(other, size, leaf, proof, root)


@settings(max_examples=300, deadline=None)
@given(size_and_index(), st.data())
def test_consistency_at_random_sizes(at: tuple[int, int], data: st.DataObject) -> None:
    second, first = at[0], at[1] + 1
    r1, r2 = big_mth(0, first), big_mth(0, second)
    proof = big_tree().consistency_proof(first, second)
    assert proof == [big_mth(*r) for r in ref_subproof_ranges(first, 0, second, True)]
    verify_consistency(first, second, r1, r2, proof)
    if proof:
        forged = _flip(proof, *data.draw(bit_flip(len(proof))))
        with pytest.raises(ProofError, match="root mismatch"):
            verify_consistency(first, second, r1, r2, forged)


@settings(max_examples=300, deadline=None)
@given(size_and_index(top=2**64), st.integers(1, 2**64))
def test_node_ids_and_proof_lengths_of_huge_trees(at: tuple[int, int], second: int) -> None:
    size, index = at
    ranges = ref_path_ranges(index, 0, size)
    assert inclusion_node_ids(index, size) == ref_nodes(ranges)
    filler = [SOME_HASH] * len(ranges)
    root_from_inclusion(index, size, SOME_HASH, filler)  # the right count: no error
    needs = f"a tree of size {size} needs {len(ranges)} for index {index}"
    for wrong in ([*filler, SOME_HASH], filler[1:]) if filler else ([SOME_HASH],):
        with pytest.raises(ProofError, match=f"proof has {len(wrong)} hashes, {needs}$"):
            root_from_inclusion(index, size, SOME_HASH, wrong)

    first, second = min(size, second), max(size, second)
    ranges = ref_subproof_ranges(first, 0, second, True)
    assert consistency_node_ids(first, second) == ref_nodes(ranges)
    if first == second:
        return
    filler = [SOME_HASH] * len(ranges)
    with pytest.raises(ProofError, match="^root mismatch"):
        verify_consistency(first, second, SOME_HASH, EMPTY_ROOT, filler)
    needs = f"sizes {first} and {second} need {len(ranges)}$"
    for wrong in ([*filler, SOME_HASH], filler[1:]):
        with pytest.raises(ProofError, match=f"proof has {len(wrong)} hashes, {needs}"):
            verify_consistency(first, second, SOME_HASH, EMPTY_ROOT, wrong)


# --- Edge cases and bad input, each with its message -------------------------------------


def test_the_empty_tree() -> None:
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert MerkleTree().root() == CompactRange.empty().root() == hash_of_range([]) == EMPTY_ROOT
    assert range_node_ids(5, 5) == []
    with pytest.raises(ProofError, match="^a tree of size 0 has no leaves, so no inclusion"):
        inclusion_node_ids(0, 0)
    with pytest.raises(ProofError, match="a tree of size 0 has no leaves"):
        verify_inclusion(0, 0, LEAVES[0], [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="a tree of size 0 has no leaves"):
        MerkleTree().inclusion_proof(0, 0)


def test_consistency_from_the_empty_tree_is_refused() -> None:
    message = r"^consistency from a tree of size 0 is not defined \(RFC 9162 §2\.1\.4\.2"
    with pytest.raises(ProofError, match=message):
        consistency_node_ids(0, 5)
    with pytest.raises(ProofError, match=message):
        consistency_proof(0, 0, {})
    with pytest.raises(ProofError, match=message):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="tree of size -1 is not defined"):
        verify_consistency(-1, 3, EMPTY_ROOT, EMPTY_ROOT, [])


def test_equal_sizes_have_an_empty_proof(tree: MerkleTree) -> None:
    root = tree.root(5)
    assert consistency_node_ids(5, 5) == [] and tree.consistency_proof(5, 5) == []
    verify_consistency(5, 5, root, root, [])
    with pytest.raises(ProofError, match=r"^proof has 1 hashes, equal sizes \(5\) need an empty"):
        verify_consistency(5, 5, root, root, [root])
    with pytest.raises(ProofError, match="^root mismatch: two different roots for tree size 5$"):
        verify_consistency(5, 5, root, tree.root(6), [])


def test_indices_and_sizes_out_of_range_are_refused(tree: MerkleTree) -> None:
    with pytest.raises(ProofError, match="^index 7 is not below tree size 7$"):
        inclusion_node_ids(7, 7)
    with pytest.raises(ProofError, match="^index -1 is not below tree size 7$"):
        inclusion_proof(-1, 7, {})
    with pytest.raises(ProofError, match="^a tree of size -3 has no leaves"):
        root_from_inclusion(0, -3, LEAVES[0], [])
    with pytest.raises(ProofError, match="^first size 9 is beyond second size 8$"):
        consistency_proof(9, 8, {})
    with pytest.raises(ProofError, match=f"^tree size {tree.size + 1} is beyond this tree's"):
        tree.inclusion_proof(0, tree.size + 1)
    with pytest.raises(ProofError, match=f"^tree size {tree.size + 1} is beyond this tree's"):
        tree.consistency_proof(1, tree.size + 1)
    with pytest.raises(ValueError, match=r"size 143 is not a size of this tree \(0\.\.142\)"):
        tree.root(143)
    with pytest.raises(ValueError, match="size -1 is not a size of this tree"):
        tree.root(-1)
    with pytest.raises(TypeError, match="index must be an integer, not float"):
        inclusion_node_ids(2.0, 8)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="second size must be an integer, not str"):
        consistency_node_ids(1, "8")  # type: ignore[arg-type]


def test_proof_errors_say_what_is_wrong(tree: MerkleTree) -> None:
    proof = tree.inclusion_proof(2, 8)
    with pytest.raises(
        ProofError, match="^proof has 4 hashes, a tree of size 8 needs 3 for index 2$"
    ):
        verify_inclusion(2, 8, LEAVES[2], [*proof, SOME_HASH], tree.root(8))
    with pytest.raises(
        ProofError, match="^proof has 2 hashes, a tree of size 8 needs 3 for index 2$"
    ):
        verify_inclusion(2, 8, LEAVES[2], proof[:2], tree.root(8))
    with pytest.raises(
        ProofError,
        match=f"^root mismatch: the proof of index 2 in a tree of size 8 leads to "
        f"{tree.root(8).hex()}, not {tree.root(7).hex()}$",
    ):
        verify_inclusion(2, 8, LEAVES[2], proof, tree.root(7))
    with pytest.raises(ProofError, match="^proof element 1 is 33 bytes, not 32$"):
        verify_inclusion(2, 8, LEAVES[2], _put(proof, 1, proof[1] + b"!"), tree.root(8))
    with pytest.raises(TypeError, match="^proof element 0 must be bytes, not str$"):
        verify_inclusion(2, 8, LEAVES[2], [proof[0].hex(), *proof[1:]], tree.root(8))  # type: ignore[list-item]

    proof = tree.consistency_proof(6, 8)
    r6, r8 = tree.root(6), tree.root(8)
    with pytest.raises(ProofError, match="^proof has 0 hashes, sizes 6 and 8 need 3$"):
        verify_consistency(6, 8, r6, r8, [])
    with pytest.raises(ProofError, match="^proof has 4 hashes, sizes 6 and 8 need 3$"):
        verify_consistency(6, 8, r6, r8, [*proof, r8])
    with pytest.raises(
        ProofError, match="^root mismatch: the proof leads to another root for size 6$"
    ):
        verify_consistency(6, 8, r8, r8, proof)
    with pytest.raises(
        ProofError, match="^root mismatch: the proof leads to another root for size 8$"
    ):
        verify_consistency(6, 8, r6, r6, proof)
    with pytest.raises(ProofError, match="^the first root is 31 bytes, not 32$"):
        verify_consistency(6, 8, r6[1:], r8, proof)


def test_missing_or_malformed_nodes_are_named() -> None:
    ids = inclusion_node_ids(2, 8)
    nodes = dict.fromkeys(ids, SOME_HASH)
    del nodes[(2, 1)]
    with pytest.raises(KeyError, match=r"no hash given for node \(2, 1\) \(leaves 4\.\.7\)"):
        inclusion_proof(2, 8, nodes)
    nodes[(2, 1)] = SOME_HASH[:16]
    with pytest.raises(ValueError, match=r"the hash of node \(2, 1\) is 16 bytes, not 32"):
        inclusion_proof(2, 8, nodes)


def test_ranges_the_recursion_does_not_make_are_refused() -> None:
    with pytest.raises(
        ValueError,
        match=r"^\[1, 3\) is not a range of RFC 6962's recursion: its "
        "first subtree of 2 leaves would start at 1, not at a multiple of 2$",
    ):
        range_node_ids(1, 3)
    with pytest.raises(ValueError, match=r"^\[4, 2\) is not a range of leaves$"):
        range_node_ids(4, 2)
    with pytest.raises(ValueError, match=r"^\[-2, 2\) is not a range of leaves$"):
        range_node_ids(-2, 2)
    with pytest.raises(ValueError, match="^subtree hash 1 is 31 bytes, not 32$"):
        hash_of_range([SOME_HASH, SOME_HASH[1:]])
    with pytest.raises(ValueError, match="^leaf hash 2 is 33 bytes, not 32$"):
        root_of([SOME_HASH, SOME_HASH, SOME_HASH + b"\x00"])


# --- Compact ranges and the in-memory tree -----------------------------------------------


def test_appends_complete_each_perfect_node_once_and_the_tree_stores_them(
    tree: MerkleTree,
) -> None:
    edge, incremental, made_all = CompactRange.empty(), MerkleTree(), []
    for size in range(N):
        made = edge.append(LEAVES[size])
        assert incremental.append(LEAVES[size]) == made
        # the leaf, then one parent per trailing 1 bit of the old size, lowest first
        trailing = (size ^ (size + 1)).bit_length() - 1
        assert [node for node, _ in made] == [(lv, size >> lv) for lv in range(trailing + 1)]
        assert all(tree.node(*node) == digest for node, digest in made)
        made_all += [node for node, _ in made]
        perfect = {(lv, i) for lv in range(8) for i in range((size + 1) >> lv)}
        assert sorted(made_all) == sorted(perfect)
        assert edge == incremental.compact_range() == MerkleTree(LEAVES[: size + 1]).compact_range()
    assert CompactRange.empty().extend(LEAVES[:N]) == [
        pair for size in range(N) for pair in MerkleTree(LEAVES[:size]).append(LEAVES[size])
    ]


def test_a_tree_built_at_once_is_the_tree_built_a_leaf_at_a_time(tree: MerkleTree) -> None:
    for size in (0, 1, 2, 3, 64, 65, 127, 2 * N + 2):
        whole = MerkleTree(LEAVES[:size])
        assert whole.size == size
        prefix = [level[: size >> lv] for lv, level in enumerate(_levels(tree)) if size >> lv]
        assert _levels(whole) == prefix
        grown = MerkleTree(LEAVES[:size])
        grown.extend(LEAVES[size : size + 5])
        assert _levels(grown) == _levels(MerkleTree(LEAVES[: size + 5]))


def test_tree_nodes_that_do_not_exist_raise_key_error(tree: MerkleTree) -> None:
    assert tree.node(0, tree.size - 1) == LEAVES[tree.size - 1]
    for level, index in ((0, tree.size), (1, tree.size // 2), (8, 0), (-1, 0), (0, -1)):
        with pytest.raises(KeyError, match=rf"the tree has no node \({level}, {index}\)"):
            tree.node(level, index)
    assert tree.nodes([(0, 1), (3, 2)]) == {(0, 1): tree.node(0, 1), (3, 2): tree.node(3, 2)}


def test_leaves_of_the_wrong_length_are_refused_and_nothing_changes() -> None:
    edge, whole = CompactRange.empty(), MerkleTree(LEAVES[:3])
    edge.extend(LEAVES[:3])
    before, root = edge.to_bytes(), whole.root()
    for bad in (LEAVES[3][:-1], LEAVES[3] + b"\x00", b""):
        with pytest.raises(ValueError, match=f"^the leaf hash is {len(bad)} bytes, not 32$"):
            edge.append(bad)
        with pytest.raises(ValueError, match=f"^the leaf hash is {len(bad)} bytes, not 32$"):
            whole.append(bad)
        with pytest.raises(ValueError, match=f"^leaf hash 1 is {len(bad)} bytes, not 32$"):
            edge.extend([LEAVES[3], bad])
        with pytest.raises(ValueError, match=f"^leaf hash 1 is {len(bad)} bytes, not 32$"):
            whole.extend([LEAVES[3], bad])
    assert (edge.size, edge.to_bytes(), whole.size, whole.root()) == (3, before, 3, root)
    with pytest.raises(ValueError, match="^leaf hash 1 is 31 bytes, not 32$"):
        MerkleTree([LEAVES[0], LEAVES[1][1:]])


def test_compact_range_bytes_round_trip(tree: MerkleTree) -> None:
    for size in range(2 * N + 3):
        edge = tree.compact_range(size)
        data = edge.to_bytes()
        assert len(data) == size.bit_count() * HASH_SIZE
        again = CompactRange.from_bytes(size, data)
        assert again == edge and again.root() == tree.root(size)
        assert CompactRange.from_bytes(size, memoryview(data)) == edge
        if size < len(LEAVES):
            again.append(LEAVES[size])
            assert again == tree.compact_range(size + 1)


def test_bad_compact_range_data_is_refused(tree: MerkleTree) -> None:
    data = tree.compact_range(7).to_bytes()
    with pytest.raises(
        ValueError,
        match=r"^the edge of a tree of 7 leaves is 3 hashes \(96 bytes\), not 95 bytes$",
    ):
        CompactRange.from_bytes(7, data[:-1])
    for bad in (data + b"\x00", data + SOME_HASH, data[:64], b""):
        with pytest.raises(ValueError, match="the edge of a tree of 7 leaves is 3 hashes"):
            CompactRange.from_bytes(7, bad)
    with pytest.raises(ValueError, match="^the edge of a tree of 8 leaves is 1 hashes"):
        CompactRange.from_bytes(8, data)
    with pytest.raises(ValueError, match="^a tree size is not negative: -1$"):
        CompactRange.from_bytes(-1, b"")
    with pytest.raises(ValueError, match="^a range of 7 leaves has 3 subtrees, not 2$"):
        CompactRange(7, [SOME_HASH, SOME_HASH])
    with pytest.raises(ValueError, match="^subtree hash 0 is 31 bytes, not 32$"):
        CompactRange(1, [SOME_HASH[1:]])
    with pytest.raises(ValueError, match="^a tree size is not negative: -2$"):
        CompactRange(-2, [])


def test_large_trees_are_hashed_without_recursion() -> None:
    # 2**16 + 2**10 + 3 leaves under a recursion limit of 12 frames (a fresh interpreter
    # needs 8): RFC 6962's recursion would need 18.  Checked against the compact range
    # built a leaf at a time.
    count = 2**16 + 2**10 + 3
    script = (
        "import hashlib, sys\n"
        "from limit_graph.core.merkle import MerkleTree, root_of\n"
        f"leaves = [hashlib.sha256(i.to_bytes(4, 'big')).digest() for i in range({count})]\n"
        "sys.setrecursionlimit(12)\n"
        "tree = MerkleTree(leaves)\n"
        "print(root_of(leaves).hex(), tree.root().hex(), tree.root(2**16).hex())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(count)]
    edge = CompactRange.empty()
    edge.extend(leaves)
    whole, prefix = edge.root().hex(), hash_of_range(edge.hashes[:1]).hex()
    assert done.stdout.split() == [whole, whole, prefix]


def test_importing_the_module_loads_only_the_standard_library() -> None:
    # The verification kit uses this package without the platform.
    script = (
        "import json, sys; before = set(sys.modules)\n"
        "import limit_graph.core.merkle\n"
        "ours = sorted(m for m in set(sys.modules) - before if m.startswith('limit_graph'))\n"
        "other = sorted({m.split('.')[0] for m in set(sys.modules) - before}\n"
        "               - set(sys.stdlib_module_names) - {'limit_graph'})\n"
        "print(json.dumps([ours, other]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    ours, other = json.loads(done.stdout)
    assert other == []
    assert ours == [
        "limit_graph",
        "limit_graph.core",
        "limit_graph.core.merkle",
        "limit_graph.core.merkle.compact",
        "limit_graph.core.merkle.hashing",
        "limit_graph.core.merkle.proofs",
    ]
