"""Identity records: tenants, principals, API keys, signing keys, policies and grants.

These are what the identity tables hold (``storage``) and what governance decides
with.  No record holds a secret in the clear: API keys and client secrets are kept as
HMAC-SHA256 digests under the server's secret, signing keys encrypted under a key
derived from it (``governance/secrets.py``).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ROLES",
    "ApiKeyRecord",
    "Grant",
    "GrantPermission",
    "PolicyRecord",
    "PrincipalKind",
    "PrincipalRecord",
    "Role",
    "SigningKeyRecord",
    "Tenant",
    "check_name",
]

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def check_name(value: str, what: str) -> str:
    """A tenant, principal or group name: lower-case letters, digits, ``.``, ``_``, ``-``.

    >>> check_name("team-a", "tenant")
    'team-a'
    """
    if not NAME.fullmatch(value):
        raise ValueError(
            f"{what} name {value!r} must be 1-63 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


class Role(StrEnum):
    """The roles, weakest first; each holds what the ones before it hold."""

    VIEWER = "viewer"
    AUTHOR = "author"
    OPERATOR = "operator"
    ADMIN = "admin"
    AUDITOR = "auditor"
    """Reads what a viewer reads, and the tenant's audit trail (which a viewer does not)."""
    RUNNER = "runner"
    """A runner's service account: claims, heartbeats and reports work of its pools."""


ROLES = frozenset(Role)


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE = "service"


class GrantPermission(StrEnum):
    READ = "read"
    EXECUTE = "execute"
    ADMIN = "admin"


class _Identity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tenant(_Identity):
    id: uuid.UUID
    name: str
    created_at: datetime

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "tenant")


class PrincipalRecord(_Identity):
    """A user or a service account of one tenant.

    A service account has a ``client_id`` and, as an HMAC digest, its client secret
    (OAuth2 client credentials).  ``platform_admin`` is the one principal that manages
    tenants; it is made on first start and holds the admin key of the settings.
    """

    id: uuid.UUID
    name: str
    tenant: str
    kind: PrincipalKind
    roles: list[Role]
    groups: list[str] = Field(default_factory=list)
    client_id: str | None = None
    client_secret_digest: str | None = None
    platform_admin: bool = False
    pools: list[str] | None = Field(
        default=None, description="For a runner: the work pools it may claim from (None: all)."
    )
    created_at: datetime
    deleted_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "principal")

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        return [check_name(group, "group") for group in value]


class ApiKeyRecord(_Identity):
    """An API key ``lgk_<id>_<secret>``: found by ``id``, checked against ``digest``."""

    id: str
    principal_id: uuid.UUID
    tenant: str
    digest: str
    scopes: list[str] = Field(default_factory=list)
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class SigningKeyRecord(_Identity):
    """A token-signing key; ``private_key`` is encrypted, ``public_jwk`` is public."""

    kid: str
    algorithm: str
    private_key: str
    public_jwk: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None = Field(
        default=None, description="When it stopped signing; served until its tokens expire."
    )
    expires_at: datetime | None = Field(
        default=None, description="When the last token it signed expires: no longer served."
    )


class PolicyRecord(_Identity):
    """One version of a stored policy (Cedar text), validated against the schema."""

    id: str
    version: int
    tenant: str | None = Field(
        default=None, description="The tenant it applies to; None for a platform policy."
    )
    text: str
    description: str = ""
    updated_by: str
    updated_at: datetime
    deleted: bool = False


class Grant(_Identity):
    """A permission on one session, to a principal or to a group of its tenant."""

    id: uuid.UUID
    session_id: uuid.UUID
    tenant: str
    principal_id: uuid.UUID | None = None
    group: str | None = None
    permission: GrantPermission
    created_by: str
    created_at: datetime
