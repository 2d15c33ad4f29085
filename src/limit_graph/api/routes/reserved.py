"""Documented routes whose features are not built yet: a clear 501 problem, not a 404.

They stay out of the OpenAPI document until they work.
"""

from __future__ import annotations

from fastapi import APIRouter

from limit_graph.api.deps import CurrentPrincipal
from limit_graph.core.errors import LimitError

router = APIRouter(include_in_schema=False)


class NotBuiltYet(LimitError):
    status_code = 501
    title = "Not implemented"
    slug = "not-implemented"


RESERVED = {
    "/audit": "the audit trail",
    "/audit/checkpoint": "signed ledger checkpoints",
    "/audit/proof/inclusion": "Merkle inclusion proofs",
    "/audit/proof/consistency": "Merkle consistency proofs",
    "/audit/export": "audit export",
    "/sessions/{session_id:uuid}/provenance": "per-session provenance with proofs",
    "/sessions/{session_id:uuid}/lineage": "lineage graphs",
    "/policies": "governance policies",
    "/policies/{policy_id}": "governance policies",
    "/quotas": "quotas",
    "/auth/token": "the OAuth2 token endpoint",
}


def _reserve(path: str, feature: str) -> None:
    methods = ["PUT"] if path == "/policies/{policy_id}" else ["GET"]
    if path == "/auth/token":
        methods = ["POST"]

    async def not_built(_: CurrentPrincipal) -> None:
        raise NotBuiltYet(f"{feature} ({path}) is documented but not available in this version")

    router.add_api_route(path, not_built, methods=methods, name=f"reserved:{path}")


for _path, _feature in RESERVED.items():
    _reserve(_path, _feature)
