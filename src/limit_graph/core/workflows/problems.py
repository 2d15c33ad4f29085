"""What a workflow check reports: problems with a JSON pointer, and the two errors.

A problem is one thing wrong with a spec, shaped like the API's validation errors
plus two fields of its own::

    {"step": "sample",                    # the step it is in, or None
     "field": "/steps/1/inputs/target",   # a JSON pointer (RFC 6901) into the spec
     "msg": "...", "type": "...",
     "loc": ["body", "workflow", "steps", 1, "inputs", "target"],
     "line": 12, "column": 9}             # where the spec was text, 1-based

:class:`WorkflowInvalid` (422) carries every problem of a spec at once;
:class:`WorkflowRuntimeError` (422, an :class:`InvalidInput` too) is what resolving a
reference or evaluating ``when`` raises while a run is under way, when the data the
upstream steps produced does not have what the spec asks of it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from limit_graph.core.errors import InvalidInput

__all__ = [
    "MAX_PROBLEMS",
    "WorkflowInvalid",
    "WorkflowRuntimeError",
    "close_match",
    "pointer",
    "pointer_parts",
    "problem",
    "pydantic_problems",
]

MAX_PROBLEMS = 200
"""How many problems one report lists (the detail says how many there were)."""

Part = str | int


def pointer(parts: Iterable[Part]) -> str:
    """The JSON pointer (RFC 6901) of a path of keys and indexes.

    >>> pointer(["steps", 1, "inputs", "a/b"])
    '/steps/1/inputs/a~1b'
    >>> pointer([])
    ''
    """
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def pointer_parts(text: str) -> list[Part]:
    """The path a pointer names; all-digit parts become indexes.

    >>> pointer_parts("/steps/1/inputs/a~1b")
    ['steps', 1, 'inputs', 'a/b']
    """
    if not text:
        return []
    parts: list[Part] = []
    for raw in text[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        parts.append(int(part) if part.isdigit() and part == str(int(part)) else part)
    return parts


def problem(field: Sequence[Part], msg: str, kind: str, step: str | None = None) -> dict[str, Any]:
    """One problem at ``field`` (a path into the spec), in the shape reports use."""
    return {
        "step": step,
        "field": pointer(field),
        "msg": msg,
        "type": kind,
        "loc": ["body", "workflow", *field],
    }


def close_match(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a known name is close to ``name`` (only among a
    few hundred names: a hint is not worth a quadratic report).

    >>> close_match("frist", ["first", "second"])
    " (did you mean 'first'?)"
    """
    names = list(known)
    if len(names) > 500:
        return ""
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return f" (did you mean {found[0]!r}?)" if found else ""


def pydantic_problems(
    exc: ValidationError, prefix: tuple[Part, ...], step: str | None
) -> list[dict[str, Any]]:
    """A pydantic error's items as problems under ``prefix``."""
    found = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if part != "[key]")
        msg = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if error["type"] == "extra_forbidden" and loc:
            msg = f"unknown field {loc[-1]!r}"
        elif error["type"] == "missing" and loc:
            msg = f"missing field {loc[-1]!r}"
        found.append(problem((*prefix, *loc), msg, error["type"], step))
    return found


class WorkflowInvalid(InvalidInput):
    """A workflow spec (or a run's params) with problems; ``errors`` lists them all.

    >>> exc = WorkflowInvalid([problem(["steps", 0, "agent"], "no agent named 'x'",
    ...                                "unknown_agent", "a")], name="demo")
    >>> exc.detail
    "workflow 'demo' has 1 problem: /steps/0/agent (step 'a'): no agent named 'x'"
    """

    title = "Invalid workflow"
    slug = "invalid-workflow"

    def __init__(self, errors: list[dict[str, Any]], *, name: str | None = None) -> None:
        count = len(errors)
        listed = errors[:MAX_PROBLEMS]
        subject = f"workflow {name!r}" if name else "the workflow"
        noun = "problem" if count == 1 else "problems"
        detail = f"{subject} has {count} {noun}"
        if count > len(listed):
            detail += f" (the first {len(listed)} are listed)"
        if listed:
            first = listed[0]
            where = first["field"] or "the document"
            if first.get("step") is not None:
                where += f" (step {first['step']!r})"
            if "line" in first:
                where += f" at line {first['line']}, column {first['column']}"
            detail += f": {where}: {first['msg']}"
        super().__init__(detail, listed)
        self.name = name
        self.count = count


class WorkflowRuntimeError(InvalidInput):
    """A reference or ``when`` that a run's actual data cannot satisfy, e.g. an index
    past the end of an upstream step's list; ``reference`` is its text."""

    title = "Workflow data error"
    slug = "workflow-data"

    def __init__(self, detail: str, reference: str | None = None) -> None:
        super().__init__(detail)
        self.reference = reference
