"""Canonical JSON is RFC 8785's (JCS): the RFC's own samples, agreement with an
independent implementation (the ``rfc8785`` package) on generated I-JSON, and the
refusals and leniencies hashing had before."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from limit_graph.core.canonical import MAX_SAFE_INTEGER, canonical_json, sha256_hex
from limit_graph.core.errors import InvalidInput

# RFC 8785 Appendix B, "Number Serialization Samples": IEEE 754 bits (hex) and the JSON
# number each must be written as; NaN and Infinity (note 3) have no JSON form.
APPENDIX_B = [
    ("0000000000000000", "0"),  # zero
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),  # min pos number
    ("8000000000000001", "-5e-324"),  # min neg number
    ("7fefffffffffffff", "1.7976931348623157e+308"),  # max pos number
    ("ffefffffffffffff", "-1.7976931348623157e+308"),  # max neg number
    ("4340000000000000", "9007199254740992"),  # max pos int (note 1)
    ("c340000000000000", "-9007199254740992"),  # max neg int (note 1)
    ("4430000000000000", "295147905179352830000"),  # ~2**68 (note 2)
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),  # round to even (note 4)
]
APPENDIX_B_OUT_OF_RANGE = ["7fffffffffffffff", "7ff0000000000000"]  # NaN, Infinity

# RFC 8785 §3.2.2: the parsed object; §3.2.3 sorts it; §3.2.4 gives its UTF-8 bytes.
SECTION_3_2_2_INPUT = r"""{
    "numbers": [333333333.33333329, 1E30, 4.50,
                2e-3, 0.000000000000000000000000001],
    "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
    "literals": [null, true, false]
}"""
SECTION_3_2_4_BYTES = """
    7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
    75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
    5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
    65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
    5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
    30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d
