"""References and ``when`` expressions: parsing, resolving and evaluating them, and the
errors a run gets when its data does not have what a reference names."""

from __future__ import annotations

import operator
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from limit_graph.core.errors import InvalidInput
from limit_graph.core.workflows import (
    ExpressionError,
    Reference,
    ReferenceSyntaxError,
    Scope,
    WorkflowInvalid,
    WorkflowRuntimeError,
    evaluate_when,
    parse_template,
    parse_when,
    references,
    resolve,
)

SCOPE = Scope(
    params={"shots": 1000, "name": "bell", "thetas": [0.0, 0.5], "flag": False, "none": None},
    outputs={
        "a": {"items": [10, 20, {"deep": "x"}], "ok": True, "n": 3, "tags": ["q", "c"]},
        "m": [{"pubs": [{"counts": {"00": 7, "11": 9}}]}, {"pubs": []}],
        "s": "plain",
    },
    names={"theta": 0.5, "row": {"id": 4, "label": "four"}},
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


# parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${params.shots}", Reference("params", "shots")),
        ("${ params.shots }", Reference("params", "shots")),
        ("${steps.a.outputs}", Reference("steps", "a")),
        ("${steps.my-step.outputs.items[1]}", Reference("steps", "my-step", ("items", 1))),
        (
            "${steps.m.outputs[0].pubs[0].counts}",
            Reference("steps", "m", (0, "pubs", 0, "counts")),
        ),
        ('${steps.m.outputs[0].counts["00"]}', Reference("steps", "m", (0, "counts", "00"))),
        ("${steps.m.outputs.counts['a}b']}", Reference("steps", "m", ("counts", "a}b"))),
        ("${steps.m.outputs.counts.00}", Reference("steps", "m", ("counts", "00"))),
        ("${theta}", Reference("item", "theta")),
        ("${row.label}", Reference("item", "row", ("label",))),
        ("${params.thetas[1]}", Reference("params", "thetas", (1,))),
    ],
)
def test_a_reference_parses_to_its_root_and_path(text: str, expected: Reference) -> None:
    assert parse_template(text) == (expected,)


def test_a_reference_prints_as_it_would_be_written() -> None:
    (ref,) = parse_template('${ steps.m.outputs[0].counts["0 0"].x-y }')
    assert str(ref) == '${steps.m.outputs[0].counts["0 0"].x-y}'
    assert ref.step == "m" and Reference("params", "n").step is None


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("${params.n", "'${' is not closed by '}'", 0),
        ("ab ${}", "empty reference", 3),
        ("${steps.a}", "a step reference goes on with .outputs", 2),
        ("${steps.a.output}", "a step reference goes on with .outputs", 2),
        ("${steps}", "name the step", 2),
        ("${params}", "name the param", 2),
        ("${params[0]}", "name the param", 2),
        ("${params.a-b}", "'a-b' is not a param name", 2),
        ("${1x}", "'1x' is not a name", 2),
        ("${x.}", "expected a field name after '.'", 4),
        ("${x[a]}", "expected an index", 3),
        ("${x[-1]}", "expected an index", 3),
        ("${x y}", "unexpected ' '", 3),
        ("${$x}", "unexpected '$'", 2),
    ],
)
def test_bad_reference_syntax_says_what_and_where(text: str, message: str, offset: int) -> None:
    with pytest.raises(ReferenceSyntaxError) as caught:
        parse_template(text)
    assert message in caught.value.message
    assert caught.value.offset == offset


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("$${x}", ("${x}",)),
        ("$$${params.n}", ("$", Reference("params", "n"))),
        ("$$$${x}", ("$${x}",)),
        ("cost $5 or $$5 {x}", ("cost $5 or $$5 {x}",)),
        (
            "a ${params.n} b ${theta}",
            ("a ", Reference("params", "n"), " b ", Reference("item", "theta")),
        ),
    ],
)
def test_two_dollars_before_a_brace_write_one(text: str, parts: tuple[Any, ...]) -> None:
    assert parse_template(text) == parts


def test_references_finds_every_reference_at_any_depth_not_in_keys() -> None:
    value = {"${params.key}": [1, {"x": "${steps.a.outputs.n} and ${theta}"}], "y": "$${no}"}
    assert [str(r) for r in references(value)] == ["${steps.a.outputs.n}", "${theta}"]


def test_references_reports_every_syntax_error_with_its_pointer() -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        references({"a": ["${bad", {"b/c": "${steps.x}"}]})
    assert [e["field"] for e in caught.value.errors] == ["/a/0", "/a/1/b~1c"]


