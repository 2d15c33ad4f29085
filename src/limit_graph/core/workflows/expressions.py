"""``when`` expressions: a tokenizer, a recursive-descent parser and an evaluator.

Written here, not taken from a library, because the language is tiny and must stay
safe (no Python ``eval``, no attribute access, no calls).  Grammar, loosest first::

    expression := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := unary (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") unary)?
    unary      := "-" unary | primary
    primary    := reference | number | string | true | false | null
                | "(" expression ")" | "[" (expression ("," expression)*)? "]"

Strings are '…' or "…" (backslash escapes ``\\\\ \\' \\" \\n \\t``); a reference is
``${...}`` as in inputs.  Equality is JSON's (``1 == 1.0``, ``true != 1``); ``< <= > >=``
compare two numbers or two strings; ``in`` looks in an array, a string or an object's
keys.  ``and``, ``or`` and ``not`` use truthiness: ``false``, ``null``, ``0``, ``""``,
``[]`` and ``{}`` are false.

>>> scope = Scope(params={"shots": 1000, "mode": "fast"}, outputs={})
>>> evaluate_when("${params.shots} >= 100 and ${params.mode} in ['fast', 'exact']", scope)
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from limit_graph.core.workflows.problems import WorkflowRuntimeError
from limit_graph.core.workflows.references import (
    Reference,
    ReferenceSyntaxError,
    Scope,
    lookup,
    read_reference,
)

__all__ = ["Expression", "ExpressionError", "evaluate_when", "json_equal", "parse_when"]

_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",", "-")
_WRONG = {
    "&&": "write 'and'",
    "||": "write 'or'",
    "=": "write '==' to compare",
    "!": "write 'not'",
    "&": "write 'and'",
    "|": "write 'or'",
}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">=", "in", "not in"}


class ExpressionError(ValueError):
    """A ``when`` that does not parse; ``column`` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (at column {column})")
        self.message = message
        self.column = column


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "op", "word", "number", "string", "ref", "end"
    value: Any
    column: int
    text: str

    def __str__(self) -> str:
        return "the end of the expression" if self.kind == "end" else repr(self.text)


def _string(text: str, at: int) -> tuple[str, int]:
    quote, index = text[at], at + 1
    chars: list[str] = []
    while index < len(text):
        char = text[index]
        if char == quote:
            return "".join(chars), index + 1
        if char == "\\":
            escaped = text[index + 1 : index + 2]
            if escaped not in _ESCAPES:
                raise ExpressionError(f"unknown escape '\\{escaped}' in a string", index + 1)
            chars.append(_ESCAPES[escaped])
            index += 2
            continue
        chars.append(char)
        index += 1
    raise ExpressionError("string not closed", at + 1)


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        char = text[at]
        if char.isspace():
            at += 1
            continue
        column = at + 1
        if text.startswith("${", at):
            try:
                reference, end = read_reference(text, at)
            except ReferenceSyntaxError as exc:
                raise ExpressionError(exc.message, exc.offset + 1) from None
            tokens.append(_Token("ref", reference, column, text[at:end]))
        elif char in "'\"":
            string, end = _string(text, at)
            tokens.append(_Token("string", string, column, text[at:end]))
        elif number := _NUMBER.match(text, at):
            end = number.end()
            raw = number.group()
            amount = float(raw) if number.group(1) or number.group(2) else int(raw)
            tokens.append(_Token("number", amount, column, raw))
        elif word := _WORD.match(text, at):
            end = word.end()
            if word.group() not in _KEYWORDS:
                raise ExpressionError(
                    f"unknown name {word.group()!r}: write a reference as ${{...}}, or "
                    "quote a string",
                    column,
                )
            tokens.append(_Token("word", word.group(), column, word.group()))
        else:
            for wrong, hint in _WRONG.items():
                if text.startswith(wrong, at) and not text.startswith(("==", "!="), at):
                    raise ExpressionError(f"{wrong!r} is not an operator: {hint}", column)
            operator = next((op for op in _OPERATORS if text.startswith(op, at)), None)
            if operator is None:
                raise ExpressionError(f"unexpected {char!r}", column)
            end = at + len(operator)
            tokens.append(_Token("op", operator, column, operator))
        at = end
    tokens.append(_Token("end", None, len(text) + 1, ""))
    return tokens


@dataclass(frozen=True, slots=True)
class _Const:
    value: Any


@dataclass(frozen=True, slots=True)
class _Ref:
    reference: Reference


@dataclass(frozen=True, slots=True)
class _List:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Unary:
    op: str  # "not" or "-"
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str  # "and", "or" or a comparison
    left: _Node
    right: _Node


