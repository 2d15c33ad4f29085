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

from limit_graph.core.merkle.compact import CompactRange, MerkleTree
from limit_graph.core.merkle.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    NodeId,
    ProofError,
    hash_of_range,
    leaf_hash,
    node_hash,
    range_node_ids,
    root_of,
)
from limit_graph.core.merkle.proofs import (
    consistency_node_ids,
    consistency_proof,
    inclusion_node_ids,
    inclusion_proof,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

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
