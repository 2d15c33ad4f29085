"""The entity schema every policy is validated against, and the actions it declares.

The schema ships as Cedar's JSON schema format (``schema.cedarschema.json``, no
namespace: actions are ``Action::"session.read"``); it is the one source of truth for
the actions and the resource type each applies to (:data:`ACTIONS`), read here once.
:class:`Action` names them for callers, and a test holds it equal to the schema.

>>> ACTIONS["session.read"]
'Session'
>>> Action.AGENT_EXECUTE in PLATFORM_ACTIONS
False
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import cedarpy

__all__ = [
    "ACTIONS",
    "PLATFORM_ACTIONS",
    "SCHEMA_JSON",
    "TENANT_ACTIONS",
    "Action",
    "cedar_schema",
    "schema_text",
]


class Action(StrEnum):
    """Every action of the schema, by the name policies and routes use."""

    TENANT_CREATE = "tenant.create"
    TENANT_READ = "tenant.read"
    TENANT_QUOTA_WRITE = "tenant_quota.write"
    SIGNING_KEY_ROTATE = "signing_key.rotate"
    DATA_KEY_READ = "data_key.read"
    DATA_KEY_ROTATE = "data_key.rotate"
    AGENT_READ = "agent.read"
    MAINTENANCE_RUN = "maintenance.run"
    RUNNER_MANAGE = "runner.manage"
    SESSION_CREATE = "session.create"
    SESSION_LIST = "session.list"
    SESSION_RESTORE = "session.restore"
    PRINCIPAL_READ = "principal.read"
    PRINCIPAL_MANAGE = "principal.manage"
    KEY_MANAGE = "key.manage"
    POLICY_READ = "policy.read"
    POLICY_WRITE = "policy.write"
    AUDIT_READ = "audit.read"
    AUDIT_READ_ALL = "audit.read_all"
    LEDGER_READ = "ledger.read"
    WORKFLOW_VALIDATE = "workflow.validate"
    QUOTA_READ = "quota.read"
    QUOTA_WRITE = "quota.write"
    SESSION_READ = "session.read"
    SESSION_UPDATE = "session.update"
    SESSION_EXECUTE = "session.execute"
    SESSION_COMPLETE = "session.complete"
    SESSION_ARCHIVE = "session.archive"
    SESSION_DELETE = "session.delete"
    SESSION_GRANT = "session.grant"
    WORKFLOW_RUN = "workflow.run"
    AGENT_EXECUTE = "agent.execute"
    RUNNER_CLAIM = "runner.claim"


SCHEMA_JSON: str = (
    resources.files("limit_graph.governance.policy")
    .joinpath("schema.cedarschema.json")
    .read_text(encoding="utf-8")
)
"""The schema as shipped (Cedar JSON schema format)."""


def _actions(document: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, action in document[""]["actions"].items():
        (resource_type,) = action["appliesTo"]["resourceTypes"]
        found[name] = resource_type
    return found


ACTIONS = MappingProxyType(_actions(json.loads(SCHEMA_JSON)))
"""Each action of the schema and the one resource type it applies to."""

PLATFORM_ACTIONS = frozenset(
    name for name, resource in ACTIONS.items() if resource in {"Platform", "Pool"}
)
"""Actions on the platform itself: only platform policies may permit them."""

TENANT_ACTIONS = frozenset(ACTIONS) - PLATFORM_ACTIONS
"""Actions on a tenant's own things, which its own policies may permit."""


@cache
def cedar_schema() -> cedarpy.Schema:
    """The schema parsed once into Cedar's handle (immutable, shared by every engine)."""
    return cedarpy.Schema.from_json_str(SCHEMA_JSON)


def schema_text() -> str:
    """The schema in Cedar's human-readable syntax, for people and docs."""
    return str(cedar_schema()).replace("__cedar::", "")
