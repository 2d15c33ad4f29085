"""The checks there are, and the ones that apply to an execution.

:class:`ComplianceChecks` parses declarations (a bad one is a 422 at the moment it is
written: a session created, a workflow submitted) and keeps them parsed, keyed by their
canonical JSON, so that evaluating an execution costs no parsing.  The checks an
execution passes are, in order: the platform's (``[governance] checks``), the data
classes' clearances, the agent's, the session's, and its workflow step's.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from limit_graph.core.canonical import sha256_hex
from limit_graph.core.compliance import DataClass
from limit_graph.core.errors import InvalidInput, PolicyDenied
from limit_graph.governance.compliance.circuits import AllowedTargets, CircuitLimits
from limit_graph.governance.compliance.classification import DataClassification
from limit_graph.governance.compliance.quality import DataQuality
from limit_graph.governance.compliance.types import ContentCheck, ContentContext, Declared

__all__ = ["CHECK_KINDS", "ComplianceChecks", "parse_declarations"]

Parser = Callable[[Mapping[str, Any], Declared, Sequence[str | int]], ContentCheck]

CHECK_KINDS: dict[str, Parser] = {
    CircuitLimits.id: CircuitLimits.parse,
    AllowedTargets.id: AllowedTargets.parse,
    DataClassification.id: DataClassification.parse,
    DataQuality.id: DataQuality.parse,
}
"""Every check a declaration may name, by id."""

PARSED_KEPT = 4096
"""Parsed declaration lists kept (sessions, agents, steps)."""

SLOW_TO_PARSE = frozenset({DataQuality.id})
"""Checks whose parsing may take more than microseconds: parsed in a worker thread."""


def parse_declarations(
    declarations: Sequence[Mapping[str, Any]], source: str, loc: Sequence[str | int]
) -> tuple[ContentCheck, ...]:
    """Each declaration as its check, or the 422 of the first bad one."""
    parsed: list[ContentCheck] = []
    for index, declaration in enumerate(declarations):
        declared = Declared(source, index)
        where = [*loc, index]
        kind = declaration.get("check") if isinstance(declaration, Mapping) else None
        parser = CHECK_KINDS.get(kind) if isinstance(kind, str) else None
        if parser is None:
            known = ", ".join(sorted(CHECK_KINDS))
            raise InvalidInput(
                f"{declared}: unknown check {kind!r} (known checks: {known})",
                [
                    {
                        "loc": [*where, "check"],
                        "msg": f"unknown check; known: {known}",
                        "type": "value_error",
                    }
                ],
            )
        parsed.append(parser(declaration, declared, where))
    return tuple(parsed)


class ComplianceChecks:
    """The platform's compliance checks, and every declaration's parsed form."""

    def __init__(
        self,
        platform: Sequence[Mapping[str, Any]],
        clearances: Mapping[DataClass, Sequence[str]],
        data_dir: Path,
    ) -> None:
        self.data_dir = data_dir
        self.platform = parse_declarations(platform, "platform", ["governance", "checks"])
        self.clearances = DataClassification(clearances, Declared("platform clearances", -1))
        self._parsed: OrderedDict[str, tuple[ContentCheck, ...]] = OrderedDict()

    def parse(
        self, declarations: Sequence[Mapping[str, Any]], source: str, loc: Sequence[str | int]
    ) -> tuple[ContentCheck, ...]:
        """The declarations' checks, parsed once (a 422 if any is bad)."""
        if not declarations:
            return ()
        key = f"{source}\x00{sha256_hex(list(declarations))}"
        found = self._parsed.get(key)
        if found is None:
            found = parse_declarations(declarations, source, loc)
            self._parsed[key] = found
            if len(self._parsed) > PARSED_KEPT:
                self._parsed.popitem(last=False)
        return found

    async def aparse(
        self, declarations: Sequence[Mapping[str, Any]], source: str, loc: Sequence[str | int]
    ) -> tuple[ContentCheck, ...]:
        """:meth:`parse`, in a worker thread when a declaration is slow to parse."""
        slow = any(d.get("check") in SLOW_TO_PARSE for d in declarations)
        if slow:
            return await asyncio.to_thread(self.parse, declarations, source, loc)
        return self.parse(declarations, source, loc)

    async def evaluate(
        self, ctx: ContentContext, step_policies: Sequence[Mapping[str, Any]] = (), step: str = ""
    ) -> PolicyDenied | None:
        """The first denial of the checks that apply, or ``None``; verdicts in ``ctx.results``."""
        agent_checks = await self.aparse(
            ctx.agent.checks, f"agent {ctx.agent.name}", ["agent", "checks"]
        )
        session_checks = await self.aparse(
            ctx.session.config.policies, "session", ["config", "policies"]
        )
        step_checks = await self.aparse(step_policies, f"step {step}", ["steps", step, "policies"])
        for check in (
            *self.platform,
            self.clearances,
            *agent_checks,
            *session_checks,
            *step_checks,
        ):
            denial = await check.evaluate(ctx)
            if denial is not None:
                return denial
        return None
