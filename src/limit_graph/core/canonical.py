"""Canonical JSON and SHA-256 digests: the one way the platform hashes a document.

Keys are sorted, separators are minimal and text is UTF-8, so equal documents hash
equally whichever process or backend wrote them.  Only I-JSON (RFC 7493) has such a
form (RFC 8785 builds on it): a document holding NaN, an infinity or a lone surrogate
is refused with :class:`InvalidInput` naming where, never hashed.

:func:`ijson_errors` checks the whole of I-JSON for values entering the platform
(request bodies, agents' results): also Unicode noncharacters, and integers beyond
±(2**53 - 1), which a reader that keeps numbers as doubles (JavaScript, many JSON
libraries) cannot hold exactly.  Hashing itself stays lenient about those two, so
ledgers written before the rule still verify.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from limit_graph.core.errors import InvalidInput

__all__ = [
    "MAX_DEPTH",
    "MAX_ERRORS",
    "MAX_SAFE_INTEGER",
    "canonical_json",
    "ijson_errors",
    "sha256_hex",
    "escape_surrogates",
]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer every IEEE 754 double reader holds exactly (RFC 7493 §2.2)."""

MAX_ERRORS = 20
"""How many problems one check reports."""

MAX_DEPTH = 128
"""How deep I-JSON entering the platform may nest (RFC 8259 §9 lets a reader limit
it): pydantic serialises at most ~250 levels, and a value is nested further into the
documents that hold it (an execution, a page of them, an archive bundle)."""

_NONCHARACTERS = re.compile(
    "[\ufdd0-\ufdef"
    + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17))
    + "]"
)


def _string_problem(text: str, strict: bool) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"lone surrogate U+{ord(text[exc.start]):04X} is not a Unicode character"
    if strict and (found := _NONCHARACTERS.search(text)):
        return f"U+{ord(found.group()):04X} is a Unicode noncharacter"
    return None


def _value_problem(value: Any, strict: bool) -> tuple[str, str] | None:
    """What is wrong with one scalar, as (message, error type), or ``None``."""
    if isinstance(value, str):
        problem = _string_problem(value, strict)
        return (problem, "string_not_unicode") if problem else None
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return ("NaN is not a JSON number", "number_not_finite")
        return (
            "number beyond the range of a double (Infinity, 1e400)",
            "number_not_finite",
        )
    if strict and type(value) is int and abs(value) > MAX_SAFE_INTEGER:
        return (
            "integer beyond ±(2**53 - 1), which a double cannot hold exactly",
            "number_not_safe_integer",
        )
    return None


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as its ``\\udXXX`` escape, so that it
    can be UTF-8 (an error quoting a key, an exception's message).

    >>> escape_surrogates("a\\ud800b")
    'a\\\\ud800b'
    """
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _clean(document: Any, strict: bool) -> bool:
    """Whether ``document`` is I-JSON: the quick pass, which builds no paths (nesting
    past :data:`MAX_DEPTH` counts as unclean either way, so cycles end too)."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if kind is dict:
            if depth >= MAX_DEPTH or not all(
                type(key) is str and (key.isascii() or not _string_problem(key, strict))
                for key in value
            ):
                return False
            items: Any = value.values()
        elif kind is list or kind is tuple:
            if depth >= MAX_DEPTH:
                return False
            items = value
        else:
            return _value_problem(value, strict) is None
        for item in items:
            kind = type(item)
            if kind is str:
                if not item.isascii() and _string_problem(item, strict):
                    return False
            elif kind is int:
                if strict and not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    return False
            elif kind is float:
                if not math.isfinite(item):
                    return False
            elif kind is dict or kind is list or kind is tuple:
                stack.append((item, depth + 1))
            elif item is not None and kind is not bool:
                if isinstance(item, dict | list | tuple):  # subclasses
                    stack.append((item, depth + 1))
                elif _value_problem(item, strict) is not None:
                    return False
    return True


def ijson_errors(
    document: Any, loc: Sequence[str | int] = (), *, strict: bool = True
) -> list[dict[str, Any]]:
    """Where ``document`` is not I-JSON, as errors with ``loc``, ``msg`` and ``type``
    (the shape of the API's validation errors); at most :data:`MAX_ERRORS`.

    Strictly, containers may also nest at most :data:`MAX_DEPTH` deep.  Without
    ``strict`` only what canonical JSON cannot hold at all is reported (lone
    surrogates, NaN and infinities).

    >>> ijson_errors({"x": [1, float("nan")], "y": "ok"}, ["body"])
    [{'loc': ['body', 'x', 1], 'msg': 'NaN is not a JSON number', 'type': 'number_not_finite'}]
    """
    if _clean(document, strict):
        return []
    errors: list[dict[str, Any]] = []
    seen: set[int] = set()  # containers already walked (shared or circular references)
    deepest = len(loc) + MAX_DEPTH if strict else None
    stack: list[tuple[Any, list[str | int]]] = [(document, list(loc))]
    while stack and len(errors) < MAX_ERRORS:
        value, where = stack.pop()
        if isinstance(value, dict | list | tuple):
            if id(value) in seen:
                continue
            seen.add(id(value))
            if deepest is not None and len(where) >= deepest:
                msg = f"nested deeper than {MAX_DEPTH} levels"
                errors.append({"loc": where, "msg": msg, "type": "too_deep"})
                continue
        if isinstance(value, dict):
            children: list[tuple[Any, list[str | int]]] = []
            for key, item in value.items():
                at = [*where, escape_surrogates(key) if isinstance(key, str) else key]
                if isinstance(key, str) and (problem := _string_problem(key, strict)):
                    errors.append(
                        {"loc": at, "msg": f"key: {problem}", "type": "string_not_unicode"}
                    )
                children.append((item, at))
            stack.extend(reversed(children))
        elif isinstance(value, list | tuple):
            stack.extend((value[i], [*where, i]) for i in reversed(range(len(value))))
        elif (found := _value_problem(value, strict)) is not None:
            errors.append({"loc": where, "msg": found[0], "type": found[1]})
    return errors[:MAX_ERRORS]


def _not_canonical(document: Any, cause: Exception) -> Exception:
    errors = ijson_errors(document, strict=False)
    if not errors:
        return cause
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    return InvalidInput(
        f"the document has no canonical JSON form: {first['msg']} at {where}", errors
    )


def _dumps(document: Any) -> str:
    try:
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:  # NaN or an infinity
        raise _not_canonical(document, exc) from None


def canonical_json(document: Any) -> str:
    """Serialise ``document`` (JSON-compatible values only) canonically.

    >>> canonical_json({"b": 1, "a": [True, None]})
    '{"a":[true,null],"b":1}'
    >>> try:
    ...     canonical_json({"x": [float("nan")]})
    ... except InvalidInput as exc:
    ...     print(exc.detail)
    the document has no canonical JSON form: NaN is not a JSON number at x.0
    """
    text = _dumps(document)
    if not text.isascii():
        _utf8(text, document)
    return text


def _utf8(text: str, document: Any) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise _not_canonical(document, exc) from None


def sha256_hex(document: Any) -> str:
    """SHA-256 of the canonical JSON of ``document``, as lower-case hex."""
    return hashlib.sha256(_utf8(_dumps(document), document)).hexdigest()
