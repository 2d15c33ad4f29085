"""The Cedar engine: stored policies parsed once, sliced, and decided by cedarpy.

``load`` parses and validates every stored policy against the schema, sorts their
statements into slices by (tenant, action) (:mod:`.slices`) and swaps the new table
in whole, so a decision sees either the old set or the new one, never half of each;
a set that does not validate is refused and the one in force stays.  ``decide`` hands
Cedar one pre-parsed slice, the request's entities and the pre-parsed schema (which
also checks the request: types, context, the action's resource type).

Deny wins on doubt: nothing permitting is a denial naming ``default-deny``; a request
Cedar cannot build, or a policy that fails while evaluating (Cedar would skip it,
and a skipped ``forbid`` would let through what it guards), is a denial too, with
Cedar's errors.

>>> from limit_graph.governance.auth import Principal
>>> from limit_graph.governance.policy.defaults import default_policies
>>> from limit_graph.governance.policy.entities import tenant_request
>>> engine = CedarEngine(default_policies())
>>> viewer = Principal("vera", "acme", frozenset({"viewer"}))
>>> engine.decide(tenant_request(viewer, "policy.read"), tenant="acme")
Decision(allowed=True, policy_ids=('viewers-read',), errors=())
>>> engine.decide(tenant_request(viewer, "audit.read"), tenant="acme").policy_ids
('default-deny',)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cedarpy

from limit_graph.core.errors import InvalidInput
from limit_graph.core.identity import PolicyRecord, check_name
from limit_graph.governance.policy.schema import ACTIONS, cedar_schema
from limit_graph.governance.policy.slices import SliceTable, Statement, statements_of
from limit_graph.governance.policy.types import AuthzRequest, Decision, EntityRef

__all__ = ["CedarEngine", "policy_errors"]

_STATEMENT = re.compile(r"^policy(\d+)$")
_FOR_POLICY = re.compile(r"^for policy `[^`]*`, ")
_NAMED_POLICY = re.compile(r"policy `([^`]+)`")


@dataclass(frozen=True)
class _InForce:
    """What one ``load`` put in force; replaced whole, never changed."""

    table: SliceTable
    generation: int
    records: tuple[PolicyRecord, ...]
    compiled: Mapping[tuple[str | None, str, str], tuple[Statement, ...]]
    """Each valid policy's statements by (tenant, id, text), reused by the next load."""


class CedarEngine:
    """A :class:`~.types.PolicyEngine` over cedarpy; safe to share between threads.

    ``sliced=False`` evaluates every policy of the tenant and the platform for every
    decision: the reference the slicing is tested against, and the bench's baseline.
    """

    def __init__(self, policies: Sequence[PolicyRecord] = (), *, sliced: bool = True) -> None:
        self._sliced = sliced
        self._lock = threading.Lock()
        self._in_force = _InForce(SliceTable((), sliced=sliced), 0, (), {})
        if policies:
            self.load(policies)

    @property
    def generation(self) -> int:
        return self._in_force.generation

    @property
    def records(self) -> tuple[PolicyRecord, ...]:
        """The stored policies in force (the newest version of each, deleted ones left out)."""
        return self._in_force.records

    def applicable(self, tenant: str, action: str) -> tuple[str, ...]:
        """The stored policies a decision on ``action`` by ``tenant``'s principal
        evaluates: its slice (every policy, unsliced)."""
        table = self._in_force.table
        keys = table.statements_for(tenant, action)
        return tuple(sorted({table.policy_id(key) or key for key in keys}))

    def validate(self, text: str, *, policy_id: str, tenant: str | None = None) -> None:
        """Raise :class:`InvalidInput` listing every problem of a policy to be stored:
        its id, its syntax, our rules for stored policies, and Cedar's validation
        against the schema (unknown entity types, attributes, actions, wrong types).

        ``tenant`` is the tenant it is stored for (None: a platform policy); a tenant's
        policy may not permit platform actions.
        """
        errors = policy_errors(text, policy_id=policy_id, tenant=tenant)
        if errors:
            raise InvalidInput(f"policy {policy_id!r} is not valid: {errors[0]['msg']}", errors)

    def load(self, policies: Sequence[PolicyRecord]) -> None:
        """Put ``policies`` in force in place of the whole current set, or refuse them
        all (:class:`InvalidInput`, one item per problem) and keep the current set.

        Loads are serialized, and a policy whose text has not changed since the last
        load is not parsed and validated again (a change to one policy re-slices the
        set but re-reads only that policy).
        """
        with self._lock:
            current = self._in_force
            records = _newest(policies)
            platform_ids = {record.id for record in records if record.tenant is None}
            errors: list[dict[str, Any]] = []
            compiled: dict[tuple[str | None, str, str], tuple[Statement, ...]] = {}
            for record in records:
                key = (record.tenant, record.id, record.text)
                known = current.compiled.get(key)
                if known is None:
                    parsed, problems = _checked(
                        record.text, policy_id=record.id, tenant=record.tenant
                    )
                    known = tuple(parsed)
                else:
                    problems = []
                if record.tenant is not None and record.id in platform_ids:
                    problems.append(
                        _item(
                            ["policy", record.id],
                            f"tenant {record.tenant}'s policy {record.id!r} has the id of a "
                            "platform policy: decisions naming it would be ambiguous",
                            "value_error",
                        )
                    )
                errors.extend({**problem, "tenant": record.tenant} for problem in problems)
                compiled[key] = known
            if errors:
                raise InvalidInput(
                    f"{len(errors)} problem(s) in the stored policies; the policies in force "
                    f"are unchanged: {errors[0]['msg']}",
                    errors,
                )
            statements = [statement for parsed in compiled.values() for statement in parsed]
            table = SliceTable(statements, sliced=self._sliced)
            self._in_force = _InForce(table, current.generation + 1, tuple(records), compiled)

    def decide(self, request: AuthzRequest, *, tenant: str) -> Decision:
        """Cedar's answer for ``request`` by a principal of ``tenant``, with the stored
        policies that determined it."""
        in_force = self._in_force
        if request.action not in ACTIONS:
            return Decision.deny_by_default([f"unknown action {request.action!r}"])
        mismatch = _tenant_mismatch(request, tenant)
        if mismatch is not None:
            return Decision.deny_by_default([mismatch])
        table = in_force.table
        cedar_request = {
            "principal": request.principal.to_json(),
            "action": {"type": "Action", "id": request.action},
            "resource": request.resource.to_json(),
            "context": request.canonical_context,
        }
        entities = "[" + ",".join(entity.canonical for entity in request.entities) + "]"
        try:
            result = cedarpy.is_authorized(
                cedar_request,
                table.policies_for(tenant, request.action),
                entities,
                schema=cedar_schema(),
            )
        except ValueError as error:
            return Decision.deny_by_default([f"the request cannot be evaluated: {error}"])
        return _decision(result, table)


