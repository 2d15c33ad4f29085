"""Canonical JSON and SHA-256 digests: the one way the platform hashes a document.

The form is RFC 8785's, the JSON Canonicalization Scheme (JCS): no whitespace, strings
escaped as ECMAScript's ``JSON.stringify`` escapes them, numbers written as its
``Number.prototype.toString`` writes them, object members sorted by the UTF-16 code
units of their names, and the text UTF-8 -- so equal documents hash equally whichever
process, backend or language wrote them.  Only I-JSON (RFC 7493) has such a form: a
document holding NaN, an infinity or a lone surrogate is refused with
:class:`InvalidInput` naming where, never hashed.

Hashing is on every request's path (payload and result hashes, cache keys), so the text
is :func:`json.dumps`'s (C, sorted keys, minimal separators), mended only where it can
differ from RFC 8785's, which is looked for in the text itself:

- *strings* never differ: with ``ensure_ascii=False`` both escape ``"``, ``\\`` and
  U+0000-U+001F alone, and alike (``\\n``, lower-case ``\\u001f``);
- *numbers*: a float's ``repr`` has ECMAScript's digits (the fewest that round-trip,
  nearest the double and even on a tie, RFC 8785 §3.2.2.3), written otherwise in four
  shapes: integral below 1e16 (``3.0``, ``-0.0``: ``3``, ``0``), from 1e16 to 1e21
  (``1e+16``: ``10000000000000000``), from 1e-6 to 1e-4 (``1e-05``: ``0.00001``), and
  with a one-digit negative exponent (``1e-07``: ``1e-7``).  Two regexes that start with
  a literal (``.0``, ``e``), so scan at C speed, find those tokens; one inside a string
  (an odd number of unescaped quotes before it) is left alone, the others rewritten.  A
  document with none costs the two scans (about a sixth of ``json.dumps``), one with a
  few a little more (``bench/canonical.py`` measures it);
- *member order*: code points (``sort_keys``) and UTF-16 code units order two names
  differently only where, at the first character they differ in, one has a character
  above U+FFFF and the other one in U+E000-U+FFFF.  ASCII text skips the check; text
  holding both kinds (a test of its UTF-8 lead bytes) is written again from a copy of
  the document whose objects list their members in UTF-16 order.

Integers are written with their exact digits.  Within ±(2**53 - 1) that is RFC 8785's
form too (a double holds them exactly and ECMAScript writes those digits); beyond, RFC
8785 would write the nearest double's shortest digits (2**60 as
``1152921504606847000``), and its integers are meant to stay within (RFC 8785
Appendix B, note 1).  :func:`ijson_errors` checks the whole of I-JSON for values
entering the platform (request bodies, agents' results): also Unicode noncharacters, and
integers beyond ±(2**53 - 1), which a reader that keeps numbers as doubles (JavaScript,
many JSON libraries) cannot hold exactly.  Hashing itself stays lenient about those two,
writing such integers exactly as before, so ledgers written before the rule still verify.
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


# --- numbers: Python's repr of a float, as ECMAScript writes it ------------------------

_INTEGRAL = re.compile(r"\.0(?=[,\]}]|\Z)")
"""The fraction ending an integral float's ``repr`` (all below 1e16: above, ``repr``
has an exponent), which ECMAScript does not write; a value ends at ``,``, ``]``,
``}`` or the end."""
_EXPONENT = re.compile(r"e(?:-0[1-9]|\+1[6-9]|\+20)(?=[,\]}]|\Z)")
"""A ``repr`` exponent ECMAScript writes otherwise: e-05 and e-06 (it writes
``0.00001``), e+16 to e+20 (all the digits), e-07 to e-09 (``e-7``)."""


def _ecmascript_number(token: str) -> str:
    """``Number.prototype.toString`` of the double whose ``repr`` is ``token``.

    The digits are ``repr``'s (the shortest that round-trip, as ECMAScript's are); only
    where the point goes and whether there is an exponent is decided here (ECMA-262
    §7.1.12.1, ``point`` being its *n* and ``len(digits)`` its *k*).

    >>> [_ecmascript_number(t) for t in ("-0.0", "3.0", "1e-05", "1.5e-07", "2e+20", "1e+21")]
    ['0', '3', '0.00001', '1.5e-7', '200000000000000000000', '1e+21']
    """
    sign = "-" if token.startswith("-") else ""
    mantissa, _, exponent = token.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    significant = (whole + fraction).lstrip("0")
    point = len(whole) - len(whole + fraction) + len(significant) + int(exponent or 0)
    digits = significant.rstrip("0")
    if not digits:
        return "0"  # and -0 too
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    shown = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{shown}e{'+' if point > 0 else '-'}{abs(point - 1)}"


def _token_start(text: str, at: int) -> int:
    """Where the number whose exponent is at ``at`` starts: after the ``[``, ``,`` or
    ``:`` before it (a float's ``repr`` is at most 24 characters)."""
    lowest = max(at - 32, 0)
    return 1 + max(
        text.rfind(",", lowest, at), text.rfind(":", lowest, at), text.rfind("[", lowest, at)
    )


def _ecmascript_numbers(text: str) -> str:
    """``json.dumps``'s ``text`` with each float outside strings that ECMAScript writes
    otherwise rewritten; ``text`` itself when there is none (most documents)."""
    places = [found.start() for found in _INTEGRAL.finditer(text)]
    if exponents := [found.start() for found in _EXPONENT.finditer(text)]:
        places = sorted(places + exponents)
    if not places:
        return text
    # Blank the escaped backslashes, then the escaped quotes (the same lengths, so places
    # stay): every quote left opens or closes a string.
    quotes = text.replace("\\\\", "  ").replace('\\"', "  ") if "\\" in text else text
    pieces: list[str] = []
    done = counted = inside = 0
    for at in places:
        inside ^= quotes.count('"', counted, at) & 1
        counted = at
        if inside:
            continue
        if text[at] == ".":  # an integral float: drop the fraction; -0 is 0
            start, end, new = (
                (at - 2, at + 2, "0") if text[at - 2 : at] == "-0" else (at, at + 2, "")
            )
        elif text.startswith("-0", at + 1) and text[at + 3] in "789":
            start, end, new = at + 2, at + 3, ""  # e-07 is e-7
        else:
            start, end = _token_start(text, at), at + 4
            new = _ecmascript_number(text[start:end])
        pieces += (text[done:start], new)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


# --- member order: UTF-16 code units ---------------------------------------------------

_ASTRAL_LEADS = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")
"""The bytes a character above U+FFFF starts with in UTF-8 (U+E000-U+FFFF: EE, EF)."""


def _order_may_differ(utf8: bytes) -> bool:
    """Whether code-point order can differ from UTF-16 order for the names in a text
    (its UTF-8): only if it has characters both above U+FFFF and in U+E000-U+FFFF."""
    return (b"\xee" in utf8 or b"\xef" in utf8) and any(b in utf8 for b in _ASTRAL_LEADS)


def _utf16_member(item: tuple[Any, Any]) -> Any:
    name = item[0]
    return name.encode("utf-16-be") if isinstance(name, str) else name


def _in_utf16_order(value: Any) -> Any:
    """A copy of ``value`` whose objects list their members in UTF-16 code-unit order
    (RFC 8785 §3.2.3), for ``json.dumps`` to keep."""
    if isinstance(value, dict):
        members = sorted(value.items(), key=_utf16_member)
        return {name: _in_utf16_order(item) for name, item in members}
    if isinstance(value, list | tuple):
        return [_in_utf16_order(item) for item in value]
    return value


def _canonical_text(document: Any) -> str:
    text = _dumps(document)
    if not text.isascii() and _order_may_differ(_utf8(text, document)):
        text = json.dumps(_in_utf16_order(document), separators=(",", ":"), ensure_ascii=False)
    return _ecmascript_numbers(text)


def canonical_json(document: Any) -> str:
    """Serialise ``document`` (JSON-compatible values only) canonically (RFC 8785).

    >>> canonical_json({"b": 1, "a": [True, None]})
    '{"a":[true,null],"b":1}'
    >>> canonical_json({"ratio": 1.0, "tiny": 1e-05, "big": 2.0**60, "n": 2**60})
    '{"big":1152921504606847000,"n":1152921504606846976,"ratio":1,"tiny":0.00001}'
    >>> try:
    ...     canonical_json({"x": [float("nan")]})
    ... except InvalidInput as exc:
    ...     print(exc.detail)
    the document has no canonical JSON form: NaN is not a JSON number at x.0
    """
    return _canonical_text(document)


def _utf8(text: str, document: Any) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise _not_canonical(document, exc) from None


def sha256_hex(document: Any) -> str:
    """SHA-256 of the canonical JSON of ``document`` (its UTF-8), as lower-case hex.

    >>> sha256_hex({"a": 1.0}) == sha256_hex({"a": 1})
    True
    """
    return hashlib.sha256(_canonical_text(document).encode("utf-8")).hexdigest()
