"""The tables of the identity store (``storage/database/identity.py``): tenants,
principals, their API keys, the token signing keys, policies, session grants and the
identity epoch.

Unique constraints stand where the identity store answers Conflict, so that two
processes racing for the same name cannot both win.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    Uuid,
)

from limit_graph.storage.schema.columns import Document, metadata

__all__ = [
    "api_keys",
    "grants",
    "identity_epoch",
    "policies",
    "principals",
    "signing_keys",
    "tenants",
]


tenants = Table(
    "limit_tenants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("document", Document, nullable=False),
    UniqueConstraint("name", name="uq_limit_tenants_name"),
)

principals = Table(
    "limit_principals",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("client_id", String(128), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("deleted_us", BigInteger, nullable=True),
    Column("document", Document, nullable=False),
    # A client id is never given out again, even once its principal is deleted.
    UniqueConstraint("client_id", name="uq_limit_principals_client_id"),
    Index("ix_limit_principals_order", "created_us", "id"),
    Index("ix_limit_principals_tenant", "tenant", "created_us", "id"),
)
# A name is taken only by a principal not deleted: a partial unique index.
Index(
    "uq_limit_principals_live_name",
    principals.c.tenant,
    principals.c.name,
    unique=True,
    sqlite_where=principals.c.deleted_us.is_(None),
    postgresql_where=principals.c.deleted_us.is_(None),
)

api_keys = Table(
    "limit_api_keys",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("principal_id", Uuid, ForeignKey("limit_principals.id"), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    # Kept here, not in the document (whose last_used_at stays null), so that marking
    # keys used rewrites no document.
    Column("last_used_us", BigInteger, nullable=True),
    Column("document", Document, nullable=False),
    Index("ix_limit_api_keys_order", "created_us", "id"),
    Index("ix_limit_api_keys_tenant", "tenant", "created_us", "id"),
    Index("ix_limit_api_keys_principal", "principal_id", "created_us", "id"),
)

signing_keys = Table(
    "limit_signing_keys",
    metadata,
    Column("kid", String(128), primary_key=True),
    Column("created_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
    Index("ix_limit_signing_keys_order", "created_us", "kid"),
)

policies = Table(
    "limit_policies",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("deleted", Boolean, nullable=False),
    Column("document", Document, nullable=False),
)

grants = Table(
    "limit_grants",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("session_id", Uuid, nullable=False),
    # ``principal:<id>`` or ``group:<name>``: one column, so that the unique constraint
    # holds (a null group would make every principal grant distinct).
    Column("subject", String(200), nullable=False),
    Column("permission", String(16), nullable=False),
    Column("principal_id", Uuid, ForeignKey("limit_principals.id"), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("document", Document, nullable=False),
    UniqueConstraint("session_id", "subject", "permission", name="uq_limit_grants_subject"),
    Index("ix_limit_grants_session", "session_id", "created_us", "id"),
    Index("ix_limit_grants_principal", "principal_id"),
)

identity_epoch = Table(
    "limit_identity_epoch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False),
)
