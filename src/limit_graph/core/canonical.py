"""Canonical JSON and SHA-256 digests: the one way the platform hashes a document.

Keys are sorted, separators are minimal and text is UTF-8, so equal documents hash
equally whichever process or backend wrote them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "sha256_hex"]


def canonical_json(document: Any) -> str:
    """Serialise ``document`` (JSON-compatible values only) canonically.

    >>> canonical_json({"b": 1, "a": [True, None]})
    '{"a":[true,null],"b":1}'
    """
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_hex(document: Any) -> str:
    """SHA-256 of the canonical JSON of ``document``, as lower-case hex."""
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
