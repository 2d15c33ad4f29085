"""What every compliance check is: a declaration parsed once, evaluated on each execution.

A declaration is a mapping ``{"check": ID, ...its settings}``, written in a session's
``policies``, on an agent (``AgentSpec.checks``), on a workflow step, or platform-wide in
``[governance] checks``.  Parsing it checks the settings (a bad one is a 422 naming the
field, and nothing is stored); evaluating it reads the content of an execution that
already passed access control and input validation, and either passes -- adding its
verdict to ``ctx.results`` -- or returns the denial, its verdict added too, so that the
ledger entry of the denial holds what the check found.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from limit_graph.core.agents import AgentSpec
from limit_graph.core.compliance import WorkProfile
from limit_graph.core.errors import InvalidInput, PolicyDenied
from limit_graph.core.models import BackendKind, CheckResult, Session
from limit_graph.governance.auth import Principal

__all__ = [
    "ContentCheck",
    "ContentContext",
    "Declared",
    "invalid_declaration",
    "matches_any",
    "parse_settings",
]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Declared:
    """Where a declaration was written: ``session``, ``agent:<name>``, ``step:<id>`` or
    ``platform``, and its position there; named in every verdict of its check."""

    source: str
    index: int

    def __str__(self) -> str:
        return self.source if self.index < 0 else f"{self.source} policies[{self.index}]"


@dataclass(frozen=True)
class ContentContext:
    """An execution about to be queued or run, with its inputs validated."""

    principal: Principal
    session: Session
    agent: AgentSpec
    backend: BackendKind
    inputs: dict[str, Any]
    validated: BaseModel
    profile: WorkProfile | None
    instances: tuple[str, ...] = ()
    """The backend instances it may be routed to (the ones it is pinned to, if any)."""
    data_dir: Path = Path(".")
    results: list[CheckResult] = field(default_factory=list)

    @property
    def target(self) -> str | None:
        """The quantum target it runs on, by its canonical name when the agent says it."""
        if self.profile is not None and self.profile.target is not None:
            return self.profile.target
        target = self.inputs.get("target")
        return target if isinstance(target, str) else None


class ContentCheck(Protocol):
    id: str
    declared: Declared

    async def evaluate(self, ctx: ContentContext) -> PolicyDenied | None:
        """``None`` to pass, or the denial; either way the verdict is in ``ctx.results``."""


def invalid_declaration(
    declared: Declared, loc: Sequence[str | int], detail: str, errors: list[dict[str, Any]]
) -> InvalidInput:
    """The 422 of a bad declaration, each error located inside it."""
    return InvalidInput(
        f"{declared}: {detail}",
        [{**e, "loc": [*loc, *e.get("loc", [])]} for e in errors]
        or [{"loc": list(loc), "msg": detail, "type": "value_error"}],
    )


def parse_settings(
    model: type[M], declaration: Mapping[str, Any], declared: Declared, loc: Sequence[str | int]
) -> M:
    """``declaration`` (without its ``check`` key) as ``model``, or the 422 naming each field."""
    settings = {k: v for k, v in declaration.items() if k != "check"}
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise invalid_declaration(
            declared, loc, f"bad settings of check {declaration.get('check')!r}", errors
        ) from None


def matches_any(name: str, patterns: Sequence[str]) -> bool:
    """Whether ``name`` matches one of the glob ``patterns`` (case-insensitive).

    >>> matches_any("fake:manila", ["aer", "fake:*"])
    True
    >>> matches_any("ibm:brisbane", ["aer", "fake:*"])
    False
    """
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)
