"""Documented routes whose features are not built yet: a clear 501 problem, not a 404.

They stay out of the OpenAPI document until they work.  Each already asks the
authorizer for the action it will need, so a caller that will never be allowed (a
runner, say) is told 403 now rather than 501.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from limit_graph.api.deps import Authorize, CurrentPrincipal
from limit_graph.api.ijson import IJSONRoute
from limit_graph.core.errors import LimitError
from limit_graph.governance.policy.schema import Action

router = APIRouter(include_in_schema=False, route_class=IJSONRoute)


class NotBuiltYet(LimitError):
    status_code = 501
    title = "Not implemented"
    slug = "not-implemented"


RESERVED: dict[str, tuple[str, Action]] = {}


def _reserve(path: str, feature: str, action: Action) -> None:
    async def not_built(_: CurrentPrincipal) -> None:
        raise NotBuiltYet(f"{feature} ({path}) is documented but not available in this version")

    router.add_api_route(
        path,
        not_built,
        methods=["GET"],
        name=f"reserved:{path}",
        dependencies=[Depends(Authorize(action))],
    )


for _path, (_feature, _action) in RESERVED.items():
    _reserve(_path, _feature, _action)