def _check_policy_id(policy_id: str, tenant: str | None) -> None:
    """A policy id is a name; a tenant's may be qualified, ``<tenant>/<name>`` (as the
    platform stores them, so that tenants' ids never collide)."""
    owner, slash, name = policy_id.rpartition("/")
    if slash and (tenant is None or owner != tenant):
        raise ValueError(f"policy id {policy_id!r} must be a name or '<its tenant>/<name>'")
    check_name(name, "policy")


def policy_errors(text: str, *, policy_id: str, tenant: str | None) -> list[dict[str, Any]]:
    """Every problem of a policy's text, as ``InvalidInput`` items: ``loc`` is
    ``["policy", id]``, with ``"statement", n`` (Cedar's 0-based statement index)
    where Cedar says which statement it is (it gives no line or column)."""
    return _checked(text, policy_id=policy_id, tenant=tenant)[1]


def _checked(
    text: str, *, policy_id: str, tenant: str | None
) -> tuple[list[Statement], list[dict[str, Any]]]:
    where: list[str | int] = ["policy", policy_id]
    try:
        _check_policy_id(policy_id, tenant)
    except ValueError as error:
        return [], [_item(["policy_id"], str(error), "value_error")]
    try:
        statements, problems = statements_of(policy_id, tenant, text)
    except ValueError as error:
        return [], [_item(where, f"syntax error: {error}", "cedar_syntax")]
    if not statements and not problems:
        empty = "the policy holds no statement: write a permit or a forbid"
        return [], [_item(where, empty, "empty")]
    errors = [_item([*where, "statement", index], msg, "policy_rule") for index, msg in problems]
    result = cedarpy.validate_policies(text, cedar_schema())
    for found in result.errors:
        statement = _STATEMENT.match(found.policy_id)
        loc = [*where, "statement", int(statement.group(1))] if statement else where
        errors.append(_item(loc, _FOR_POLICY.sub("", found.error), "cedar_validation"))
    return (statements if not errors else []), errors


def _item(loc: list[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def _newest(policies: Sequence[PolicyRecord]) -> list[PolicyRecord]:
    newest: dict[tuple[str | None, str], PolicyRecord] = {}
    for record in policies:
        key = (record.tenant, record.id)
        if key not in newest or newest[key].version < record.version:
            newest[key] = record
    return [record for record in newest.values() if not record.deleted]


def _tenant_mismatch(request: AuthzRequest, tenant: str) -> str | None:
    """Tenant policies are chosen by ``tenant``: it must be the principal's own."""
    for entity in request.entities:
        if entity.ref == request.principal:
            if entity.attrs.get("tenant") == EntityRef("Tenant", tenant):
                return None
            return f"the principal {request.principal} is not of tenant {tenant!r}"
    return f"the request holds no entity for its principal {request.principal}"


def _shortened(error: str) -> str:
    """Cedar quotes every entity of the request when one does not conform: keep the why."""
    head, _, rest = error.partition("\n")
    if head == "failed to parse entities from:" and "]: " in rest:
        return "failed to parse entities: " + rest.partition("]: ")[2]
    return error


def _decision(result: cedarpy.AuthzResult, table: SliceTable) -> Decision:
    diagnostics = result.diagnostics
    named = diagnostics.id_annotations_by_reason
    decided = tuple(
        sorted({named.get(key) or table.policy_id(key) or key for key in diagnostics.reasons})
    )
    errors = tuple(_shortened(error) for error in diagnostics.errors)
    if result.decision is cedarpy.Decision.Allow and not errors:
        return Decision(True, decided)
    if result.decision is cedarpy.Decision.Deny and decided:
        return Decision(False, decided, errors)
    if errors:
        failed = tuple(
            sorted(
                {
                    policy
                    for error in errors
                    for key in _NAMED_POLICY.findall(error)
                    if (policy := table.policy_id(key)) is not None
                }
            )
        )
        return Decision(False, failed, errors) if failed else Decision.deny_by_default(errors)
    return Decision.deny_by_default()
