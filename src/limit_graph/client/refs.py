"""References and ``when`` conditions for workflows built in Python.

A :class:`Ref` stands for a ``${...}`` reference: a param (``wf.params.shots``), a
step's outputs (``prepare.outputs["angles"][0]``) or a map's current item
(``Map(..., as_="theta").item``).  It renders as the reference's text, so it can be
put in a step's ``inputs`` as it is (the step gets the referenced value) or in an
f-string (interpolated as text).  Comparing a ref builds a :class:`Condition`, the
text of a ``when``:

>>> from limit_graph.core.workflows import Reference
>>> shots = Ref(Reference("params", "shots"))
>>> angles = Ref(Reference("steps", "prepare"))["angles"]
>>> str(angles[0]), f"n={shots}"
('${steps.prepare.outputs.angles[0]}', 'n=${params.shots}')
>>> str((shots >= 100) & ~angles.is_in([[], None]))
'${params.shots} >= 100 and not ${steps.prepare.outputs.angles} in [[], null]'

``==`` on refs compares the objects, as Python's ``==`` does: write ``ref.eq(value)``
for the condition.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from limit_graph.core.workflows import Reference

__all__ = ["Condition", "Ref", "when_literal"]

# Loosest first: how tightly each kind of condition binds (docs/workflows.md, "When").
_OR, _AND, _NOT, _ATOM = 1, 2, 3, 4


@dataclass(frozen=True, eq=False)
class Ref:
    """A reference into a workflow's data; ``ref[part]`` goes one field or index
    deeper.  ``origin`` is the builder the root belongs to (``None`` for map items),
    so a step cannot use another workflow's refs by mistake."""

    reference: Reference
    origin: object | None = field(default=None, repr=False)

    def __getitem__(self, part: str | int) -> Ref:
        if isinstance(part, bool) or not isinstance(part, str | int):
            raise TypeError(f"a path part is a field name or an index, not {part!r}")
        if isinstance(part, int) and part < 0:
            raise ValueError(f"indexes count from 0; {part} is not one")
        reference = self.reference
        deeper = Reference(reference.kind, reference.name, (*reference.path, part))
        return Ref(deeper, self.origin)

    def __iter__(self) -> Iterator[Any]:
        # ``__getitem__`` would otherwise make every ref an endless sequence.
        raise TypeError(f"{self} is a reference, not a list: index it, e.g. ref[0]")

    def __contains__(self, _: object) -> bool:
        raise TypeError(f"{self} is a reference: write ref.contains(value) for a condition")

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self} has no truth value while the workflow is built: pass it as `when` "
            "to test it when the step runs"
        )

    @property
    def text(self) -> str:
        """The reference as a spec writes it, e.g. ``${params.shots}``."""
        return str(self.reference)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Ref({self.text})"

    # --- conditions ----------------------------------------------------------------

    def _compare(self, operator: str, value: Any) -> Condition:
        return Condition(f"{self.text} {operator} {when_literal(value)}", _ATOM)

    def __lt__(self, value: Any) -> Condition:
        return self._compare("<", value)

    def __le__(self, value: Any) -> Condition:
        return self._compare("<=", value)

    def __gt__(self, value: Any) -> Condition:
        return self._compare(">", value)

    def __ge__(self, value: Any) -> Condition:
        return self._compare(">=", value)

    def eq(self, value: Any) -> Condition:
        """``ref == value`` when the step runs."""
        return self._compare("==", value)

    def ne(self, value: Any) -> Condition:
        """``ref != value`` when the step runs."""
        return self._compare("!=", value)

    def is_in(self, values: Any) -> Condition:
        """The referenced value is in ``values`` (a list, text or object, or a ref)."""
        return self._compare("in", values)

    def not_in(self, values: Any) -> Condition:
        return self._compare("not in", values)

    def contains(self, value: Any) -> Condition:
        """``value`` is in the referenced list, text or object."""
        return Condition(f"{when_literal(value)} in {self.text}", _ATOM)

    def __invert__(self) -> Condition:
        return ~Condition(self.text, _ATOM)

    def __and__(self, other: Condition | Ref) -> Condition:
        return Condition(self.text, _ATOM) & other

    def __or__(self, other: Condition | Ref) -> Condition:
        return Condition(self.text, _ATOM) | other


@dataclass(frozen=True)
class Condition:
    """A ``when`` expression built from refs: combine with ``&``, ``|`` and ``~``
    (Python's ``and``/``or``/``not`` cannot be overloaded, so they are refused)."""

    text: str
    level: int = _ATOM

    def _wrapped(self, level: int) -> str:
        return self.text if self.level >= level else f"({self.text})"

    def __and__(self, other: Condition | Ref) -> Condition:
        right = _condition(other)
        return Condition(f"{self._wrapped(_AND)} and {right._wrapped(_AND)}", _AND)

    def __or__(self, other: Condition | Ref) -> Condition:
        right = _condition(other)
        return Condition(f"{self._wrapped(_OR)} or {right._wrapped(_OR)}", _OR)

    def __invert__(self) -> Condition:
        return Condition(f"not {self._wrapped(_NOT)}", _NOT)

    def __bool__(self) -> NoReturn:
        raise TypeError(
            f"`{self.text}` is a condition for when the step runs: combine conditions "
            "with & | ~, not with and/or/not"
        )

    def __str__(self) -> str:
        return self.text


def _condition(value: Condition | Ref) -> Condition:
    if isinstance(value, Condition):
        return value
    if isinstance(value, Ref):
        return Condition(value.text, _ATOM)
    raise TypeError(f"a condition combines with conditions and refs, not {value!r}")


def _quoted(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
    )
    return f"'{escaped}'"


def when_literal(value: Any) -> str:
    """``value`` as a literal of a ``when`` expression (a ref as its reference).

    >>> when_literal(["ok", 1, 2.5, True, None])
    "['ok', 1, 2.5, true, null]"
    """
    if isinstance(value, Ref):
        return value.text
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        return repr(value)
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "[" + ", ".join(when_literal(item) for item in value) + "]"
    raise TypeError(
        f"a `when` literal is a number, text, true, false, null or a list, not {value!r}"
    )
