"""Consistent hashing with virtual nodes: the ring the router keeps sessions on.

A session id hashes to a point on the ring and belongs to the next instance clockwise;
adding or removing an instance moves only the keys it gains or loses.  Positions are
the first 8 bytes of SHA-256, so every process draws the same ring.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable

__all__ = ["HashRing"]


def _position(label: str) -> int:
    """A point on the ring: the first 8 bytes of SHA-256, the same in every process."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big")


class HashRing:
    """Consistent hashing with virtual nodes; a key belongs to the next point clockwise.

    Hand-written: it is about forty lines, and no well-kept library fits (the maintained
    one on PyPI, uhashring, follows ketama's MD5 layout and would be a dependency for
    this much code).

    >>> ring = HashRing(["a", "b", "c"])
    >>> ring.preference("some-key")[0] == ring.lookup("some-key")
    True
    """

    def __init__(self, nodes: Iterable[str] = (), *, vnodes: int = 640) -> None:
        if vnodes < 1:
            raise ValueError("vnodes must be at least 1")
        self.vnodes = vnodes
        self._nodes: dict[str, None] = {}
        self._points: list[tuple[int, str]] = []
        self._positions: list[int] = []
        self._preferences: list[tuple[str, ...] | None] = []
        for node in nodes:
            self.add(node)

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._nodes)

    def add(self, node: str) -> None:
        if node in self._nodes:
            raise ValueError(f"node {node!r} is already on the ring")
        self._nodes[node] = None
        self._points += [(_position(f"{node}#{i}"), node) for i in range(self.vnodes)]
        self._reindex()

    def remove(self, node: str) -> None:
        if node not in self._nodes:
            raise ValueError(f"node {node!r} is not on the ring")
        del self._nodes[node]
        self._points = [point for point in self._points if point[1] != node]
        self._reindex()

    def _reindex(self) -> None:
        self._points.sort()
        self._positions = [position for position, _ in self._points]
        self._preferences = [None] * len(self._points)

    def _index(self, key: str) -> int:
        if not self._points:
            raise LookupError("the hash ring is empty: add a node before looking up keys")
        return bisect_right(self._positions, _position(key)) % len(self._points)

    def lookup(self, key: str) -> str:
        """The node that owns ``key``."""
        return self._points[self._index(key)][1]

    def preference(self, key: str) -> list[str]:
        """Every node once, in ring order from ``key``: the owner, then the failover order."""
        index = self._index(key)
        cached = self._preferences[index]
        if cached is None:
            seen: dict[str, None] = {}
            for step in range(len(self._points)):
                seen[self._points[(index + step) % len(self._points)][1]] = None
                if len(seen) == len(self._nodes):
                    break
            cached = self._preferences[index] = tuple(seen)
        return list(cached)
