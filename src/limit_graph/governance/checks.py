"""Pre-task checks: every execution passes this pipeline before it starts.

A check looks at what is about to run and either allows it (returns ``None``) or
denies it with a :class:`~limit_graph.core.errors.PolicyDenied` naming the policies.
A check whose verdict must be on record adds it to ``ctx.results``: it is stored with
the execution it admits, and so in that execution's ledger entry.  The first check is
``access`` (the policy engine's ``agent.execute``: principal x agent x backend x
target x inputs); later policies (quotas, rates, data quality) are more checks in the
list, and the orchestrator does not change when they are added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from limit_graph.core.agents import AgentSpec
from limit_graph.core.errors import PolicyDenied, StateDenied
from limit_graph.core.models import BackendKind, CheckResult, Session, SessionState
from limit_graph.governance.auth import Principal
from limit_graph.governance.authorizer import Authorizer

__all__ = [
    "AccessAllowed",
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
    target: str | None = None
    """The target the inputs name, as written (checked before the inputs are validated)."""
    results: list[CheckResult] = field(default_factory=list)
    """Verdicts kept with the execution (and in its ledger entry)."""

    def input_classes(self) -> frozenset[str]:
        """The data classes of the inputs given, by the agent's schema or the session."""
        classified = self.agent.classified_given(self.inputs, self.session.config.classification)
        return frozenset(classified.values())


class PreTaskCheck(Protocol):
    id: str

    async def check(self, ctx: CheckContext) -> PolicyDenied | None:
        """``None`` to allow, or the denial to raise."""


class AccessAllowed:
    """The policy engine's ``agent.execute``: may this principal run this agent on this
    backend and target, in this session?  An allow, with the policies that made it, is
    kept with the execution."""

    id = "access"

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    async def check(self, ctx: CheckContext) -> PolicyDenied | None:
        _, decision = await self.authorizer.agent_access(
            ctx.principal,
            ctx.agent.name,
            ctx.session,
            backend=ctx.backend.value,
            target=ctx.target,
            input_classes=ctx.input_classes(),
        )
        if decision.allowed:
            ctx.results.append(
                CheckResult(check=self.id, passed=True, policy_ids=[*decision.policy_ids])
            )
            return None
        where = f" on target {ctx.target!r}" if ctx.target else ""
        return PolicyDenied(
            f"{ctx.principal.name} may not run agent {ctx.agent.name!r} on the "
            f"{ctx.backend.value} backend{where} (policy {', '.join(decision.policy_ids)})",
            list(decision.policy_ids),
        )


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


def default_checks(authorizer: Authorizer) -> CheckPipeline:
    """Access first, then the session's state and the backends it allows."""
    return CheckPipeline([AccessAllowed(authorizer), SessionActive(), BackendAllowed()])
