"""The policy engine: Cedar behind a decision-point protocol of ours.

:mod:`.types` holds the protocol (:class:`PolicyEngine`) and its values,
:mod:`.entities` builds requests from our domain, :mod:`.cedar` decides them with
cedarpy, and :mod:`.defaults` ships the default policies and the schema.  Decisions
are remembered by the governance authorizer (``governance/authorizer.py``), by the
domain facts they were taken on, until the policies change.  ``docs/governance.md``
says why Cedar and how the platform's and the tenants' policies combine.
"""

from limit_graph.governance.policy.cedar import CedarEngine
from limit_graph.governance.policy.defaults import default_policies
from limit_graph.governance.policy.entities import (
    PLATFORM,
    ROLE_HIERARCHY,
    agent_entity,
    agent_request,
    platform_request,
    pool_entity,
    pool_request,
    principal_entities,
    principal_ref,
    request_for,
    session_entity,
    session_request,
    tenant_entity,
    tenant_request,
)
from limit_graph.governance.policy.schema import ACTIONS, Action
from limit_graph.governance.policy.types import (
    DEFAULT_DENY,
    AuthzRequest,
    Decision,
    Entity,
    EntityRef,
    PolicyEngine,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_DENY",
    "PLATFORM",
    "ROLE_HIERARCHY",
    "Action",
    "AuthzRequest",
    "CedarEngine",
    "Decision",
    "Entity",
    "EntityRef",
    "PolicyEngine",
    "agent_entity",
    "agent_request",
    "default_policies",
    "platform_request",
    "pool_entity",
    "pool_request",
    "principal_entities",
    "principal_ref",
    "request_for",
    "session_entity",
    "session_request",
    "tenant_entity",
    "tenant_request",
]
