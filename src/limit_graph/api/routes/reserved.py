"""Documented routes whose features are not built yet: a clear 501 problem, not a 404.

They stay out of the OpenAPI document until they work.  Each already asks the
authorizer for the permission it will need, so a caller that will never be allowed
(the runner key, say) is told 403 now rather than 501.  ``/auth/token`` is for every
authenticated caller.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from limit_graph.api.deps import Authorize, CurrentPrincipal
from limit_graph.api.ijson import IJSONRoute
from limit_graph.core.errors import LimitError
from limit_graph.governance.authorizer import Permission

router = APIRouter(include_in_schema=False, route_class=IJSONRoute)


class NotBuiltYet(LimitError):
    status_code = 501
    title = "Not implemented"
    slug = "not-implemented"


RESERVED: dict[str, tuple[str, Permission | None]] = {
    "/audit": ("the audit trail", Permission.PROVENANCE_READ),
    "/audit/checkpoint": ("signed ledger checkpoints", Permission.PROVENANCE_READ),
    "/audit/proof/inclusion": ("Merkle inclusion proofs", Permission.PROVENANCE_READ),
    "/audit/proof/consistency": ("Merkle consistency proofs", Permission.PROVENANCE_READ),
    "/audit/export": ("audit export", Permission.PROVENANCE_READ),
    "/sessions/{session_id:uuid}/lineage": ("lineage graphs", Permission.PROVENANCE_READ),
    "/policies": ("governance policies", Permission.GOVERNANCE_READ),
    "/policies/{policy_id}": ("governance policies", Permission.GOVERNANCE_WRITE),
    "/quotas": ("quotas", Permission.GOVERNANCE_READ),
    "/auth/token": ("the OAuth2 token endpoint", None),
}


def _reserve(path: str, feature: str, permission: Permission | None) -> None:
    methods = ["PUT"] if path == "/policies/{policy_id}" else ["GET"]
    if path == "/auth/token":
        methods = ["POST"]

    async def not_built(_: CurrentPrincipal) -> None:
        raise NotBuiltYet(f"{feature} ({path}) is documented but not available in this version")

    dependencies = [Depends(Authorize(permission))] if permission is not None else []
    router.add_api_route(
        path, not_built, methods=methods, name=f"reserved:{path}", dependencies=dependencies
    )


for _path, (_feature, _permission) in RESERVED.items():
    _reserve(_path, _feature, _permission)
