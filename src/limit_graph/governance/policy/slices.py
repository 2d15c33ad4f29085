"""Stored policies cut into Cedar statements, and the statements sorted into slices.

A decision should evaluate only the policies that can apply to it.  A policy's scope
names the actions it can match (``action == ...``, ``action in [...]``, or any), so
each statement goes to the slice of every (tenant, action) its scope allows; a
decision then evaluates one slice.  Over-inclusion is harmless (Cedar evaluates what
it is given), leaving a statement out would not be, so anything unexpected in a scope
counts as "any action".

Tenant permits are bounded here too: a tenant's policy may permit only the actions on
its own things (:data:`~.schema.TENANT_ACTIONS`), so an unscoped tenant permit is
rewritten to name those actions -- it cannot grant ``tenant.create`` or a runner's
claim, sliced or not.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cedarpy

from limit_graph.governance.policy.schema import ACTIONS, PLATFORM_ACTIONS, TENANT_ACTIONS

__all__ = ["SliceTable", "Statement", "scope_actions", "statements_of"]


@dataclass(frozen=True)
class Statement:
    """One Cedar policy of a stored policy, in Cedar's JSON form, under a unique key."""

    key: str
    policy_id: str
    tenant: str | None
    effect: str
    actions: frozenset[str]
    body: dict[str, Any]


def scope_actions(scope: Mapping[str, Any]) -> frozenset[str]:
    """The actions an action scope can match (every action for anything but a plain
    ``==`` or ``in`` over known action entities).

    >>> sorted(scope_actions({"op": "in", "entities": [
    ...     {"type": "Action", "id": "session.read"}, {"type": "Action", "id": "audit.read"}]}))
    ['audit.read', 'session.read']
    >>> len(scope_actions({"op": "All"})) == len(ACTIONS)
    True
    """
    op = scope.get("op")
    if op == "==" or (op == "in" and "entity" in scope):
        named = [scope["entity"]]
    elif op == "in" and "entities" in scope:
        named = list(scope["entities"])
    else:
        return frozenset(ACTIONS)
    ids = {entity.get("id") for entity in named if entity.get("type") == "Action"}
    if len(ids) != len(named) or not ids <= ACTIONS.keys():
        return frozenset(ACTIONS)
    return frozenset(str(name) for name in ids)


def statements_of(
    policy_id: str, tenant: str | None, text: str
) -> tuple[list[Statement], list[tuple[int, str]]]:
    """Parse a stored policy (``ValueError`` when it does not parse) into statements
    keyed ``<id>#<n>`` and annotated ``@id("<id>")``, so that Cedar's reasons name it;
    with them, the problems of statements our rules refuse, by statement index."""
    document = json.loads(cedarpy.policies_to_json_str(text))
    problems: list[tuple[int, str]] = []
    for key in document.get("templates") or {}:
        problems.append(
            (
                _position(key)[0],
                "templates (policies with ?principal or ?resource slots) "
                "are not stored; name the principal or resource",
            )
        )
    statements = []
    ordered = sorted(document["staticPolicies"].items(), key=lambda item: _position(item[0]))
    for key, parsed in ordered:
        index = _position(key)[0]
        annotated = parsed.get("annotations", {}).get("id")
        if annotated is not None and annotated != policy_id:
            problems.append((index, f"@id({annotated!r}) names another policy than {policy_id!r}"))
        body = {**parsed, "annotations": {**parsed.get("annotations", {}), "id": policy_id}}
        effect = str(body["effect"])
        actions = scope_actions(body["action"])
        if tenant is not None and effect == "permit":
            if actions == frozenset(ACTIONS):
                actions = TENANT_ACTIONS
                body["action"] = {"op": "in", "entities": _action_refs(actions)}
            elif actions & PLATFORM_ACTIONS:
                names = ", ".join(sorted(actions & PLATFORM_ACTIONS))
                problems.append(
                    (index, f"a tenant's policy cannot permit platform actions: {names}")
                )
        statements.append(
            Statement(f"{policy_id}#{index}", policy_id, tenant, effect, actions, body)
        )
    return statements, problems


def _position(key: str) -> tuple[int, str]:
    """Cedar numbers the statements of a text ``policy0``, ``policy1``, ... in order."""
    digits = key.removeprefix("policy")
    return (int(digits), key) if digits.isdigit() else (-1, key)


def _action_refs(actions: Iterable[str]) -> list[dict[str, str]]:
    return [{"type": "Action", "id": action} for action in sorted(actions)]


class SliceTable:
    """Parsed policy sets by (tenant, action), each built once when the table is.

    A tenant with no policy of its own for an action shares the platform's slice for
    it.  ``sliced=False`` keeps one set per tenant holding everything, the reference
    the sliced table must agree with.
    """

    def __init__(self, statements: Iterable[Statement], *, sliced: bool = True) -> None:
        self.sliced = sliced
        grouped: dict[tuple[str | None, str | None], list[Statement]] = defaultdict(list)
        platform: dict[str | None, list[Statement]] = defaultdict(list)
        tenants: set[str] = set()
        for statement in statements:
            for action in statement.actions if sliced else (None,):
                if statement.tenant is None:
                    platform[action].append(statement)
                else:
                    tenants.add(statement.tenant)
                    grouped[(statement.tenant, action)].append(statement)
        self._sets: dict[tuple[str | None, str | None], cedarpy.PolicySet] = {}
        self._keys: dict[tuple[str | None, str | None], tuple[str, ...]] = {}
        self._ids: dict[str, str] = {}
        for action in ACTIONS if sliced else (None,):
            self._add((None, action), platform[action])
        for (tenant, action), own in grouped.items():
            self._add((tenant, action), [*platform[action], *own])
        for statement_list in (*platform.values(), *grouped.values()):
            for statement in statement_list:
                self._ids[statement.key] = statement.policy_id
        self.tenants = frozenset(tenants)

    def policies_for(self, tenant: str, action: str) -> cedarpy.PolicySet:
        """The set a decision by ``tenant``'s principal on ``action`` evaluates."""
        return self._sets[self._slice(tenant, action)]

    def statements_for(self, tenant: str, action: str) -> tuple[str, ...]:
        """The keys of the statements in that set."""
        return self._keys[self._slice(tenant, action)]

    def _slice(self, tenant: str, action: str) -> tuple[str | None, str | None]:
        key = action if self.sliced else None
        return (tenant, key) if (tenant, key) in self._sets else (None, key)

    def _add(self, key: tuple[str | None, str | None], statements: list[Statement]) -> None:
        self._sets[key] = _policy_set(statements)
        self._keys[key] = tuple(statement.key for statement in statements)

    def policy_id(self, key: str) -> str | None:
        """The stored policy a statement key belongs to."""
        return self._ids.get(key)

    def __len__(self) -> int:
        return len(self._sets)


def _policy_set(statements: list[Statement]) -> cedarpy.PolicySet:
    document = {
        "staticPolicies": {statement.key: statement.body for statement in statements},
        "templates": {},
        "templateLinks": [],
    }
    return cedarpy.PolicySet.from_json_str(json.dumps(document))
