"""The one decision point: every route and every pre-task check asks :class:`Authorizer`.

It builds the request for the policy engine from what it is asked about (the caller,
an action, the platform, a tenant, a session with its grants, an agent about to run),
narrows it by the API key's scopes, decides, and records each denial in the ledger
with the policies that made it.  An allowed pre-task decision is kept with the
execution it admits (``Execution.checks``), and so in that execution's ledger entry.

Policies live in the identity store.  The shipped defaults are their first versions:
in force until a version of the same id is stored (the first change of a default
stores the shipped text as version 1, then the change), so a new platform writes
nothing for them.  Every process reloads the set when the identity epoch moves (a
policy changed anywhere), which drops its decision cache.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from limit_graph.core.errors import PolicyDenied
from limit_graph.core.identity import Grant, PolicyRecord
from limit_graph.core.models import Session
from limit_graph.governance.auth import Principal
from limit_graph.governance.policy.defaults import default_policies
from limit_graph.governance.policy.entities import (
    PLATFORM,
    agent_request,
    platform_request,
    pool_request,
    session_request,
    tenant_request,
)
from limit_graph.governance.policy.schema import Action
from limit_graph.governance.policy.types import (
    DEFAULT_DENY,
    AuthzRequest,
    Decision,
    EntityRef,
    PolicyEngine,
)
from limit_graph.storage.identity import IdentityStore
from limit_graph.storage.ledger import EntryDraft

__all__ = ["KEY_SCOPE_POLICY", "Authorizer", "Question", "scope_allows"]

log = logging.getLogger(__name__)

KEY_SCOPE_POLICY = "key-scope"
"""The id a denial names when the API key's scopes do not cover the action."""
GRANT_CACHE_SIZE = 10_000
MEMO_SIZE = 100_000
"""Decisions remembered (all dropped when full, and whenever the policies change)."""


@dataclass(frozen=True)
class Question:
    """What a decision is asked about: the action, the resource, the facts the answer
    depends on beside the caller (``key``), how to build the Cedar request when the
    answer is not known yet, and the context worth recording with it."""

    action: str
    resource: EntityRef
    key: Hashable
    build: Callable[[], AuthzRequest] = field(compare=False)
    context: Mapping[str, str] = field(default_factory=dict, compare=False)


Recorder = Callable[[EntryDraft], Awaitable[object]]


def scope_allows(scopes: frozenset[str], action: str) -> bool:
    """No scopes: anything the principal may do; else the action or its ``prefix.*``.

    >>> scope_allows(frozenset({"session.*"}), "session.read")
    True
    >>> scope_allows(frozenset({"session.read"}), "session.execute")
    False
    """
    if not scopes:
        return True
    return action in scopes or f"{action.split('.', 1)[0]}.*" in scopes or "*" in scopes