# resolving


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${params.shots}", 1000),
        ("${params.flag}", False),
        ("${params.none}", None),
        ("${params.thetas}", [0.0, 0.5]),
        ("${steps.a.outputs.items[1]}", 20),
        ("${steps.a.outputs.items[2].deep}", "x"),
        ("${steps.m.outputs[0].pubs[0].counts}", {"00": 7, "11": 9}),
        ('${steps.m.outputs[0].pubs[0].counts["11"]}', 9),
        ("${steps.s.outputs}", "plain"),
        ("${theta}", 0.5),
        ("${row.id}", 4),
        ("shots=${params.shots}", "shots=1000"),
        ("${params.name}-${row.label}", "bell-four"),
        (
            "t=${params.thetas} ok=${steps.a.outputs.ok} n=${params.none}",
            "t=[0.0,0.5] ok=true n=null",
        ),
        ("${steps.m.outputs[0].pubs[0]}!", '{"counts":{"00":7,"11":9}}!'),
        ("$${params.shots} costs $$${params.shots}", "${params.shots} costs $1000"),
        ("no references", "no references"),
        (12, 12),
        (None, None),
    ],
)
def test_resolve_takes_exact_references_whole_and_interpolates_the_rest(
    value: Any, expected: Any
) -> None:
    assert resolve(value, SCOPE) == expected


def test_resolve_substitutes_at_any_depth_keeping_keys() -> None:
    value = {
        "target": "aer",
        "pubs": [{"parameter_values": {"theta": "${theta}"}, "shots": "${params.shots}"}],
        "${params.name}": ("${row.id}",),
    }
    assert resolve(value, SCOPE) == {
        "target": "aer",
        "pubs": [{"parameter_values": {"theta": 0.5}, "shots": 1000}],
        "${params.name}": [4],
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "${steps.a.outputs.items[3]}",
            "index 3 is out of range: steps.a.outputs.items has 3 items",
        ),
        (
            "${steps.m.outputs[1].pubs[0]}",
            "index 0 is out of range: steps.m.outputs[1].pubs has 0 items",
        ),
        (
            "${steps.a.outputs.nope}",
            "steps.a.outputs has no field 'nope' (its fields: items, n, ok, tags)",
        ),
        (
            "${steps.a.outputs.n.x}",
            "steps.a.outputs.n is a number, not an object, so it has no field 'x'",
        ),
        (
            "${steps.a.outputs.n[0]}",
            "steps.a.outputs.n is a number, not an array, so [0] does not apply",
        ),
        ("${steps.s.outputs[0]}", "steps.s.outputs is a string, not an array"),
        ("${steps.zz.outputs}", "step 'zz' has no outputs (it has not succeeded)"),
        ("${params.zz}", "the run has no param 'zz'"),
        ("${other}", "no map item is named 'other'"),
        ("x ${params.none.y}", "params.none is null, not an object"),
        ("${bad", "is not closed"),
    ],
)
def test_a_reference_the_data_cannot_satisfy_raises_naming_it(value: str, message: str) -> None:
    with pytest.raises(WorkflowRuntimeError) as caught:
        resolve({"deep": [value]}, SCOPE)
    assert message in caught.value.detail
    assert isinstance(caught.value, InvalidInput) and caught.value.status_code == 422
    if not value.startswith("${bad"):
        assert caught.value.reference is not None
        assert caught.value.detail.startswith(caught.value.reference)


def _escape(text: str) -> str:
    """``text`` written so that it resolves to itself."""
    return re.sub(r"(\$+)\{", lambda m: m.group(1) * 2 + "{", text)


@given(st.text(alphabet="ab${}. [0]", max_size=30))
def test_escaped_text_resolves_to_itself(text: str) -> None:
    assert resolve(_escape(text), SCOPE) == text


@given(json_values)
def test_an_exact_reference_keeps_the_value_and_its_type(value: Any) -> None:
    scope = Scope(params={"v": value}, outputs={"s": {"out": [value]}})
    assert resolve("${params.v}", scope) == value
    assert resolve({"x": ["${steps.s.outputs.out[0]}"]}, scope) == {"x": [value]}


@given(json_values)
def test_text_without_references_is_unchanged(value: Any) -> None:
    if "${" in repr(value):
        return
    assert resolve(value, SCOPE) == value


