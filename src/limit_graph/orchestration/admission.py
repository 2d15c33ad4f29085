"""Admission: whether a command may run, before anything of it is recorded as work.

In this order: the agent must exist and run on the backend asked for; the session
must be visible to the caller (else 404, the same as no session); the pre-task checks
run -- access first (principal x agent x backend x target), then the session's and
backend's -- on what the request *says*, so that a caller who may not use a target is
refused (403) whether or not the target exists; then the inputs are validated against
the agent's schema, and the compliance checks read the validated content (circuit
limits, allowed targets, data classes, data quality).  A denial is recorded in the
ledger with the policies that made it and every verdict reached on the way.  Quotas
come last, per execution (:mod:`.executions`): a fan-out reserves for each instance.

Validation of work bound for a remote or quantum backend runs in a worker thread: its
validators may resolve a target, and an ``ibm:`` target signs in over the network; so
does the agent's work profile (its circuits, shots and target limits).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.compliance import WorkProfile
from limit_graph.core.errors import InvalidInput, NotFound
from limit_graph.core.models import BackendKind, CheckResult, Session
from limit_graph.governance.auth import Principal
from limit_graph.governance.checks import CheckContext, CheckPipeline
from limit_graph.governance.compliance import ComplianceChecks, ContentContext
from limit_graph.orchestration.commands import ExecuteCommand
from limit_graph.orchestration.recording import ExecutionRecorder
from limit_graph.orchestration.router import Router, target_family
from limit_graph.orchestration.sessions import SessionCache, require_visible

__all__ = ["Admission", "Admitted", "validate_inputs"]


@dataclass(frozen=True)
class Admitted:
    """A command that passed admission, with what admission learned on the way."""

    agent: AgentSpec
    validated: BaseModel
    session: Session
    backend: BackendKind
    checks: tuple[CheckResult, ...] = field(default=())
    """The pre-task checks' verdicts, kept with the execution."""
    profile: WorkProfile | None = None
    """What it asks of a quantum target (circuits, shots), when the agent says."""
    sensitive: bool = False
    """Whether its inputs and result are encrypted at rest: the agent or the session
    says so, or an input given carries a data class."""


def validate_inputs(agent: AgentSpec, inputs: dict[str, Any]) -> BaseModel:
    """``inputs`` as the agent's input model, or a 422 naming each bad field."""
    try:
        return agent.input_model.model_validate(inputs)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", "inputs", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidInput(f"inputs do not match agent {agent.name!r}", errors) from None


def _refuse_ineffective(agent: AgentSpec, backend: BackendKind, command: ExecuteCommand) -> None:
    """A request setting that would change nothing is refused (422), never ignored."""
    ineffective: dict[str, str] = {}
    if command.inline and (backend is not BackendKind.LOCAL or command.fan_out):
        ineffective["inline"] = "only local work that is not fanned out runs inline"
    if command.allow_cached and not agent.deterministic:
        ineffective["allow_cached"] = f"agent {agent.name!r} is not deterministic: never cached"
    elif command.allow_cached and command.fan_out:
        ineffective["allow_cached"] = "fan-out executions are never answered from the cache"
    if ineffective:
        raise InvalidInput(
            "; ".join(f"{name}: {why}" for name, why in ineffective.items()),
            [
                {"loc": ["body", name], "msg": why, "type": "value_error"}
                for name, why in ineffective.items()
            ],
        )


def validate_and_profile(
    agent: AgentSpec, inputs: dict[str, Any]
) -> tuple[BaseModel, WorkProfile | None]:
    """The validated inputs and the agent's profile of them (a 422 if either fails)."""
    validated = validate_inputs(agent, inputs)
    if agent.profile is None:
        return validated, None
    try:
        return validated, agent.profile(validated)
    except (ValueError, InvalidInput) as exc:
        detail = exc.detail if isinstance(exc, InvalidInput) else str(exc)
        raise InvalidInput(f"inputs of agent {agent.name!r}: {detail}") from None


def _target(inputs: dict[str, Any]) -> str | None:
    target = inputs.get("target")
    return target if isinstance(target, str) else None


class Admission:
    def __init__(
        self,
        registry: AgentRegistry,
        sessions: SessionCache,
        checks: CheckPipeline,
        router: Router,
        recorder: ExecutionRecorder,
        compliance: ComplianceChecks,
        *,
        default_backend: BackendKind = BackendKind.LOCAL,
    ) -> None:
        self.registry = registry
        self.sessions = sessions
        self.checks = checks
        self.router = router
        self.recorder = recorder
        self.compliance = compliance
        self.default_backend = default_backend

    def find_agent(self, name: str) -> AgentSpec:
        try:
            return self.registry.find(name)
        except NotFound as exc:  # its detail names the versions a known name has
            raise InvalidInput(
                exc.detail,
                [{"loc": ["body", "agent"], "msg": "unknown agent", "type": "value_error"}],
            ) from None

    async def admit(
        self, principal: Principal, session_id: uuid.UUID, command: ExecuteCommand
    ) -> Admitted:
        """The admitted command, or the error (a denial recorded first)."""
        agent = self.find_agent(command.agent)
        session = require_visible(await self.sessions.load(session_id), principal, session_id)
        backend = command.backend or session.config.default_backend or self.default_backend
        if command.fan_out and command.backend is None:
            backend = self.router.get(command.fan_out[0]).kind
        if backend not in agent.backends:
            raise InvalidInput(
                f"agent {agent.name!r} does not run on the {backend.value!r} backend "
                f"(it runs on {', '.join(b.value for b in agent.backends)})",
                [{"loc": ["body", "backend"], "msg": "not supported", "type": "value_error"}],
            )
        _refuse_ineffective(agent, backend, command)
        context = CheckContext(
            principal, session, agent, backend, command.inputs, target=_target(command.inputs)
        )
        denial = await self.checks.evaluate(context)
        if denial is not None:
            await self.recorder.deny(principal, session_id, agent, backend, denial)
        if backend is BackendKind.LOCAL and agent.profile is None:
            validated, profile = validate_and_profile(agent, command.inputs)
        else:
            validated, profile = await asyncio.to_thread(
                validate_and_profile, agent, command.inputs
            )
        content = ContentContext(
            principal,
            session,
            agent,
            backend,
            command.inputs,
            validated,
            profile,
            instances=self._instances(agent, backend, command, validated),
            data_dir=self.compliance.data_dir,
            results=context.results,
        )
        tag = command.workflow
        denial = await self.compliance.evaluate(
            content,
            command.policies,
            tag.step if tag is not None else "",
            step_key=f"{tag.run_id}/{tag.step}" if tag is not None else None,
        )
        if denial is not None:
            await self.recorder.deny(
                principal, session_id, agent, backend, denial, checks=content.results
            )
        sensitive = agent.sensitive or session.config.sensitive or bool(context.input_classes())
        return Admitted(
            agent, validated, session, backend, tuple(content.results), profile, sensitive
        )

    def _instances(
        self, agent: AgentSpec, backend: BackendKind, command: ExecuteCommand, validated: BaseModel
    ) -> tuple[str, ...]:
        """Where it may run: the instances it is pinned to, else those that serve it."""
        if command.fan_out:
            return tuple(dict.fromkeys(command.fan_out))
        if backend is BackendKind.LOCAL:
            return ()
        return self.router.candidates(backend, agent.name, target_family(backend, validated))
