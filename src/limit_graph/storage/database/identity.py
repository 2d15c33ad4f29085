"""The identity store of the database backend (SQLite and Postgres).

Every identity write runs in an interactive transaction that first locks the one row
of ``limit_identity_epoch`` (``FOR UPDATE`` on Postgres; on SQLite the ``IMMEDIATE``
transaction holds the whole database), so identity writes from every process are
serialised and the checks a write makes (is this name taken?) see every write before
it.  The unique constraints of :mod:`limit_graph.storage.schema` stay as the last word:
a violation is answered as :class:`Conflict`.  Locks are taken in one order, epoch
row, then records, then the ledger head (the entry goes last), so identity writes
never deadlock with one another or with the group-commit writer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, delete, func, insert, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from limit_graph.core.errors import Conflict, InvalidInput
from limit_graph.core.identity import (
    ApiKeyRecord,
    Grant,
    PolicyRecord,
    PrincipalRecord,
    SigningKeyRecord,
    Tenant,
)
from limit_graph.storage import schema as t
from limit_graph.storage.database import identity_rows as rows
from limit_graph.storage.database.transaction import DatabaseTransaction
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
    grant_subject,
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

__all__ = ["DatabaseIdentityStore"]

T = TypeVar("T")

_TENANTS = t.tenants.c
_PRINCIPALS = t.principals.c
_KEYS = t.api_keys.c
_SIGNING = t.signing_keys.c
_POLICIES = t.policies.c
_GRANTS = t.grants.c


@dataclass
class _Change:
    """One identity write in progress; ``changed = False`` when it turned out to be a
    no-op, which then appends no entry and leaves the epoch as it was."""

    tx: DatabaseTransaction
    changed: bool = True

    @property
    def conn(self) -> AsyncConnection:
        return self.tx.conn


class DatabaseIdentityStore:
    """:class:`~limit_graph.storage.identity.IdentityStore` on the backend's engine:
    ``begin`` opens a write transaction, ``read`` a read-only connection."""

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[DatabaseTransaction]],
        read: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        *,
        is_sqlite: bool,
    ) -> None:
        self._begin = begin
        self._read = read
        # Text ids sort in code-point order on both databases, as the memory backend's.
        self._key_id = _KEYS.id if is_sqlite else _KEYS.id.collate("C")

    @asynccontextmanager
    async def _write(self, entry: EntryDraft) -> AsyncIterator[_Change]:
        try:
            async with self._begin() as tx:
                await tx.conn.execute(rows.LOCK_EPOCH)
                change = _Change(tx)
                yield change
                if change.changed:
                    await tx.conn.execute(rows.MOVE_EPOCH)
                    await tx.append_entry(entry)
        except sa_exc.IntegrityError as exc:
            raise Conflict("the change conflicts with a record stored meanwhile") from exc
        except sa_exc.DataError as exc:
            reason = (str(exc.orig).strip().splitlines() or ["data error"])[0][:200]
            raise InvalidInput(f"the database cannot store this record: {reason}") from exc

    async def _documents(self, query: Select[Any]) -> list[Any]:
        async with self._read() as conn:
            return list(await conn.scalars(query))

    # --- tenants ---------------------------------------------------------------------

    async def create_tenant(self, tenant: Tenant, *, entry: EntryDraft) -> Tenant:
        check_record(tenant, "tenant")
        clash = or_(_TENANTS.name == tenant.name, _TENANTS.id == tenant.id)
        async with self._write(entry) as change:
            taken = await change.conn.scalars(select(_TENANTS.document).where(clash))
            conflict = tenant_conflict(tenant, [Tenant.model_validate(d) for d in taken])
            if conflict is not None:
                raise conflict
            await change.conn.execute(insert(t.tenants).values(**rows.tenant_row(tenant)))
        return tenant

    async def find_tenant(self, ref: str) -> Tenant | None:
        tenant_id = rows.uuid_of(ref)
        match = _TENANTS.name == ref
        if tenant_id is not None:
            match = or_(match, _TENANTS.id == tenant_id)
        found = [Tenant.model_validate(d) for d in await self._documents(_where(t.tenants, match))]
        return next((x for x in found if x.name == ref), None) or next(iter(found), None)

    async def list_tenants(self) -> list[Tenant]:
        found = await self._documents(select(_TENANTS.document))
        return sorted((Tenant.model_validate(d) for d in found), key=lambda x: x.name)

    # --- principals ------------------------------------------------------------------

    async def create_principal(
        self, principal: PrincipalRecord, *, entry: EntryDraft
    ) -> PrincipalRecord:
        check_record(principal, "principal")
        if principal.client_id is not None:
            check_ref(principal.client_id, "client id")
        c = _PRINCIPALS
        same_name = and_(
            c.tenant == principal.tenant, c.name == principal.name, c.deleted_us.is_(None)
        )
        clash = or_(c.id == principal.id, same_name)
        if principal.client_id is not None:
            clash = or_(clash, c.client_id == principal.client_id)
        async with self._write(entry) as change:
            taken = await change.conn.scalars(select(c.document).where(clash))
            found = [PrincipalRecord.model_validate(d) for d in taken]
            conflict = principal_conflict(principal, found)
            if conflict is not None:
                raise conflict
            await change.conn.execute(insert(t.principals).values(**rows.principal_row(principal)))
        return principal

    async def get_principal(self, principal_id: uuid.UUID) -> PrincipalRecord | None:
        return await self._principal(_PRINCIPALS.id == principal_id)

    async def find_principal_by_client_id(self, client_id: str) -> PrincipalRecord | None:
        c = _PRINCIPALS
        return await self._principal(c.client_id == client_id, c.deleted_us.is_(None))

    async def find_principal(self, tenant: str, name: str) -> PrincipalRecord | None:
        c = _PRINCIPALS
        return await self._principal(c.tenant == tenant, c.name == name, c.deleted_us.is_(None))

    async def _principal(self, *where: ColumnElement[bool]) -> PrincipalRecord | None:
        found = await self._documents(select(_PRINCIPALS.document).where(*where))
        return PrincipalRecord.model_validate(found[0]) if found else None

    async def list_principals(
        self, tenant: str | None, *, limit: int, cursor: str | None
    ) -> Page[PrincipalRecord]:
        check_limit(limit)
        c = _PRINCIPALS
        query = select(c.document).where(c.deleted_us.is_(None))
        if tenant is not None:
            query = query.where(c.tenant == tenant)
        if cursor:
            stamp, last_id = decode_cursor(cursor)
            query = query.where(_after(c.created_us, c.id, t.to_micros(stamp), last_id))
        query = query.order_by(c.created_us, c.id).limit(limit + 1)
        found = [PrincipalRecord.model_validate(d) for d in await self._documents(query)]
        return _page(found, limit, lambda p: encode_cursor(principal_sort_key(p)))

    async def delete_principal(
        self, principal_id: uuid.UUID, *, at: datetime, entry: EntryDraft
    ) -> PrincipalRecord | None:
        check_aware("deleted at", at)
        async with self._write(entry) as change:
            conn = change.conn
            principal = await _owner(conn, principal_id)
            if principal is None or principal.deleted_at is not None:
                change.changed = False
                return None
            deleted = soft_deleted(principal, at)
            await conn.execute(
                update(t.principals)
                .where(_PRINCIPALS.id == principal_id)
                .values(**rows.principal_row(deleted))
            )
            live_keys = await conn.execute(
                rows.key_query()
                .where(_KEYS.principal_id == principal_id, _KEYS.revoked_us.is_(None))
                .order_by(_KEYS.id)
                .with_for_update()
            )
            revocations = [rows.revocation(revoked(rows.api_key_of(r), at)) for r in live_keys]
            if revocations:
                await conn.execute(rows.REVOKE_KEYS, revocations)
            await conn.execute(delete(t.grants).where(_GRANTS.principal_id == principal_id))
        return deleted

    # --- API keys --------------------------------------------------------------------

    async def create_api_key(self, key: ApiKeyRecord, *, entry: EntryDraft) -> ApiKeyRecord:
        check_ref(key.id, "API key id")
        check_record(key, "API key")
        async with self._write(entry) as change:
            conn = change.conn
            if await conn.scalar(select(func.count()).where(_KEYS.id == key.id)):
                raise api_key_conflict(key.id)
            owner = await _owner(conn, key.principal_id)
            check_owner(owner, key.principal_id, key.tenant, "the API key")
            await conn.execute(insert(t.api_keys).values(**rows.api_key_row(key)))
        return key

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(rows.key_query().where(_KEYS.id == key_id))).first()
        return rows.api_key_of(row) if row is not None else None

    async def list_api_keys(
        self,
        tenant: str | None,
        *,
        principal_id: uuid.UUID | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page[ApiKeyRecord]:
        check_limit(limit)
        query = rows.key_query()
        if tenant is not None:
            query = query.where(_KEYS.tenant == tenant)
        if principal_id is not None:
            query = query.where(_KEYS.principal_id == principal_id)
        if cursor:
            stamp, last_id = decode_key_cursor(cursor)
            query = query.where(_after(_KEYS.created_us, self._key_id, t.to_micros(stamp), last_id))
        query = query.order_by(_KEYS.created_us, self._key_id).limit(limit + 1)
        async with self._read() as conn:
            found = [rows.api_key_of(row) for row in await conn.execute(query)]
        return _page(found, limit, lambda k: encode_key_cursor(api_key_sort_key(k)))

    async def revoke_api_key(
        self, key_id: str, *, at: datetime, entry: EntryDraft
    ) -> ApiKeyRecord | None:
        check_aware("revoked at", at)
        query = rows.key_query().where(_KEYS.id == key_id).with_for_update()
        async with self._write(entry) as change:
            row = (await change.conn.execute(query)).first()
            key = rows.api_key_of(row) if row is not None else None
            if key is None or key.revoked_at is not None:
                change.changed = False
                return key
            done = revoked(key, at)
            await change.conn.execute(rows.REVOKE_KEYS, [rows.revocation(done)])
        return done

    async def touch_api_keys(self, used: Mapping[str, datetime]) -> None:
        check_aware("last used at", *used.values())
        if not used:
            return
        # In key order, as delete_principal locks them: two writers never wait on each other.
        changes = [{"b_id": k, "b_used": t.to_micros(used[k])} for k in sorted(used)]
        async with self._begin() as tx:
            await tx.conn.execute(rows.TOUCH_KEYS, changes)

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
        named = select(_SIGNING.document).where(_SIGNING.kid.in_([key.kid, *retire]))
        async with self._write(entry) as change:
            conn = change.conn
            taken = await conn.scalars(named.with_for_update())
            found = {k.kid: k for k in (SigningKeyRecord.model_validate(d) for d in taken)}
            if key.kid in found:
                raise signing_key_conflict(key.kid)
            if unknown := set(retire) - set(found):
                raise unknown_signing_keys(unknown)
            await conn.execute(insert(t.signing_keys).values(**rows.signing_key_row(key)))
            if retire:
                retired = [
                    found[kid].model_copy(update={"retired_at": r, "expires_at": e})
                    for kid, (r, e) in retire.items()
                ]
                changes = [{"b_kid": k.kid, "document": k.model_dump(mode="json")} for k in retired]
                await conn.execute(rows.UPDATE_SIGNING_KEYS, changes)
        return key

    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        found = [
            SigningKeyRecord.model_validate(d)
            for d in await self._documents(select(_SIGNING.document))
        ]
        return sorted(found, key=lambda k: (k.created_at, k.kid), reverse=True)

    # --- policies --------------------------------------------------------------------

    async def put_policy(
        self, policy: PolicyRecord, *, expected_version: int | None, entry: EntryDraft
    ) -> PolicyRecord:
        check_ref(policy.id, "policy id")
        check_record(policy, "policy")
        c = _POLICIES
        async with self._write(entry) as change:
            current = await change.conn.scalar(select(func.max(c.version)).where(c.id == policy.id))
            version = next_policy_version(policy.id, int(current or 0), expected_version)
            stored = policy.model_copy(update={"version": version})
            await change.conn.execute(insert(t.policies).values(**rows.policy_row(stored)))
        return stored

    async def get_policy(self, policy_id: str) -> PolicyRecord | None:
        c = _POLICIES
        query = select(c.document).where(c.id == policy_id).order_by(c.version.desc()).limit(1)
        found = [PolicyRecord.model_validate(d) for d in await self._documents(query)]
        return found[0] if found and not found[0].deleted else None

    async def list_policies(self) -> list[PolicyRecord]:
        c = _POLICIES
        latest = select(c.id, func.max(c.version).label("version")).group_by(c.id).subquery()
        query = (
            select(c.document)
            .join(latest, and_(c.id == latest.c.id, c.version == latest.c.version))
            .where(c.deleted.is_(False))
        )
        found = [PolicyRecord.model_validate(d) for d in await self._documents(query)]
        return sorted(found, key=lambda p: p.id)

    async def policy_history(self, policy_id: str) -> list[PolicyRecord]:
        query = _where(t.policies, _POLICIES.id == policy_id).order_by(_POLICIES.version)
        return [PolicyRecord.model_validate(d) for d in await self._documents(query)]

    # --- grants ----------------------------------------------------------------------

    async def create_grant(self, grant: Grant, *, entry: EntryDraft) -> Grant:
        check_grant(grant)
        c = _GRANTS
        same = and_(
            c.session_id == grant.session_id,
            c.subject == grant_subject(grant),
            c.permission == grant.permission.value,
        )
        async with self._write(entry) as change:
            conn = change.conn
            if grant.principal_id is not None:
                owner = await _owner(conn, grant.principal_id)
                check_owner(owner, grant.principal_id, grant.tenant, "the grant")
            taken = await conn.scalars(select(c.document).where(or_(c.id == grant.id, same)))
            conflict = grant_conflict(grant, [Grant.model_validate(d) for d in taken])
            if conflict is not None:
                raise conflict
            await conn.execute(insert(t.grants).values(**rows.grant_row(grant)))
        return grant

    async def delete_grant(self, grant_id: uuid.UUID, *, entry: EntryDraft) -> Grant | None:
        async with self._write(entry) as change:
            found = await change.conn.scalar(
                select(_GRANTS.document).where(_GRANTS.id == grant_id).with_for_update()
            )
            if found is None:
                change.changed = False
                return None
            await change.conn.execute(delete(t.grants).where(_GRANTS.id == grant_id))
        return Grant.model_validate(found)

    async def list_grants(self, session_id: uuid.UUID) -> list[Grant]:
        c = _GRANTS
        query = _where(t.grants, c.session_id == session_id).order_by(c.created_us, c.id)
        return [Grant.model_validate(d) for d in await self._documents(query)]

    async def identity_epoch(self) -> int:
        async with self._read() as conn:
            epoch = await conn.scalar(select(t.identity_epoch.c.epoch))
        return int(epoch or 0)


def _where(table: Any, *where: ColumnElement[bool]) -> Select[Any]:
    return select(table.c.document).where(*where)


async def _owner(conn: AsyncConnection, principal_id: uuid.UUID) -> PrincipalRecord | None:
    """The principal, its row locked until the transaction ends."""
    query = _where(t.principals, _PRINCIPALS.id == principal_id).with_for_update()
    found = await conn.scalar(query)
    return PrincipalRecord.model_validate(found) if found is not None else None


def _after(
    micros_column: ColumnElement[int], id_column: ColumnElement[Any], micros: int, last_id: Any
) -> ColumnElement[bool]:
    """Rows after (``micros``, ``last_id``) in (time, id) order: the keyset condition."""
    return or_(micros_column > micros, and_(micros_column == micros, id_column > last_id))


def _page(found: list[T], limit: int, cursor_of: Callable[[T], str]) -> Page[T]:
    """The first ``limit`` of up to ``limit + 1`` rows, and a cursor when there were more."""
    chosen = found[:limit]
    return Page(chosen, cursor_of(chosen[-1]) if len(found) > limit else None)
