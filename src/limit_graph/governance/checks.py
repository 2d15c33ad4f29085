"""Pre-task checks: every execution passes this pipeline before it starts.

A check looks at what is about to run and either allows it (returns ``None``) or
denies it with a :class:`~limit_graph.core.errors.PolicyDenied` naming itself.
Later policies (access, quotas, rates, data quality) are more checks in the list;
the orchestrator does not change when they are added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from limit_graph.core.agents import AgentSpec
from limit_graph.core.errors import PolicyDenied, StateDenied
from limit_graph.core.models import BackendKind, Session, SessionState
from limit_graph.governance.auth import Principal

__all__ = [
    "BackendAllowed",
    "CheckContext",
    "CheckPipeline",
    "PreTaskCheck",
    "SessionActive",
    "default_checks",
]


@dataclass(frozen=True)
class CheckContext:
    principal: Principal
    session: Session
    agent: AgentSpec
    backend: BackendKind
    inputs: dict[str, Any]


class PreTaskCheck(Protocol):
    id: str

    async def check(self, ctx: CheckContext) -> PolicyDenied | None:
        """``None`` to allow, or the denial to raise."""


class SessionActive:
    """Work runs only in an active session."""

    id = "session-active"

    async def check(self, ctx: CheckContext) -> PolicyDenied | None:
        if ctx.session.state is SessionState.ACTIVE:
            return None
        return StateDenied(f"session {ctx.session.id} is {ctx.session.state.value}", [self.id])


class BackendAllowed:
    """The agent supports the backend, and the session's config allows it."""

    id = "backend-allowed"

    async def check(self, ctx: CheckContext) -> PolicyDenied | None:
        if ctx.backend not in ctx.agent.backends:
            supported = ", ".join(b.value for b in ctx.agent.backends)
            return PolicyDenied(
                f"agent {ctx.agent.name!r} cannot run on backend {ctx.backend.value!r} "
                f"(it runs on: {supported})",
                [self.id],
            )
        if ctx.backend not in ctx.session.config.backends:
            allowed = ", ".join(b.value for b in ctx.session.config.backends)
            return PolicyDenied(
                f"session {ctx.session.id} does not allow backend {ctx.backend.value!r} "
                f"(it allows: {allowed})",
                [self.id],
            )
        return None


class CheckPipeline:
    """Runs checks in order; the first denial wins."""

    def __init__(self, checks: Sequence[PreTaskCheck]) -> None:
        self.checks = list(checks)

    async def evaluate(self, ctx: CheckContext) -> PolicyDenied | None:
        for check in self.checks:
            denial = await check.check(ctx)
            if denial is not None:
                return denial
        return None


def default_checks() -> CheckPipeline:
    return CheckPipeline([SessionActive(), BackendAllowed()])
