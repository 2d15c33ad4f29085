"""The identity store: tenants, principals, API keys, signing keys, policies and grants.

Every backend exposes one as ``storage.identity``.  Each write takes the caller's
ledger entry (an :class:`~limit_graph.storage.ledger.EntryDraft`) and appends it in
the same transaction as the change, and moves the *identity epoch* on, so that every
API process sharing the store notices that keys, principals or policies changed and
drops what it cached.  A write that changes nothing (deleting a principal already
deleted, revoking a key twice) appends no entry and leaves the epoch where it was.

The rules every backend must agree on live here, beside the protocol: what conflicts
with what, the errors they raise, the next version of a policy, the sort keys and
cursors of the paged lists.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from limit_graph.core.errors import Conflict, InvalidInput, NotFound
from limit_graph.core.identity import (
    ApiKeyRecord,
    Grant,
    PolicyRecord,
    PrincipalRecord,
    SigningKeyRecord,
    Tenant,
    check_name,
)
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.paging import Page

__all__ = [
    "IdentityStore",
    "KeySortKey",
    "api_key_conflict",
    "api_key_sort_key",
    "check_aware",
    "check_grant",
    "check_limit",
    "check_owner",
    "check_record",
    "check_ref",
    "decode_key_cursor",
    "encode_key_cursor",
    "grant_conflict",
    "grant_subject",
    "later",
    "next_policy_version",
    "principal_conflict",
    "principal_sort_key",
    "revoked",
    "signing_key_conflict",
    "soft_deleted",
    "tenant_conflict",
    "unknown_signing_keys",
]

KeySortKey = tuple[datetime, str]
"""Where an API key sorts: (created_at, id); its id is text, not a UUID."""

_REF = re.compile(r"^[\x21-\x7e]{1,128}$")
_KEY_CURSOR = "api-key"


class IdentityStore(Protocol):
    """Durable identity records; see the module docstring for entries and the epoch.

    Reads see committed data.  A write that raises (:class:`Conflict`,
    :class:`NotFound`, :class:`InvalidInput`) has written nothing, ledger included.
    """

    async def create_tenant(self, tenant: Tenant, *, entry: EntryDraft) -> Tenant:
        """Insert a tenant; :class:`Conflict` when its name or id is taken."""

    async def find_tenant(self, ref: str) -> Tenant | None:
        """The tenant named ``ref``, or else the one whose ``str(id)`` it is."""

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, by name."""

    async def create_principal(
        self, principal: PrincipalRecord, *, entry: EntryDraft
    ) -> PrincipalRecord:
        """Insert a principal; :class:`Conflict` when its id or client id is taken, or its
        name in its tenant by a principal not deleted."""

    async def get_principal(self, principal_id: uuid.UUID) -> PrincipalRecord | None:
        """The principal, deleted or not (its ``deleted_at`` says)."""

    async def find_principal_by_client_id(self, client_id: str) -> PrincipalRecord | None:
        """The service account signing in with ``client_id``; ``None`` once deleted."""

    async def find_principal(self, tenant: str, name: str) -> PrincipalRecord | None:
        """The principal of that name in ``tenant`` that is not deleted."""

    async def list_principals(
        self, tenant: str | None, *, limit: int, cursor: str | None
    ) -> Page[PrincipalRecord]:
        """Principals not deleted (of one tenant, or of all), in (created_at, id) order."""

    async def delete_principal(
        self, principal_id: uuid.UUID, *, at: datetime, entry: EntryDraft
    ) -> PrincipalRecord | None:
        """Mark the principal deleted at ``at``, revoke its keys and remove its grants, in
        one transaction; the deleted record, or ``None`` when unknown or already deleted."""

    async def create_api_key(self, key: ApiKeyRecord, *, entry: EntryDraft) -> ApiKeyRecord:
        """Insert a key; :class:`Conflict` when its id is taken, :class:`NotFound` when its
        principal is unknown or deleted, :class:`InvalidInput` when the tenants differ."""

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def list_api_keys(
        self,
        tenant: str | None,
        *,
        principal_id: uuid.UUID | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page[ApiKeyRecord]:
        """Keys, revoked ones included, in (created_at, id) order."""

    async def revoke_api_key(
        self, key_id: str, *, at: datetime, entry: EntryDraft
    ) -> ApiKeyRecord | None:
        """Revoke the key at ``at`` (a key revoked before keeps its first time, and the call
        writes nothing); ``None`` when the key is unknown."""

    async def touch_api_keys(self, used: Mapping[str, datetime]) -> None:
        """Move each key's ``last_used_at`` on to the given time when it is later; unknown
        keys are skipped.  No ledger entry, no epoch change: it is called often."""

    async def add_signing_key(
        self,
        key: SigningKeyRecord,
        *,
        retire: Mapping[str, tuple[datetime, datetime]],
        entry: EntryDraft,
    ) -> SigningKeyRecord:
        """Insert ``key`` and set ``(retired_at, expires_at)`` of each kid in ``retire``, in
        one transaction; :class:`Conflict` when the kid is taken, :class:`NotFound` when a
        kid to retire is unknown."""

    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        """Every signing key, newest first."""

    async def put_policy(
        self, policy: PolicyRecord, *, expected_version: int | None, entry: EntryDraft
    ) -> PolicyRecord:
        """Store a new version of the policy (``policy.version`` is ignored: it becomes the
        current version + 1, or 1 for a new id).  With ``expected_version`` (0 for "must be
        new") a different current version is a :class:`Conflict` naming it."""

    async def get_policy(self, policy_id: str) -> PolicyRecord | None:
        """The current version; ``None`` when unknown or deleted."""

    async def list_policies(self) -> list[PolicyRecord]:
        """The current version of every policy not deleted, by id."""

    async def policy_history(self, policy_id: str) -> list[PolicyRecord]:
        """Every version of the policy, oldest first."""

    async def create_grant(self, grant: Grant, *, entry: EntryDraft) -> Grant:
        """Insert a grant; :class:`Conflict` for its id or for a grant of the same session,
        subject and permission; a principal grantee must exist, not deleted, in the
        grant's tenant."""

    async def delete_grant(self, grant_id: uuid.UUID, *, entry: EntryDraft) -> Grant | None:
        """Remove the grant; the removed grant, or ``None`` when unknown."""

    async def list_grants(self, session_id: uuid.UUID) -> list[Grant]:
        """The session's grants in (created_at, id) order."""

    async def identity_epoch(self) -> int:
        """A counter every identity write moves on (not :meth:`touch_api_keys`), in the
        same transaction: shared by every process on the same database."""


# --- input every backend refuses alike -----------------------------------------------


def check_ref(value: str, what: str) -> str:
    """An id stored as text (key id, kid, policy id, client id): 1-128 visible ASCII
    characters, so that every database stores it as given.

    >>> check_ref("default-viewers", "policy id")
    'default-viewers'
    """
    if not _REF.fullmatch(value):
        raise InvalidInput(
            f"{what} {value[:40]!r} must be 1-128 visible ASCII characters",
            [{"loc": [what], "msg": "not a valid identifier", "type": "value_error"}],
        )
    return value


def check_limit(limit: int) -> None:
    """A page holds at least one item."""
    if limit < 1:
        raise InvalidInput(
            f"page size {limit} must be at least 1",
            [{"loc": ["query", "limit"], "msg": "must be at least 1", "type": "value_error"}],
        )


def check_aware(what: str, *moments: datetime | None) -> None:
    """Refuse a timestamp without a time zone: stored times are instants."""
    if any(m is not None and m.utcoffset() is None for m in moments):
        raise InvalidInput(f"{what}: timestamps must carry a time zone")


def _record_moments(record: BaseModel) -> list[datetime | None]:
    return [v for v in dict(record).values() if isinstance(v, datetime)]


def check_record(record: BaseModel, what: str) -> None:
    """Every timestamp of ``record`` has a time zone, and the tenant it names (if any) is
    a valid tenant name."""
    check_aware(what, *_record_moments(record))
    tenant = getattr(record, "tenant", None)
    if tenant is not None:
        _check_name(tenant, "tenant")


def _check_name(value: str, what: str) -> None:
    try:
        check_name(value, what)
    except ValueError as exc:
        raise InvalidInput(
            str(exc), [{"loc": [what], "msg": "not a valid name", "type": "value_error"}]
        ) from None


def grant_subject(grant: Grant) -> str:
    """``principal:<id>`` or ``group:<name>``: what "the same subject" compares."""
    return f"principal:{grant.principal_id}" if grant.principal_id else f"group:{grant.group}"


def check_grant(grant: Grant) -> None:
    """A grant names exactly one grantee: a principal or a group."""
    check_record(grant, "grant")
    if (grant.principal_id is None) == (grant.group is None):
        raise InvalidInput(
            "a grant names either a principal or a group, not both or neither",
            [{"loc": ["principal_id"], "msg": "exactly one grantee", "type": "value_error"}],
        )
    if grant.group is not None:
        _check_name(grant.group, "group")


def check_owner(
    owner: PrincipalRecord | None, principal_id: uuid.UUID, tenant: str, what: str
) -> None:
    """The principal an API key or a grant is for: it exists, is not deleted, and is of
    the record's tenant."""
    if owner is None or owner.deleted_at is not None:
        raise NotFound(f"principal {principal_id} is unknown or deleted")
    if owner.tenant != tenant:
        raise InvalidInput(
            f"{what} is for tenant {tenant!r} but principal {principal_id} is of another",
            [{"loc": ["tenant"], "msg": "tenant of another principal", "type": "value_error"}],
        )


# --- conflicts -----------------------------------------------------------------------


def tenant_conflict(tenant: Tenant, taken: Iterable[Tenant]) -> Conflict | None:
    """Why ``tenant`` cannot be inserted beside the tenants ``taken`` (those sharing its
    name or id), or ``None``."""
    for other in taken:
        if other.name == tenant.name:
            return Conflict(f"tenant {tenant.name!r} exists")
        if other.id == tenant.id:
            return Conflict(f"tenant {tenant.id} exists")
    return None


def principal_conflict(
    principal: PrincipalRecord, taken: Iterable[PrincipalRecord]
) -> Conflict | None:
    """Why ``principal`` cannot be inserted beside ``taken`` (principals sharing its id,
    client id, or tenant and name), or ``None``."""
    for other in taken:
        if other.id == principal.id:
            return Conflict(f"principal {principal.id} exists")
        if principal.client_id is not None and other.client_id == principal.client_id:
            return Conflict(f"client id {principal.client_id!r} is taken")
        if (
            other.deleted_at is None
            and other.tenant == principal.tenant
            and other.name == principal.name
        ):
            return Conflict(f"principal {principal.name!r} exists in tenant {principal.tenant!r}")
    return None


def api_key_conflict(key_id: str) -> Conflict:
    return Conflict(f"API key {key_id!r} exists")


def signing_key_conflict(kid: str) -> Conflict:
    return Conflict(f"signing key {kid!r} exists")


def unknown_signing_keys(kids: Iterable[str]) -> NotFound:
    return NotFound(f"signing keys to retire are unknown: {', '.join(sorted(kids))}")


def grant_conflict(grant: Grant, taken: Iterable[Grant]) -> Conflict | None:
    """Why ``grant`` cannot be inserted beside ``taken`` (the grants of its session and
    the one with its id), or ``None``."""
    subject = grant_subject(grant)
    for other in taken:
        if other.id == grant.id:
            return Conflict(f"grant {grant.id} exists")
        if (
            other.session_id == grant.session_id
            and grant_subject(other) == subject
            and other.permission == grant.permission
        ):
            return Conflict(
                f"{subject} already holds {grant.permission.value} on session {grant.session_id}"
            )
    return None


def next_policy_version(policy_id: str, current: int, expected: int | None) -> int:
    """The version a write of the policy gets, whose current version is ``current``
    (0 for none yet).

    >>> next_policy_version("p", 2, None)
    3
    >>> next_policy_version("p", 2, 1)
    Traceback (most recent call last):
    ...
    limit_graph.core.errors.Conflict: policy 'p' is at version 2, not 1
    """
    if expected is not None and expected != current:
        if current == 0:
            raise Conflict(f"policy {policy_id!r} does not exist (version 0), not {expected}")
        raise Conflict(f"policy {policy_id!r} is at version {current}, not {expected}")
    return current + 1


# --- changes -------------------------------------------------------------------------


def soft_deleted(principal: PrincipalRecord, at: datetime) -> PrincipalRecord:
    return principal.model_copy(update={"deleted_at": at})


def revoked(key: ApiKeyRecord, at: datetime) -> ApiKeyRecord:
    """The key revoked at ``at``, or as it was when revoked before."""
    return key if key.revoked_at is not None else key.model_copy(update={"revoked_at": at})


def later(stored: datetime | None, given: datetime) -> datetime:
    """The later of a key's last use as stored and as reported."""
    return given if stored is None or given > stored else stored


# --- order and cursors ---------------------------------------------------------------


def principal_sort_key(principal: PrincipalRecord) -> tuple[datetime, uuid.UUID]:
    return principal.created_at, principal.id


def api_key_sort_key(key: ApiKeyRecord) -> KeySortKey:
    return key.created_at, key.id


def encode_key_cursor(key: KeySortKey) -> str:
    """The next page of API keys starts after ``key`` (their ids are text, so the
    (time, UUID) cursors of :mod:`limit_graph.storage.paging` cannot hold them).

    >>> from datetime import UTC
    >>> moment = datetime(2026, 3, 1, tzinfo=UTC)
    >>> decode_key_cursor(encode_key_cursor((moment, "k1"))) == (moment, "k1")
    True
    """
    document = json.dumps([_KEY_CURSOR, key[0].isoformat(), key[1]])
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_key_cursor(cursor: str) -> KeySortKey:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, stamp, key_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(stamp)
        if kind != _KEY_CURSOR or moment.tzinfo is None or not isinstance(key_id, str):
            raise ValueError("not an API key cursor")
        return moment, key_id
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput(
            "cursor is not one this server issued",
            [{"loc": ["query", "cursor"], "msg": "malformed cursor", "type": "value_error"}],
        ) from None
