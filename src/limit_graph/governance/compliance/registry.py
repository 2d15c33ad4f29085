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

from limit_graph.core.agents import AgentSpec
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


def _agent_declarations(
    agent: AgentSpec,
) -> tuple[Sequence[Mapping[str, Any]], str, list[str | int], str]:
    return agent.checks, f"agent {agent.name}", ["agent", "checks"], f"agent\x00{agent.reference}"


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
        self,
        declarations: Sequence[Mapping[str, Any]],
        source: str,
        loc: Sequence[str | int],
        *,
        key: str | None = None,
    ) -> tuple[ContentCheck, ...]:
        """The declarations' checks, parsed once (a 422 if any is bad).  ``key`` names
        declarations that never change under it (an agent's, a session's, a run's step),
        so that finding them again hashes nothing; by default their canonical JSON is
        the key."""
        if not declarations:
            return ()
        if key is None:
            key = f"{source}\x00{sha256_hex(list(declarations))}"
        found = self._known(key)
        if found is None:
            found = parse_declarations(declarations, source, loc)
            self._parsed[key] = found
            if len(self._parsed) > PARSED_KEPT:
                self._parsed.popitem(last=False)
        return found

    def _known(self, key: str) -> tuple[ContentCheck, ...] | None:
        found = self._parsed.get(key)
        if found is not None:
            self._parsed.move_to_end(key)
        return found

    def parse_agent(self, agent: AgentSpec) -> tuple[ContentCheck, ...]:
        """The checks ``agent`` declares (the platform parses every agent's at start)."""
        declarations, source, loc, key = _agent_declarations(agent)
        return self.parse(declarations, source, loc, key=key)

    async def aparse(
        self,
        declarations: Sequence[Mapping[str, Any]],
        source: str,
        loc: Sequence[str | int],
        *,
        key: str | None = None,
    ) -> tuple[ContentCheck, ...]:
        """:meth:`parse`, in a worker thread when a declaration not parsed yet is slow
        to parse."""
        if not declarations:
            return ()
        if key is not None and (found := self._known(key)) is not None:
            return found
        if any(d.get("check") in SLOW_TO_PARSE for d in declarations):
            return await asyncio.to_thread(self.parse, declarations, source, loc, key=key)
        return self.parse(declarations, source, loc, key=key)

    async def evaluate(
        self,
        ctx: ContentContext,
        step_policies: Sequence[Mapping[str, Any]] = (),
        step: str = "",
        *,
        step_key: str | None = None,
    ) -> PolicyDenied | None:
        """The first denial of the checks that apply, or ``None``; verdicts in
        ``ctx.results``.  ``step_key`` names the workflow run's step whose
        ``step_policies`` these are."""
        agent, session = ctx.agent, ctx.session
        declarations, source, loc, key = _agent_declarations(agent)
        agent_checks = await self.aparse(declarations, source, loc, key=key)
        session_checks = await self.aparse(
            session.config.policies,
            "session",
            ["config", "policies"],
            key=f"session\x00{session.id}\x00{session.config_sha256}",
        )
        step_checks = await self.aparse(
            step_policies,
            f"step {step}",
            ["steps", step, "policies"],
            key=None if step_key is None else f"step\x00{step_key}",
        )
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
