"""Migration 0004 (identity): a database made at 0003 upgrades with its data, gains the
identity tables and their constraints exactly as ``storage/schema/`` describes them,
and downgrades to 0003 again keeping the older records.

As in ``test_migrations.py``, the older database is made as that release made it:
Alembic up to the revision, then rows written with the columns the revision had.
"""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select, update
from sqlalchemy import exc as sa_exc

from limit_graph.core.identity import PrincipalKind, PrincipalRecord, Role, Tenant
from limit_graph.storage import schema as t
from limit_graph.storage.base import session_draft
from limit_graph.storage.database import DatabaseStorage
from limit_graph.storage.database import identity_rows as rows
from limit_graph.storage.ledger import EntryDraft, verify_entries
from tests.fixtures.legacy_ledger import chained_rows, same_entry, write_chain
from tests.fixtures.migrations import downgrade, migrate
from tests.fixtures.records import T0, make_session

IDENTITY_TABLES = {
    "limit_tenants",
    "limit_principals",
    "limit_api_keys",
    "limit_signing_keys",
    "limit_policies",
    "limit_grants",
    "limit_identity_epoch",
}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _entry(action: str) -> EntryDraft:
    return EntryDraft("admin", action, "identity", "-", None, {"action": action})


def _principal(name: str, *, client_id: str | None = None) -> PrincipalRecord:
    return PrincipalRecord(
        id=uuid.uuid4(),
        name=name,
        tenant="acme",
        kind=PrincipalKind.SERVICE if client_id else PrincipalKind.USER,
        roles=[Role.VIEWER],
        client_id=client_id,
        created_at=T0,
    )


async def test_a_database_made_at_0003_upgrades_to_identity_with_its_data(
    engine: Engine, url: str
) -> None:
    migrate(engine, "0003")
    assert not IDENTITY_TABLES & _tables(engine)
    session = make_session()
    chain = chained_rows([(session_draft(session, actor="alice", action="created"), T0)])
    with engine.begin() as conn:
        conn.execute(insert(t.sessions), [t.session_row(session)])
        write_chain(conn, chain)

    store = DatabaseStorage(url)
    await store.start()
    try:
        assert _tables(engine) >= IDENTITY_TABLES
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": "limit_alembic_version"}
            )
            assert compare_metadata(context, t.metadata) == []
        assert await store.get_session(session.id) == session
        assert await store.identity.identity_epoch() == 0
        assert await store.identity.list_tenants() == []

        tenant = Tenant(id=uuid.uuid4(), name="acme", created_at=T0)
        await store.identity.create_tenant(tenant, entry=_entry("tenant.created"))
        alice = await store.identity.create_principal(
            _principal("alice"), entry=_entry("principal.created")
        )
        assert await store.identity.find_tenant("acme") == tenant
        assert await store.identity.find_principal("acme", "alice") == alice
        assert await store.identity.identity_epoch() == 2
        entries = await store.list_entries()
        assert same_entry(entries[0], chain[0])
        assert [e.action for e in entries[1:]] == ["tenant.created", "principal.created"]
        assert verify_entries(entries) is None
    finally:
        await store.close()


def test_the_migrated_constraints_refuse_what_the_store_calls_a_conflict(
    engine: Engine,
) -> None:
    """Rows written past the store, as a racing process might: the database refuses them."""
    migrate(engine, "head")
    alice = _principal("alice", client_id="c-1")
    with engine.begin() as conn:
        conn.execute(
            insert(t.tenants),
            [rows.tenant_row(Tenant(id=uuid.uuid4(), name="acme", created_at=T0))],
        )
        conn.execute(insert(t.principals), [rows.principal_row(alice)])

    refused = [
        (t.tenants, rows.tenant_row(Tenant(id=uuid.uuid4(), name="acme", created_at=T0))),
        (t.principals, rows.principal_row(_principal("alice"))),
        (t.principals, rows.principal_row(_principal("bob", client_id="c-1"))),
    ]
    for table, row in refused:
        with pytest.raises(sa_exc.IntegrityError), engine.begin() as conn:
            conn.execute(insert(table), [row])

    # Once alice is deleted her name is free; her client id is not.
    with engine.begin() as conn:
        conn.execute(update(t.principals).where(t.principals.c.id == alice.id).values(deleted_us=1))
        conn.execute(insert(t.principals), [rows.principal_row(_principal("alice"))])
        assert conn.scalar(select(t.identity_epoch.c.epoch)) == 0
    with pytest.raises(sa_exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(t.principals), [rows.principal_row(_principal("carol", client_id="c-1"))]
        )


async def test_0004_downgrades_to_0003_keeping_the_older_records(engine: Engine, url: str) -> None:
    store = DatabaseStorage(url)
    await store.start()
    try:
        session = make_session()
        await store.write_new_session(session, actor="alice", action="session.created")
        await store.identity.create_tenant(
            Tenant(id=uuid.uuid4(), name="acme", created_at=T0), entry=_entry("tenant.created")
        )
    finally:
        await store.close()

    downgrade(engine, "0003")
    assert not IDENTITY_TABLES & _tables(engine)
    with engine.connect() as conn:
        assert conn.scalar(select(t.sessions.c.id)) == session.id
        assert conn.scalar(select(t.ledger_head.c.size)) == 2

    reopened = DatabaseStorage(url)
    await reopened.start()
    try:
        assert _tables(engine) >= IDENTITY_TABLES
        assert await reopened.get_session(session.id) == session
        assert await reopened.identity.list_tenants() == []
        assert await reopened.identity.identity_epoch() == 0
        await reopened.identity.create_tenant(
            Tenant(id=uuid.uuid4(), name="acme", created_at=T0), entry=_entry("tenant.created")
        )
        assert await reopened.identity.identity_epoch() == 1
        assert verify_entries(await reopened.list_entries()) is None
    finally:
        await reopened.close()
