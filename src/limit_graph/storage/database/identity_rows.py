"""Rows and statements of the identity tables: records to rows, rows back to records.

An API key's ``last_used_at`` lives in its ``last_used_us`` column, not in its document
(which keeps it null), so that marking keys used rewrites no document; every other
record is its document.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, Row, Select, bindparam, case, or_, select, update

from limit_graph.core.identity import (
    ApiKeyRecord,
    Grant,
    PolicyRecord,
    PrincipalRecord,
    SigningKeyRecord,
    Tenant,
)
from limit_graph.storage import schema as t
from limit_graph.storage.identity import grant_subject

__all__ = [
    "LOCK_EPOCH",
    "MOVE_EPOCH",
    "REVOKE_KEYS",
    "TOUCH_KEYS",
    "UPDATE_SIGNING_KEYS",
    "api_key_of",
    "api_key_row",
    "grant_row",
    "key_query",
    "policy_row",
    "principal_row",
    "revocation",
    "signing_key_row",
    "tenant_row",
    "uuid_of",
]

_EPOCH = t.identity_epoch.c
LOCK_EPOCH = select(_EPOCH.epoch).where(_EPOCH.id == 1).with_for_update()
MOVE_EPOCH = update(t.identity_epoch).where(_EPOCH.id == 1).values(epoch=_EPOCH.epoch + 1)

_KEYS = t.api_keys.c
_USED = bindparam("b_used", type_=BigInteger)
TOUCH_KEYS = (
    update(t.api_keys)
    .where(_KEYS.id == bindparam("b_id"))
    .values(
        last_used_us=case(
            (or_(_KEYS.last_used_us.is_(None), _KEYS.last_used_us < _USED), _USED),
            else_=_KEYS.last_used_us,
        )
    )
)
"""Executemany form: ``b_id`` and ``b_used`` (microseconds) for each key."""

REVOKE_KEYS = (
    update(t.api_keys)
    .where(_KEYS.id == bindparam("b_id"))
    .values(revoked_us=bindparam("b_revoked"), document=bindparam("b_document"))
)
"""Executemany form: :func:`revocation` of each revoked key."""

UPDATE_SIGNING_KEYS = update(t.signing_keys).where(t.signing_keys.c.kid == bindparam("b_kid"))
"""Executemany form: ``b_kid`` and the key's new ``document``."""


def uuid_of(ref: str) -> uuid.UUID | None:
    """``ref`` as a UUID when it is one in its canonical form.

    >>> uuid_of("tenant-a") is None
    True
    """
    try:
        parsed = uuid.UUID(ref)
    except ValueError:
        return None
    return parsed if str(parsed) == ref else None


def _micros(moment: Any) -> int | None:
    return t.to_micros(moment) if moment is not None else None


def tenant_row(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "name": tenant.name, "document": tenant.model_dump(mode="json")}


def principal_row(principal: PrincipalRecord) -> dict[str, Any]:
    return {
        "id": principal.id,
        "tenant": principal.tenant,
        "name": principal.name,
        "client_id": principal.client_id,
        "created_us": t.to_micros(principal.created_at),
        "deleted_us": _micros(principal.deleted_at),
        "document": principal.model_dump(mode="json"),
    }


def key_query() -> Select[Any]:
    """What :func:`api_key_of` reads a key from."""
    return select(_KEYS.document, _KEYS.last_used_us)


def api_key_of(row: Row[Any]) -> ApiKeyRecord:
    """A key from a row of :func:`key_query`."""
    document, last_used_us = row.document, row.last_used_us
    last_used = t.from_micros(last_used_us) if last_used_us is not None else None
    return ApiKeyRecord.model_validate({**document, "last_used_at": last_used})


def _key_document(key: ApiKeyRecord) -> dict[str, Any]:
    return key.model_copy(update={"last_used_at": None}).model_dump(mode="json")


def api_key_row(key: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "principal_id": key.principal_id,
        "tenant": key.tenant,
        "created_us": t.to_micros(key.created_at),
        "revoked_us": _micros(key.revoked_at),
        "last_used_us": _micros(key.last_used_at),
        "document": _key_document(key),
    }


def revocation(key: ApiKeyRecord) -> dict[str, Any]:
    """The parameters of :data:`REVOKE_KEYS` for a revoked ``key``."""
    return {"b_id": key.id, "b_revoked": _micros(key.revoked_at), "b_document": _key_document(key)}


def signing_key_row(key: SigningKeyRecord) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "created_us": t.to_micros(key.created_at),
        "document": key.model_dump(mode="json"),
    }


def policy_row(policy: PolicyRecord) -> dict[str, Any]:
    return {
        "id": policy.id,
        "version": policy.version,
        "deleted": policy.deleted,
        "document": policy.model_dump(mode="json"),
    }


def grant_row(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "session_id": grant.session_id,
        "subject": grant_subject(grant),
        "permission": grant.permission.value,
        "principal_id": grant.principal_id,
        "created_us": t.to_micros(grant.created_at),
        "document": grant.model_dump(mode="json"),
    }
