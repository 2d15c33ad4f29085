"""Request and response bodies of the identity routes: tenants, principals, keys,
tokens, policies and grants.

No response model has a field for a digest, an encrypted key or a secret other than
the one a creation shows once (``key``, ``client_secret``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from limit_graph.core.identity import (
    ApiKeyRecord,
    Grant,
    GrantPermission,
    PolicyRecord,
    PrincipalKind,
    PrincipalRecord,
    Role,
)

__all__ = [
    "GrantCreate",
    "GrantList",
    "GrantOut",
    "KeyCreate",
    "KeyCreated",
    "KeyOut",
    "KeyPage",
    "PolicyList",
    "PolicyOut",
    "PolicyPut",
    "PrincipalCreate",
    "PrincipalCreated",
    "PrincipalOut",
    "PrincipalPage",
    "TenantCreate",
    "TenantList",
    "SigningKeyOut",
    "TenantOut",
    "TokenOut",
]

_NAME = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(_Request):
    name: str = _NAME


class TenantOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime


class TenantList(BaseModel):
    items: list[TenantOut]


class PrincipalCreate(_Request):
    name: str = _NAME
    tenant: str = Field(min_length=1, max_length=128, description="The tenant's name or id.")
    kind: PrincipalKind
    roles: list[Role] = Field(default_factory=list, max_length=8)
    groups: list[str] = Field(default_factory=list, max_length=64)
    pools: list[str] | None = Field(
        default=None,
        max_length=8,
        description="A runner's work pools (local, remote, quantum); omitted: every pool.",
    )


class PrincipalOut(BaseModel):
    id: uuid.UUID
    name: str
    tenant: str
    kind: PrincipalKind
    roles: list[Role]
    groups: list[str]
    pools: list[str] | None = None
    client_id: str | None = None
    platform_admin: bool = False
    created_at: datetime

    @classmethod
    def of(cls, record: PrincipalRecord) -> PrincipalOut:
        return cls.model_validate(record.model_dump(exclude={"client_secret_digest", "deleted_at"}))


class PrincipalCreated(PrincipalOut):
    client_secret: str | None = Field(
        default=None, description="A service account's client secret: shown this once."
    )


class PrincipalPage(BaseModel):
    items: list[PrincipalOut]
    next_cursor: str | None


class KeyCreate(_Request):
    principal_id: uuid.UUID
    scopes: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Actions the key may do ('session.read', 'session.*'); none: all its "
        "principal may.",
    )
    expires_at: AwareDatetime | None = None


class KeyOut(BaseModel):
    id: str
    principal_id: uuid.UUID
    tenant: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> KeyOut:
        return cls.model_validate(record.model_dump(exclude={"digest"}))


class KeyCreated(KeyOut):
    key: str = Field(description="The key: shown this once, never again.")


class KeyPage(BaseModel):
    items: list[KeyOut]
    next_cursor: str | None


class TokenOut(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int


class SigningKeyOut(BaseModel):
    """The key that signs tokens from now on (its public half is in the JWKS)."""

    kid: str
    algorithm: str
    created_at: datetime


class PolicyPut(_Request):
    text: str = Field(min_length=1, max_length=100_000, description="Cedar policy text.")
    description: str = Field(default="", max_length=2_000)
    expected_version: int | None = Field(
        default=None,
        ge=0,
        description="The version this change is based on (0: the policy must be new); "
        "another is a 409.",
    )


class PolicyOut(BaseModel):
    id: str = Field(description="The id within its tenant (what PUT /policies/{id} takes).")
    qualified_id: str = Field(
        description="The id denials name: '<tenant>/<id>' for a tenant's, the id for the "
        "platform's."
    )
    version: int
    tenant: str | None = Field(description="The tenant it applies to; null: the platform's.")
    text: str
    description: str
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, record: PolicyRecord) -> PolicyOut:
        local = record.id.removeprefix(f"{record.tenant}/") if record.tenant else record.id
        fields = record.model_dump(exclude={"deleted", "id"})
        return cls.model_validate({**fields, "id": local, "qualified_id": record.id})


class PolicyList(BaseModel):
    items: list[PolicyOut]


class GrantCreate(_Request):
    principal_id: uuid.UUID | None = None
    group: str | None = Field(default=None, min_length=1, max_length=63)
    permission: GrantPermission


class GrantOut(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    principal_id: uuid.UUID | None
    group: str | None
    permission: GrantPermission
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, grant: Grant) -> GrantOut:
        return cls.model_validate(grant.model_dump(exclude={"tenant"}))


class GrantList(BaseModel):
    items: list[GrantOut]