class Authorizer:
    """Decides, records denials, and keeps the engine's policies and the grants fresh."""

    def __init__(self, engine: PolicyEngine, identity: IdentityStore, record: Recorder) -> None:
        self.engine = engine
        self.identity = identity
        self.record = record
        self.defaults = default_policies()
        self._memo: dict[tuple[Principal, str, Hashable], Decision] = {}
        self._generation = engine.generation
        self._grants: OrderedDict[uuid.UUID, list[Grant]] = OrderedDict()
        self._loaded: tuple[tuple[str, int], ...] | None = None

    async def start(self) -> None:
        await self.reload()

    async def policies(self) -> list[PolicyRecord]:
        """Every policy in force: the stored ones and the defaults never stored."""
        stored = await self.identity.list_policies()
        known = {policy.id for policy in stored}
        return stored + [p for p in self.defaults if p.id not in known]

    async def reload(self) -> None:
        """Load the policies in force into the engine, if they changed."""
        policies = await self.policies()
        versions = tuple(sorted((p.id, p.version) for p in policies))
        if versions != self._loaded:  # parsing a thousand policies takes a moment
            await asyncio.to_thread(self.engine.load, policies)
            self._loaded = versions

    async def identity_changed(self) -> None:
        """The identity epoch moved: grants may differ, and policies may have."""
        self._grants.clear()
        await self.reload()

    async def grants(self, session_id: uuid.UUID) -> list[Grant]:
        cached = self._grants.get(session_id)
        if cached is None:
            cached = await self.identity.list_grants(session_id)
            self._grants[session_id] = cached
            if len(self._grants) > GRANT_CACHE_SIZE:
                self._grants.popitem(last=False)
        else:
            self._grants.move_to_end(session_id)
        return cached

    def forget_grants(self, session_id: uuid.UUID) -> None:
        self._grants.pop(session_id, None)

    def decide(self, principal: Principal, question: Question) -> Decision:
        """The decision alone: nothing recorded, nothing raised.

        Decisions are remembered by what they were taken on (the caller as authenticated,
        the action, the resource's facts, the context) until the policies change; only a
        question not met before is built into a Cedar request and evaluated.
        """
        if not scope_allows(principal.scopes, question.action):
            return Decision(False, (KEY_SCOPE_POLICY,))
        if self.engine.generation != self._generation:
            self._memo.clear()
            self._generation = self.engine.generation
        key = (principal, question.action, question.key)
        found = self._memo.get(key)
        if found is None:
            found = self.engine.decide(question.build(), tenant=principal.tenant)
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = found
        return found

    async def require(
        self,
        principal: Principal,
        question: Question,
        *,
        session_id: uuid.UUID | None = None,
    ) -> Decision:
        """The decision if allowed; a denial is recorded and raised (403, ``policy_ids``)."""
        decision = self.decide(principal, question)
        if not decision.allowed:
            await self.deny(principal, question, decision, session_id=session_id)
        return decision

    async def deny(
        self,
        principal: Principal,
        question: Question,
        decision: Decision,
        *,
        session_id: uuid.UUID | None = None,
    ) -> None:
        """Record a denial in the ledger and raise it."""
        resource = question.resource
        await self.record(
            EntryDraft(
                actor=principal.name,
                action="access.denied",
                resource_type=resource.type.lower(),
                resource_id=resource.id,
                session_id=session_id,
                payload=self._payload(principal, question, decision),
            )
        )
        names = ", ".join(decision.policy_ids)
        why = ": no policy permits it" if decision.policy_ids == (DEFAULT_DENY,) else ""
        raise PolicyDenied(
            f"{principal.name} may not {question.action} on {resource.type.lower()} "
            f"{resource.id} (policy {names}{why})",
            list(decision.policy_ids),
        )

    @staticmethod
    def _payload(principal: Principal, question: Question, decision: Decision) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "action": question.action,
            "allowed": decision.allowed,
            "policy_ids": list(decision.policy_ids),
            "tenant": principal.tenant,
            "principal_id": str(principal.id) if principal.id else None,
            "via": principal.via,
        }
        if question.context:
            payload["context"] = dict(question.context)
        if decision.errors:
            payload["errors"] = list(decision.errors)
        return payload

    # The questions the routes and checks ask, by resource.

    async def on_platform(self, principal: Principal, action: str) -> Decision:
        question = Question(action, PLATFORM.ref, (), lambda: platform_request(principal, action))
        return await self.require(principal, question)

    def allows_on_platform(self, principal: Principal, action: str) -> bool:
        """Whether ``action`` on the whole platform is allowed, asked without recording:
        for reads that narrow to the caller's tenant when it is not (the audit trail)."""
        question = Question(action, PLATFORM.ref, (), lambda: platform_request(principal, action))
        return self.decide(principal, question).allowed

    async def on_tenant(
        self, principal: Principal, action: str, tenant: str | None = None
    ) -> Decision:
        name = tenant or principal.tenant
        question = Question(
            action,
            EntityRef("Tenant", name),
            name,
            lambda: tenant_request(principal, action, name),
        )
        return await self.require(principal, question)

    async def on_session(self, principal: Principal, action: str, session: Session) -> Decision:
        grants = await self.grants(session.id)
        question = Question(
            action,
            EntityRef("Session", str(session.id)),
            _session_facts(session, grants),
            lambda: session_request(principal, action, session, grants),
        )
        return await self.require(principal, question, session_id=session.id)

    async def on_pool(self, principal: Principal, pool: str) -> Decision:
        return await self.require(principal, _pool_question(principal, pool))

    async def on_any_pool(self, principal: Principal, pools: Iterable[str]) -> Decision:
        """Allowed on at least one of ``pools`` (a runner's word about work it may not
        name the pool of); otherwise the last denial is recorded and raised."""
        questions = [_pool_question(principal, pool) for pool in pools]
        decision = Decision.deny_by_default()
        for question in questions:
            decision = self.decide(principal, question)
            if decision.allowed:
                return decision
        await self.deny(principal, questions[-1], decision)
        return decision

    async def agent_access(
        self,
        principal: Principal,
        agent: str,
        session: Session,
        *,
        backend: str,
        target: str | None,
        input_classes: Iterable[str] = (),
    ) -> tuple[Question, Decision]:
        """The pre-task access check's question and answer (not recorded, not raised)."""
        grants = await self.grants(session.id)
        classes = frozenset(input_classes)
        context = {"backend": backend, "target": target or ""}
        question = Question(
            Action.AGENT_EXECUTE,
            EntityRef("Agent", agent),
            (agent, backend, target, classes, _session_facts(session, grants)),
            lambda: agent_request(
                principal,
                agent,
                session,
                grants,
                backend=backend,
                target=target,
                input_classes=classes,
            ),
            context,
        )
        return question, self.decide(principal, question)


def _pool_question(principal: Principal, pool: str) -> Question:
    return Question(
        Action.RUNNER_CLAIM, EntityRef("Pool", pool), pool, lambda: pool_request(principal, pool)
    )


def _session_facts(session: Session, grants: Sequence[Grant]) -> Hashable:
    """Everything of a session its Cedar entity is built from."""
    return (
        session.id,
        session.tenant,
        session.owner,
        session.owner_id,
        session.state,
        tuple((g.id, g.permission, g.principal_id, g.group) for g in grants),
    )
