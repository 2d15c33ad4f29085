"""The identity store of the memory and file backends.

Its writes are staged on the backend's own transaction (:class:`IdentityWrites`, beside
the sessions and ledger entries the transaction stages), so a change, its ledger entry
and the new epoch are applied together at commit or not at all; the file backend
persists them through the same journal as every other record.  Reads see the committed
:class:`IdentityState`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from limit_graph.core.identity import (
    ApiKeyRecord,
    Grant,
    PolicyRecord,
    PrincipalRecord,
    SigningKeyRecord,
    Tenant,
)
from limit_graph.core.models import ProvenanceEntry
from limit_graph.storage.identity import (
    api_key_conflict,
    api_key_sort_key,
    check_aware,
    check_grant,
    check_limit,
    check_owner,
    check_record,
    check_ref,
    decode_key_cursor,
    encode_key_cursor,
    grant_conflict,
    next_policy_version,
    principal_conflict,
    principal_sort_key,
    revoked,
    signing_key_conflict,
    soft_deleted,
    tenant_conflict,
    unknown_signing_keys,
)
from limit_graph.storage.ledger import EntryDraft
from limit_graph.storage.paging import Page, decode_cursor, encode_cursor

__all__ = ["IdentityState", "IdentityWrites", "MemoryIdentityStore", "StagingTransaction"]

T = TypeVar("T")


@dataclass
class IdentityWrites:
    """What one transaction changes in the identity records; applied at commit.

    ``grants`` holds each changed session's whole list of grants after the change (so
    that a removal is a replacement, as the file backend writes it); ``epoch`` is the
    epoch after the change, ``None`` when it does not move.
    """

    tenants: dict[uuid.UUID, Tenant] = field(default_factory=dict)
    principals: dict[uuid.UUID, PrincipalRecord] = field(default_factory=dict)
    api_keys: dict[str, ApiKeyRecord] = field(default_factory=dict)
    signing_keys: dict[str, SigningKeyRecord] = field(default_factory=dict)
    policies: list[PolicyRecord] = field(default_factory=list)
    grants: dict[uuid.UUID, list[Grant]] = field(default_factory=dict)
    epoch: int | None = None

    def __bool__(self) -> bool:
        return bool(
            self.tenants
            or self.principals
            or self.api_keys
            or self.signing_keys
            or self.policies
            or self.grants
            or self.epoch is not None
        )


@dataclass
class IdentityState:
    """The committed identity records, with the indexes the lookups need."""

    tenants: dict[uuid.UUID, Tenant] = field(default_factory=dict)
    principals: dict[uuid.UUID, PrincipalRecord] = field(default_factory=dict)
    live_names: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)
    client_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    api_keys: dict[str, ApiKeyRecord] = field(default_factory=dict)
    signing_keys: dict[str, SigningKeyRecord] = field(default_factory=dict)
    policies: dict[str, list[PolicyRecord]] = field(default_factory=dict)
    grants: dict[uuid.UUID, list[Grant]] = field(default_factory=dict)
    grant_sessions: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    epoch: int = 0

    def apply(self, writes: IdentityWrites) -> None:
        self.tenants.update(writes.tenants)
        for principal in writes.principals.values():
            self.principals[principal.id] = principal
            name = (principal.tenant, principal.name)
            if principal.deleted_at is None:
                self.live_names[name] = principal.id
            elif self.live_names.get(name) == principal.id:
                del self.live_names[name]
            if principal.client_id is not None:
                self.client_ids[principal.client_id] = principal.id
        self.api_keys.update(writes.api_keys)
        self.signing_keys.update(writes.signing_keys)
        for policy in sorted(writes.policies, key=lambda p: (p.id, p.version)):
            self.policies.setdefault(policy.id, []).append(policy)
        for session_id, grants in writes.grants.items():
            for old in self.grants.pop(session_id, []):
                del self.grant_sessions[old.id]
            if grants:
                self.grants[session_id] = list(grants)
                self.grant_sessions.update((g.id, session_id) for g in grants)
        if writes.epoch is not None:
            self.epoch = writes.epoch


class StagingTransaction(Protocol):
    """The part of the memory backend's transaction the identity store writes through."""

    @property
    def identity(self) -> IdentityWrites: ...

    async def append_entry(self, draft: EntryDraft) -> ProvenanceEntry: ...