# when


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("${params.shots} >= 100", True),
        ("${params.shots} < 100", False),
        ("${params.shots} == 1000.0", True),
        ("${params.shots} != 1000", False),
        ("${steps.a.outputs.ok}", True),
        ("${params.flag}", False),
        ("${params.none}", False),
        ("${steps.a.outputs.tags}", True),
        ("${steps.m.outputs[1].pubs}", False),
        ("not ${params.flag}", True),
        ("not not ${params.flag}", False),
        ("true or false and false", True),  # and binds tighter than or
        ("(true or false) and false", False),
        ("not true or true", True),  # not binds tighter than or
        ("not (true or true)", False),
        ("not 1 == 2", True),  # comparison binds tighter than not
        ("'q' in ${steps.a.outputs.tags}", True),
        ("'x' not in ${steps.a.outputs.tags}", True),
        ("'ell' in ${params.name}", True),
        ("'items' in ${steps.a.outputs}", True),
        ("20 in ${steps.a.outputs.items}", True),
        ("${params.name} in ['bell', \"ghz\"]", True),
        ("${params.name} == 'bell'", True),
        ("${params.name} < 'zeta'", True),
        ("${params.none} == null", True),
        ("${params.flag} == 0", False),  # booleans are not numbers
        ("${params.thetas} == [0, 0.5]", True),
        ("[] == []", True),
        ("-${params.shots} < -999", True),
        ("- 1.5e1 == -15", True),
        ("'it\\'s' == \"it's\"", True),
        ("'a\\nb' != 'a b'", True),
        ("${row.id} > 3 and ${row.label} == 'four'", True),
        ("false and ${steps.zz.outputs}", False),  # short-circuit: never looked up
        ("true or ${steps.zz.outputs}", True),
        ("0", False),
        ("''", False),
    ],
)
def test_when_expressions_evaluate(expression: str, expected: bool) -> None:
    assert evaluate_when(expression, SCOPE) is expected


@pytest.mark.parametrize(
    ("expression", "message", "column"),
    [
        ("", "expected a value, found the end of the expression", 1),
        ("${params.n} >", "expected a value, found the end of the expression", 14),
        ("${params.n} = 3", "'=' is not an operator: write '==' to compare", 13),
        ("a && b", "unknown name 'a'", 1),
        ("true && false", "'&&' is not an operator: write 'and'", 6),
        ("true || false", "'||' is not an operator: write 'or'", 6),
        ("!true", "'!' is not an operator: write 'not'", 1),
        ("(1 == 1", "expected ')' to close '(' opened at column 1, found the end", 8),
        ("[1, 2", "expected ']' to close '[' opened at column 1", 6),
        ("1 < 2 < 3", "comparisons do not chain", 7),
        ("1 2", "unexpected '2'", 3),
        ("'open", "string not closed", 1),
        ("'bad \\q'", "unknown escape '\\q'", 6),
        ("${steps.a} == 1", "a step reference goes on with .outputs", 3),
        ("${params.n", "is not closed", 1),
        ("1 @ 2", "unexpected '@'", 3),
        ("True", "unknown name 'True'", 1),
    ],
)
def test_a_when_that_does_not_parse_says_where(expression: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_when(expression)
    assert message in caught.value.message
    assert caught.value.column == column
    with pytest.raises(WorkflowRuntimeError, match="does not parse"):
        evaluate_when(expression, SCOPE)


def test_a_parsed_when_lists_its_references() -> None:
    parsed = parse_when("${params.shots} > 1 and '${not.a.ref}' != ${steps.a.outputs.n}")
    assert [str(r) for r in parsed.references] == ["${params.shots}", "${steps.a.outputs.n}"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("${params.name} < 1", "cannot compare string 'bell' with number 1 using '<'"),
        ("${params.none} >= 0", "cannot compare null with number 0 using '>='"),
        ("${params.flag} > 0", "cannot compare boolean false with number 0"),
        ("${params.thetas} < [1]", "cannot compare an array with an array"),
        ("1 in 2", "cannot look for number 1 in number 2"),
        ("1 in ${params.name}", "cannot look for number 1 in string 'bell'"),
        ("-${params.name} < 0", "cannot negate string 'bell'"),
        ("${steps.a.outputs.items[9]} == 1", "index 9 is out of range"),
    ],
)
def test_a_when_over_mismatched_data_raises_at_run_time(expression: str, message: str) -> None:
    parse_when(expression)  # it parses: the problem is the data
    with pytest.raises(WorkflowRuntimeError) as caught:
        evaluate_when(expression, SCOPE)
    assert message in caught.value.detail


COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@given(st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_when_compares_numbers_as_python_does(a: int, b: int) -> None:
    scope = Scope(params={"a": a, "b": b}, outputs={})
    for op, compare in COMPARISONS.items():
        assert evaluate_when(f"${{params.a}} {op} ${{params.b}}", scope) is compare(a, b)


booleans = st.recursive(
    st.sampled_from(["true", "false"]),
    lambda inner: (
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(" ".join)
        | inner.map(lambda e: f"not {e}")
        | inner.map(lambda e: f"({e})")
    ),
    max_leaves=12,
)


@given(booleans)
def test_boolean_operators_have_pythons_precedence(expression: str) -> None:
    # Python itself is the oracle, on text made only of these words and parentheses
    oracle = expression.replace("true", "True").replace("false", "False")
    assert evaluate_when(expression, SCOPE) is bool(eval(oracle))


@given(st.text(alphabet="${}()[]'\"!=<>&|,.- abcnotruefalsinpams0123456789", max_size=40))
def test_any_text_parses_or_fails_with_an_expression_error(text: str) -> None:
    try:
        parse_when(text)
    except ExpressionError as exc:
        assert 1 <= exc.column <= len(text) + 1
