"""Governance policies (Cedar): listed, read with their history, and changed.

Every change is validated against the entity schema before it is stored (a 422 names
each problem), stored as a new version, and written to the ledger; every API process
loads it within a second.
"""

from __future__ import annotations

from fastapi import APIRouter, Path

from limit_graph.api.deps import CanReadPolicies, CanWritePolicies, CurrentPlatform
from limit_graph.api.identity_schemas import PolicyList, PolicyOut, PolicyPut
from limit_graph.api.ijson import IJSONRoute

router = APIRouter(prefix="/policies", tags=["governance"], route_class=IJSONRoute)

PolicyId = Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@router.get("", response_model=PolicyList)
async def list_policies(platform: CurrentPlatform, principal: CanReadPolicies) -> PolicyList:
    """The platform's policies and those of the caller's tenant, current versions."""
    policies = await platform.policies.current(principal)
    return PolicyList(items=[PolicyOut.of(p) for p in policies])


@router.get("/{policy_id}/versions", response_model=PolicyList)
async def policy_versions(
    platform: CurrentPlatform, principal: CanReadPolicies, policy_id: str = PolicyId
) -> PolicyList:
    """Every version of one policy, oldest first."""
    versions = await platform.policies.history(principal, policy_id)
    return PolicyList(items=[PolicyOut.of(p) for p in versions])


@router.put("/{policy_id}", response_model=PolicyOut)
async def put_policy(
    body: PolicyPut,
    platform: CurrentPlatform,
    principal: CanWritePolicies,
    policy_id: str = PolicyId,
) -> PolicyOut:
    """Write the next version of a policy (a new one starts at version 1)."""
    stored = await platform.policies.put(
        principal,
        policy_id,
        text=body.text,
        description=body.description,
        expected_version=body.expected_version,
    )
    return PolicyOut.of(stored)