_Node = _Const | _Ref | _List | _Unary | _Binary


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.references: list[Reference] = []

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.at + offset, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.at += 1
        return token

    def is_op(self, *values: str) -> bool:
        token = self.peek()
        return token.kind in ("op", "word") and token.value in values

    def expect(self, value: str, opened: _Token) -> None:
        if not self.is_op(value):
            found = self.peek()
            raise ExpressionError(
                f"expected {value!r} to close {opened.text!r} opened at column "
                f"{opened.column}, found {found}",
                found.column,
            )
        self.take()

    def parse(self) -> _Node:
        node = self.expression()
        if self.peek().kind != "end":
            token = self.peek()
            raise ExpressionError(f"unexpected {token}", token.column)
        return node

    def expression(self) -> _Node:
        node = self.conjunction()
        while self.is_op("or"):
            self.take()
            node = _Binary("or", node, self.conjunction())
        return node

    def conjunction(self) -> _Node:
        node = self.negation()
        while self.is_op("and"):
            self.take()
            node = _Binary("and", node, self.negation())
        return node

    def negation(self) -> _Node:
        if self.is_op("not"):
            self.take()
            return _Unary("not", self.negation())
        return self.comparison()

    def comparison_op(self) -> str | None:
        if self.is_op("not") and self.peek(1).kind == "word" and self.peek(1).value == "in":
            self.at += 2
            return "not in"
        if self.is_op(*_COMPARISONS):
            return str(self.take().value)
        return None

    def comparison(self) -> _Node:
        node = self.unary()
        op = self.comparison_op()
        if op is None:
            return node
        node = _Binary(op, node, self.unary())
        token = self.peek()
        if self.comparison_op() is not None:
            raise ExpressionError("comparisons do not chain: write 'a < b and b < c'", token.column)
        return node

    def unary(self) -> _Node:
        if self.is_op("-"):
            self.take()
            return _Unary("-", self.unary())
        return self.primary()

    def primary(self) -> _Node:
        token = self.take()
        if token.kind in ("number", "string"):
            return _Const(token.value)
        if token.kind == "ref":
            self.references.append(token.value)
            return _Ref(token.value)
        if token.kind == "word" and token.value in ("true", "false", "null"):
            return _Const({"true": True, "false": False, "null": None}[token.value])
        if token.kind == "op" and token.value == "(":
            node = self.expression()
            self.expect(")", token)
            return node
        if token.kind == "op" and token.value == "[":
            items: list[_Node] = []
            if not self.is_op("]"):
                items.append(self.expression())
                while self.is_op(","):
                    self.take()
                    items.append(self.expression())
            self.expect("]", token)
            return _List(tuple(items))
        raise ExpressionError(f"expected a value, found {token}", token.column)


@dataclass(frozen=True)
class Expression:
    """A parsed ``when``: its text, syntax tree and the references it holds."""

    text: str
    root: _Node
    references: tuple[Reference, ...]

    def evaluate(self, scope: Scope) -> Any:
        """The expression's value (not yet reduced to a boolean)."""
        return _evaluate(self.root, scope)


@lru_cache(maxsize=4096)
def parse_when(text: str) -> Expression:
    """Parse a ``when``; raises :class:`ExpressionError` saying where it went wrong.

    >>> try:
    ...     parse_when("${params.n} > ")
    ... except ExpressionError as exc:
    ...     print(exc)
    expected a value, found the end of the expression (at column 15)
    """
    parser = _Parser(text)
    root = parser.parse()
    return Expression(text, root, tuple(parser.references))


def truthy(value: Any) -> bool:
    """JSON truthiness: false, null, 0, "", [] and {} are false."""
    return bool(value)


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: numbers by value, booleans apart from numbers.

    >>> json_equal(1, 1.0), json_equal(True, 1), json_equal([1, {"a": None}], [1.0, {"a": None}])
    (True, False, True)
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    return "an array" if isinstance(value, list) else "an object"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _order(op: str, left: Any, right: Any) -> bool:
    comparable = (_is_number(left) and _is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )
    if not comparable:
        raise WorkflowRuntimeError(
            f"`when`: cannot compare {_describe(left)} with {_describe(right)} using {op!r} "
            "(only two numbers or two strings are ordered)"
        )
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _contains(left: Any, right: Any) -> bool:
    if isinstance(right, list):
        return any(json_equal(left, item) for item in right)
    if isinstance(right, str | dict) and isinstance(left, str):
        return left in right
    raise WorkflowRuntimeError(
        f"`when`: 'in' looks in an array, a string or an object's keys; cannot look for "
        f"{_describe(left)} in {_describe(right)}"
    )


def _evaluate(node: _Node, scope: Scope) -> Any:
    if isinstance(node, _Const):
        return node.value
    if isinstance(node, _Ref):
        return lookup(node.reference, scope)
    if isinstance(node, _List):
        return [_evaluate(item, scope) for item in node.items]
    if isinstance(node, _Unary):
        value = _evaluate(node.operand, scope)
        if node.op == "not":
            return not truthy(value)
        if not _is_number(value):
            raise WorkflowRuntimeError(f"`when`: cannot negate {_describe(value)}")
        return -value
    if node.op == "and":
        return truthy(_evaluate(node.left, scope)) and truthy(_evaluate(node.right, scope))
    if node.op == "or":
        return truthy(_evaluate(node.left, scope)) or truthy(_evaluate(node.right, scope))
    left, right = _evaluate(node.left, scope), _evaluate(node.right, scope)
    if node.op == "==":
        return json_equal(left, right)
    if node.op == "!=":
        return not json_equal(left, right)
    if node.op == "in":
        return _contains(left, right)
    if node.op == "not in":
        return not _contains(left, right)
    return _order(node.op, left, right)


def evaluate_when(expression: str, scope: Scope) -> bool:
    """Whether ``expression`` holds in ``scope``; a bare reference is tested for truth.

    Raises :class:`WorkflowRuntimeError` when a reference names what is not there, or
    when values cannot be compared (``"a" < 1``); a ``when`` that does not parse (which
    validation refuses) raises it too.
    """
    try:
        parsed = parse_when(expression)
    except ExpressionError as exc:
        raise WorkflowRuntimeError(f"`when` does not parse: {exc}") from None
    return truthy(parsed.evaluate(scope))
