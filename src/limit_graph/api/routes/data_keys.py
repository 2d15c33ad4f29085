"""The data keys of encryption at rest (platform admin): ``GET /data-keys`` lists them,
with the latest rotation's progress; ``POST /data-keys/rotate`` starts a rotation, which
re-encrypts in the background while the platform serves (202, ``Location: /data-keys``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from limit_graph.api.data_key_schemas import DataKeysOut, RotationOut
from limit_graph.api.deps import Authorize, CurrentPlatform
from limit_graph.api.ijson import IJSONRoute
from limit_graph.governance.auth import Principal
from limit_graph.governance.policy.schema import Action

router = APIRouter(prefix="/data-keys", tags=["governance"], route_class=IJSONRoute)

CanReadDataKeys = Annotated[Principal, Depends(Authorize(Action.DATA_KEY_READ, route_class="read"))]
CanRotateDataKeys = Annotated[Principal, Depends(Authorize(Action.DATA_KEY_ROTATE))]


@router.get("", response_model=DataKeysOut)
async def list_data_keys(platform: CurrentPlatform, _: CanReadDataKeys) -> DataKeysOut:
    """The data keys (ids, states, the KEK wrapping each; never the keys) and the latest
    rotation's progress."""
    return DataKeysOut.model_validate(await platform.data_keys.status())


@router.post("/rotate", response_model=RotationOut, status_code=202)
async def rotate_data_keys(
    platform: CurrentPlatform, principal: CanRotateDataKeys, response: Response
) -> RotationOut:
    """Seal with a new data key from now on; re-wrap every data key under the current
    KEK; re-encrypt what the older keys sealed, in the background, then retire them.
    409 while a rotation runs, or when no key-encryption key is configured."""
    progress = await platform.data_keys.rotate(principal.name)
    response.headers["Location"] = "/data-keys"
    return RotationOut.of(progress)