class MemoryIdentityStore:
    """:class:`~limit_graph.storage.identity.IdentityStore` over an :class:`IdentityState`,
    writing through the owning backend's transactions (one writer at a time)."""

    def __init__(
        self,
        state: IdentityState,
        transaction: Callable[[], AbstractAsyncContextManager[StagingTransaction]],
    ) -> None:
        self._state = state
        self._transaction = transaction

    @asynccontextmanager
    async def _write(self, entry: EntryDraft) -> AsyncIterator[IdentityWrites]:
        """Stage one change; when it staged anything, the epoch moves on and ``entry``
        joins it.  The body reads the committed state: the write lock is held."""
        async with self._transaction() as tx:
            writes = tx.identity
            yield writes
            if writes:
                writes.epoch = self._state.epoch + 1
                await tx.append_entry(entry)

    # --- tenants ---------------------------------------------------------------------

    async def create_tenant(self, tenant: Tenant, *, entry: EntryDraft) -> Tenant:
        check_record(tenant, "tenant")
        async with self._write(entry) as writes:
            taken = (t for t in self._state.tenants.values() if t.name == tenant.name)
            conflict = tenant_conflict(
                tenant, [*taken, *_present(self._state.tenants.get(tenant.id))]
            )
            if conflict is not None:
                raise conflict
            writes.tenants[tenant.id] = tenant
        return tenant

    async def find_tenant(self, ref: str) -> Tenant | None:
        tenants = self._state.tenants.values()
        by_name = next((t for t in tenants if t.name == ref), None)
        return by_name or next((t for t in tenants if str(t.id) == ref), None)

    async def list_tenants(self) -> list[Tenant]:
        return sorted(self._state.tenants.values(), key=lambda t: t.name)

    # --- principals ------------------------------------------------------------------

    async def create_principal(
        self, principal: PrincipalRecord, *, entry: EntryDraft
    ) -> PrincipalRecord:
        check_record(principal, "principal")
        if principal.client_id is not None:
            check_ref(principal.client_id, "client id")
        state = self._state
        async with self._write(entry) as writes:
            taken = [
                *_present(state.principals.get(principal.id)),
                *_present(
                    state.principals.get(state.client_ids.get(principal.client_id or "", _NO_ID))
                ),
                *_present(state.principals.get(_live(state, principal.tenant, principal.name))),
            ]
            conflict = principal_conflict(principal, taken)
            if conflict is not None:
                raise conflict
            writes.principals[principal.id] = principal
        return principal

    async def get_principal(self, principal_id: uuid.UUID) -> PrincipalRecord | None:
        return self._state.principals.get(principal_id)

    async def find_principal_by_client_id(self, client_id: str) -> PrincipalRecord | None:
        found = self._state.principals.get(self._state.client_ids.get(client_id, _NO_ID))
        return found if found is not None and found.deleted_at is None else None

    async def find_principal(self, tenant: str, name: str) -> PrincipalRecord | None:
        return self._state.principals.get(_live(self._state, tenant, name))

    async def list_principals(
        self, tenant: str | None, *, limit: int, cursor: str | None
    ) -> Page[PrincipalRecord]:
        check_limit(limit)
        live = (
            p
            for p in self._state.principals.values()
            if p.deleted_at is None and (tenant is None or p.tenant == tenant)
        )
        after = decode_cursor(cursor) if cursor else None
        return _page(live, principal_sort_key, limit, after, encode_cursor)

    async def delete_principal(
        self, principal_id: uuid.UUID, *, at: datetime, entry: EntryDraft
    ) -> PrincipalRecord | None:
        check_aware("deleted at", at)
        state = self._state
        async with self._write(entry) as writes:
            principal = state.principals.get(principal_id)
            if principal is None or principal.deleted_at is not None:
                return None
            deleted = writes.principals[principal_id] = soft_deleted(principal, at)
            for key in state.api_keys.values():
                if key.principal_id == principal_id and key.revoked_at is None:
                    writes.api_keys[key.id] = revoked(key, at)
            for session_id, grants in state.grants.items():
                kept = [g for g in grants if g.principal_id != principal_id]
                if len(kept) != len(grants):
                    writes.grants[session_id] = kept
        return deleted

    # --- API keys --------------------------------------------------------------------

    async def create_api_key(self, key: ApiKeyRecord, *, entry: EntryDraft) -> ApiKeyRecord:
        check_ref(key.id, "API key id")
        check_record(key, "API key")
        async with self._write(entry) as writes:
            if key.id in self._state.api_keys:
                raise api_key_conflict(key.id)
            owner = self._state.principals.get(key.principal_id)
            check_owner(owner, key.principal_id, key.tenant, "the API key")
            writes.api_keys[key.id] = key
        return key

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        return self._state.api_keys.get(key_id)

    async def list_api_keys(
        self,
        tenant: str | None,
        *,
        principal_id: uuid.UUID | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page[ApiKeyRecord]:
        check_limit(limit)
        keys = (
            k
            for k in self._state.api_keys.values()
            if (tenant is None or k.tenant == tenant)
            and (principal_id is None or k.principal_id == principal_id)
        )
        after = decode_key_cursor(cursor) if cursor else None
        return _page(keys, api_key_sort_key, limit, after, encode_key_cursor)

    async def revoke_api_key(
        self, key_id: str, *, at: datetime, entry: EntryDraft
    ) -> ApiKeyRecord | None:
        check_aware("revoked at", at)
        async with self._write(entry) as writes:
            key = self._state.api_keys.get(key_id)
            if key is None or key.revoked_at is not None:
                return key
            done = writes.api_keys[key_id] = revoked(key, at)
        return done

    async def touch_api_keys(self, used: Mapping[str, datetime]) -> None:
        check_aware("last used at", *used.values())
        async with self._transaction() as tx:
            for key_id, moment in used.items():
                key = self._state.api_keys.get(key_id)
                if key is not None and (key.last_used_at is None or moment > key.last_used_at):
                    tx.identity.api_keys[key_id] = key.model_copy(update={"last_used_at": moment})

    # --- signing keys ----------------------------------------------------------------

    async def add_signing_key(
        self,
        key: SigningKeyRecord,
        *,
        retire: Mapping[str, tuple[datetime, datetime]],
        entry: EntryDraft,
    ) -> SigningKeyRecord:
        check_ref(key.kid, "kid")
        check_record(key, "signing key")
        check_aware("retire", *(moment for pair in retire.values() for moment in pair))
        known = self._state.signing_keys
        async with self._write(entry) as writes:
            if key.kid in known:
                raise signing_key_conflict(key.kid)
            unknown = set(retire) - set(known)
            if unknown:
                raise unknown_signing_keys(unknown)
            writes.signing_keys[key.kid] = key
            for kid, (retired_at, expires_at) in retire.items():
                writes.signing_keys[kid] = known[kid].model_copy(
                    update={"retired_at": retired_at, "expires_at": expires_at}
                )
        return key

    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        keys = self._state.signing_keys.values()
        return sorted(keys, key=lambda k: (k.created_at, k.kid), reverse=True)

    # --- policies --------------------------------------------------------------------

    async def put_policy(
        self, policy: PolicyRecord, *, expected_version: int | None, entry: EntryDraft
    ) -> PolicyRecord:
        check_ref(policy.id, "policy id")
        check_record(policy, "policy")
        async with self._write(entry) as writes:
            history = self._state.policies.get(policy.id, [])
            current = history[-1].version if history else 0
            version = next_policy_version(policy.id, current, expected_version)
            stored = policy.model_copy(update={"version": version})
            writes.policies.append(stored)
        return stored

    async def get_policy(self, policy_id: str) -> PolicyRecord | None:
        history = self._state.policies.get(policy_id)
        return history[-1] if history and not history[-1].deleted else None

    async def list_policies(self) -> list[PolicyRecord]:
        current = (h[-1] for h in self._state.policies.values())
        return sorted((p for p in current if not p.deleted), key=lambda p: p.id)

    async def policy_history(self, policy_id: str) -> list[PolicyRecord]:
        return list(self._state.policies.get(policy_id, []))

    # --- grants ----------------------------------------------------------------------

    async def create_grant(self, grant: Grant, *, entry: EntryDraft) -> Grant:
        check_grant(grant)
        state = self._state
        async with self._write(entry) as writes:
            if grant.principal_id is not None:
                owner = state.principals.get(grant.principal_id)
                check_owner(owner, grant.principal_id, grant.tenant, "the grant")
            existing = state.grants.get(grant.session_id, [])
            same_id = state.grants.get(state.grant_sessions.get(grant.id, _NO_ID), [])
            conflict = grant_conflict(grant, [*existing, *same_id])
            if conflict is not None:
                raise conflict
            writes.grants[grant.session_id] = [*existing, grant]
        return grant

    async def delete_grant(self, grant_id: uuid.UUID, *, entry: EntryDraft) -> Grant | None:
        state = self._state
        async with self._write(entry) as writes:
            session_id = state.grant_sessions.get(grant_id)
            if session_id is None:
                return None
            grants = state.grants[session_id]
            writes.grants[session_id] = [g for g in grants if g.id != grant_id]
        return next(g for g in grants if g.id == grant_id)

    async def list_grants(self, session_id: uuid.UUID) -> list[Grant]:
        return sorted(self._state.grants.get(session_id, []), key=lambda g: (g.created_at, g.id))

    async def identity_epoch(self) -> int:
        return self._state.epoch


_NO_ID = uuid.UUID(int=0)
"""A key no record has, for lookups of an optional id."""


def _live(state: IdentityState, tenant: str, name: str) -> uuid.UUID:
    return state.live_names.get((tenant, name), _NO_ID)


def _present(record: T | None) -> list[T]:
    return [record] if record is not None else []


def _page(
    items: Iterable[T],
    key: Callable[[T], tuple[datetime, Any]],
    limit: int,
    after: tuple[datetime, Any] | None,
    encode: Callable[[tuple[datetime, Any]], str],
) -> Page[T]:
    """The first ``limit`` items after ``after`` in ``key`` order, and the cursor of the
    next page when there is one."""
    ordered = sorted((i for i in items if after is None or key(i) > after), key=key)
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return Page(chosen, encode(key(chosen[-1])) if more else None)
