"""The decision point's protocol and the values it speaks in.

A :class:`PolicyEngine` answers one question -- may this principal do this action on
this resource, given this context and these facts (entities)? -- with a
:class:`Decision` that names the stored policies that decided.  Requests carry every
fact the policies may read, so an engine keeps no domain state of its own and any
engine (Cedar today, see :mod:`.cedar`) can sit behind the protocol.

>>> Decision.deny_by_default().policy_ids
('default-deny',)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, TypeAlias, runtime_checkable

from limit_graph.core.errors import PolicyDenied
from limit_graph.core.identity import PolicyRecord

__all__ = [
    "DEFAULT_DENY",
    "AuthzRequest",
    "Decision",
    "Entity",
    "EntityRef",
    "PolicyEngine",
    "Value",
    "to_cedar",
]

DEFAULT_DENY = "default-deny"
"""The id a denial names when no policy permitted (there is no such stored policy)."""

Value: TypeAlias = (
    "str | bool | int | EntityRef | frozenset[Value] | tuple[Value, ...] | Mapping[str, Value]"
)
"""What an entity attribute or a context field may hold: Cedar's values.  Sets are
``frozenset`` (or ``tuple``), records are mappings."""


@dataclass(frozen=True, order=True)
class EntityRef:
    """An entity's identity, ``Type::"id"`` in Cedar."""

    type: str
    id: str

    def __str__(self) -> str:
        return f'{self.type}::"{self.id}"'

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}


@dataclass(frozen=True)
class Entity:
    """A fact the policies may read: an entity's attributes and the entities it is in."""

    ref: EntityRef
    attrs: Mapping[str, Value] = field(default_factory=dict)
    parents: tuple[EntityRef, ...] = ()

    @cached_property
    def canonical(self) -> str:
        """The entity as Cedar JSON with sorted keys and sets, computed once: what the
        engine sends to Cedar."""
        return _dumps(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.ref.to_json(),
            "attrs": {name: to_cedar(value) for name, value in self.attrs.items()},
            "parents": [parent.to_json() for parent in sorted(self.parents)],
        }


@dataclass(frozen=True)
class AuthzRequest:
    """One question for the decision point, with every entity its policies may read.

    ``action`` is the bare action name (``"session.read"``); build requests with the
    helpers of :mod:`.requests`, which check it against the schema.
    """

    principal: EntityRef
    action: str
    resource: EntityRef
    context: Mapping[str, Value] = field(default_factory=dict)
    entities: tuple[Entity, ...] = ()

    @cached_property
    def canonical_context(self) -> str:
        return _dumps({name: to_cedar(value) for name, value in self.context.items()})


@dataclass(frozen=True)
class Decision:
    """Allowed or not, and why: the stored policies that determined it.

    An allow names the permits that matched; a denial the forbids that matched, or
    :data:`DEFAULT_DENY` when nothing permitted.  ``errors`` are the engine's: a request
    it could not evaluate, or a policy that failed while evaluating (either denies).
    """

    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()

    @classmethod
    def deny_by_default(cls, errors: Sequence[str] = ()) -> Decision:
        return cls(False, (DEFAULT_DENY,), tuple(errors))

    def raise_if_denied(self, what: str) -> None:
        """Raise the 403 problem for a denial (``what`` says what was refused)."""
        if not self.allowed:
            names = ", ".join(self.policy_ids)
            raise PolicyDenied(f"{what} is denied by policy ({names})", list(self.policy_ids))


@runtime_checkable
class PolicyEngine(Protocol):
    """The decision point: stored policies in, decisions out.

    ``load`` replaces the whole set: platform policies (``tenant`` None) apply to every
    request, a tenant's own only to requests of that tenant's principals (``decide``'s
    ``tenant``).  ``validate`` checks a policy's text before it is stored and raises
    :class:`~limit_graph.core.errors.InvalidInput` with one ``errors`` item per problem.
    ``generation`` changes with every ``load``, so caches of decisions know to drop.
    """

    @property
    def generation(self) -> int: ...

    def decide(self, request: AuthzRequest, *, tenant: str) -> Decision: ...

    def load(self, policies: Sequence[PolicyRecord]) -> None: ...

    def validate(self, text: str, *, policy_id: str, tenant: str | None = None) -> None: ...


def to_cedar(value: Value) -> Any:
    """A value in Cedar's JSON form: entity references as ``__entity``, sets as sorted
    lists (so that equal sets have equal JSON)."""
    kind = type(value)
    if kind is str or kind is bool or kind is int:
        return value
    if kind is EntityRef:
        return {"__entity": {"type": value.type, "id": value.id}}  # type: ignore[union-attr]
    if isinstance(value, frozenset | set):
        return sorted((to_cedar(item) for item in value), key=_sort_key)
    if isinstance(value, tuple | list):
        return [to_cedar(item) for item in value]
    if isinstance(value, Mapping):
        return {name: to_cedar(item) for name, item in value.items()}
    return value


def _sort_key(item: Any) -> str:
    return item if type(item) is str else _dumps(item)


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