"""

# RFC 8785 §3.2.3: property names sorted by UTF-16 code units, and the order expected.
SORTING_INPUT = r"""{
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\ud83d\ude00": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis"
}"""
SORTED_VALUES = [
    "Carriage Return",
    "One",
    "Control",
    "Latin Small Letter O With Diaeresis",
    "Euro Sign",
    "Emoji: Grinning Face",
    "Hebrew Letter Dalet With Dagesh",
]


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B, ids=[b for b, _ in APPENDIX_B])
def test_numbers_are_written_as_appendix_b_writes_them(bits: str, expected: str) -> None:
    value = _double(bits)
    assert canonical_json(value) == expected
    assert canonical_json([value, {"v": value}]) == f'[{expected},{{"v":{expected}}}]'


@pytest.mark.parametrize("bits", APPENDIX_B_OUT_OF_RANGE, ids=["NaN", "Infinity"])
def test_appendix_b_values_out_of_range_are_refused(bits: str) -> None:
    with pytest.raises(InvalidInput, match="no canonical JSON form: .* at v"):
        canonical_json({"v": _double(bits)})


def test_the_section_3_2_2_object_canonicalises_to_the_bytes_of_section_3_2_4() -> None:
    document = json.loads(SECTION_3_2_2_INPUT)
    expected = bytes.fromhex(SECTION_3_2_4_BYTES)
    assert canonical_json(document).encode("utf-8") == expected
    assert sha256_hex(document) == hashlib.sha256(expected).hexdigest()


def test_names_are_sorted_by_utf16_code_units_as_in_section_3_2_3() -> None:
    document = json.loads(SORTING_INPUT)
    assert list(json.loads(canonical_json(document)).values()) == SORTED_VALUES
    # Code points would put U+FB33 before U+1F600; UTF-16 puts its surrogates first.
    assert list(json.loads(json.dumps(document, sort_keys=True)).values()) != SORTED_VALUES
    nested = {"z": [document, {"inner": document}], "a": 1.0}
    written = json.loads(canonical_json(nested))
    assert list(written) == ["a", "z"]
    assert list(written["z"][0].values()) == SORTED_VALUES
    assert list(written["z"][1]["inner"].values()) == SORTED_VALUES
    assert canonical_json(nested).startswith('{"a":1,')


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-0.0, "0"),
        (0.0, "0"),
        (1.0, "1"),
        (-3.0, "-3"),
        (100.0, "100"),
        (1e15, "1000000000000000"),
        (2.0**53, "9007199254740992"),
        (2.0**53 + 2, "9007199254740994"),
        (2.0**60, "1152921504606847000"),
        (1e16, "10000000000000000"),
        (-1.5e17, "-150000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (0.0001, "0.0001"),
        (1e-05, "0.00001"),
        (-2.5e-06, "-0.0000025"),
        (1e-06, "0.000001"),
        (1e-07, "1e-7"),
        (-1.25e-09, "-1.25e-9"),
        (1e-10, "1e-10"),
        (5e-324, "5e-324"),
        (0.1, "0.1"),
        (123.456, "123.456"),
    ],
)
def test_integral_large_and_tiny_floats(value: float, expected: str) -> None:
    assert canonical_json(value) == expected
    assert canonical_json({"x": [value]}) == f'{{"x":[{expected}]}}'
    assert rfc8785.dumps(value).decode() == expected


def test_text_that_looks_like_a_float_is_left_as_it_is() -> None:
    document = {
        "version": "1.0",
        "list": "x:1.0,y:2e+16]",
        "exp": "1e-05}",
        "escaped": 'say "1.0," and \\',
        "tail": ["a\\", 2.0, '\\"3.0,', 4.0],
        "1.0": -0.0,
    }
    expected = (
        '{"1.0":0,"escaped":"say \\"1.0,\\" and \\\\","exp":"1e-05}","list":"x:1.0,y:2e+16]",'
        '"tail":["a\\\\",2,"\\\\\\"3.0,",4],"version":"1.0"}'
    )
    assert canonical_json(document) == expected
    assert json.loads(expected) == document


def test_integers_keep_their_exact_digits_even_beyond_two_to_the_53() -> None:
    assert canonical_json([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == (
        "[9007199254740991,-9007199254740991]"
    )
    # Lenient, as hashing always was: RFC 8785 would write 2**60 as a double's digits.
    assert canonical_json({"n": 2**60, "m": 2**53 + 1}) == (
        '{"m":9007199254740993,"n":1152921504606846976}'
    )


def test_sha256_hex_is_the_sha256_of_exactly_the_canonical_utf8() -> None:
    document: dict[str, Any] = {"é": [1.0, 1e-05, "€"], "\U0001f600": {"\ufb33": 2.0**60}}
    text = canonical_json(document)
    assert text == '{"é":[1,0.00001,"€"],"\U0001f600":{"\ufb33":1152921504606847000}}'
    assert sha256_hex(document) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert sha256_hex(document) == hashlib.sha256(rfc8785.dumps(document)).hexdigest()


_INFINITE = "number beyond the range of a double (Infinity, 1e400)"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"x": [1, float("nan")]}, "NaN is not a JSON number at x.1"),
        ({"x": {"y": float("inf")}}, f"{_INFINITE} at x.y"),
        ([float("-inf")], f"{_INFINITE} at 0"),
        (float("nan"), "NaN is not a JSON number at the top level"),
    ],
)
def test_nan_and_infinities_are_refused_naming_where(document: Any, problem: str) -> None:
    for serialise in (canonical_json, sha256_hex):
        with pytest.raises(InvalidInput) as caught:
            serialise(document)
        assert caught.value.detail == f"the document has no canonical JSON form: {problem}"
        assert caught.value.errors[0]["type"] == "number_not_finite"


_LONE = "lone surrogate U+{} is not a Unicode character"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"x": "a\ud800"}, f"{_LONE.format('D800')} at x"),
        ({"a\udfff": 1}, f"key: {_LONE.format('DFFF')} at a\\udfff"),
        # Characters that send names to UTF-16 ordering do not excuse a lone surrogate.
        ({"\U0001f600": 1, "\ufb33": ["\udc00"]}, f"{_LONE.format('DC00')} at \ufb33.0"),
    ],
    ids=["value", "key", "with-utf16-ordering"],
)
def test_lone_surrogates_are_refused_naming_where(document: Any, problem: str) -> None:
    for serialise in (canonical_json, sha256_hex):
        with pytest.raises(InvalidInput) as caught:
            serialise(document)
        assert caught.value.detail == f"the document has no canonical JSON form: {problem}"
        assert caught.value.errors[0]["type"] == "string_not_unicode"


# --- agreement with the rfc8785 package on generated I-JSON --------------------------

_CHARACTERS = st.one_of(
    st.sampled_from('aZ09_.-+e,:[]{}"\\\n\x00\x7f'),
    st.characters(min_codepoint=0x80, max_codepoint=0xD7FF),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
)
_TEXT = st.text(_CHARACTERS, max_size=12)
_FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**70), 2**70).map(float),
    st.sampled_from([-0.0, 1e-7, 1e-5, 1e16, 1e20, 1e21, 2.0**60, 5e-324]),
)
_I_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | _FLOATS | _TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_TEXT, children, max_size=6),
    max_leaves=40,
)
# Names drawn from few characters either side of the UTF-16 and code-point orders' split.
_SPLIT_NAMES = st.text(st.sampled_from("a\ue000\uffff\U00010000\U0010ffff"), max_size=3)


@settings(max_examples=400)
@given(_I_JSON)
def test_agrees_with_the_rfc8785_package(document: Any) -> None:
    text = canonical_json(document)
    assert text.encode("utf-8") == rfc8785.dumps(document)
    assert sha256_hex(document) == hashlib.sha256(rfc8785.dumps(document)).hexdigest()


@given(st.dictionaries(_SPLIT_NAMES, _FLOATS, min_size=2, max_size=8))
def test_agrees_with_the_rfc8785_package_where_the_orders_differ(document: Any) -> None:
    assert canonical_json(document).encode("utf-8") == rfc8785.dumps(document)


@given(_I_JSON)
def test_what_it_writes_reads_back_equal_and_canonicalises_to_itself(document: Any) -> None:
    text = canonical_json(document)
    # Read as ECMAScript reads it (numbers as doubles), it is the document again; read by
    # json.loads (integers exact), it is written the same, so it hashes the same.
    assert json.loads(text, parse_int=float) == document
    assert canonical_json(json.loads(text)) == text
