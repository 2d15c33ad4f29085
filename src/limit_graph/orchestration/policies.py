"""Governance policies: listed, validated against the entity schema, versioned, changed.

The platform's policies (the defaults among them) apply to every tenant and only the
platform admin changes them; a tenant admin writes policies of the tenant's own, which
apply to that tenant's principals only and cannot reach another tenant (the platform's
``tenant-isolation`` forbid wins over any permit).  A tenant's policy ids are its own:
``no-deletes`` of tenant ``acme`` is stored as ``acme/no-deletes`` (the name a denial
gives), so tenants neither collide nor learn each other's ids.  Every change is a
ledger entry, and every process reloads the set when the identity epoch moves.
"""

from __future__ import annotations

from limit_graph.core.errors import Conflict, NotFound, PolicyDenied
from limit_graph.core.identity import PolicyRecord
from limit_graph.core.models import utcnow
from limit_graph.governance.auth import Principal
from limit_graph.governance.authorizer import Authorizer
from limit_graph.governance.policy.schema import Action
from limit_graph.governance.watch import IdentityWatch
from limit_graph.storage.identity import IdentityStore
from limit_graph.storage.ledger import EntryDraft

__all__ = ["PLATFORM_POLICIES", "PolicyService", "stored_policy_id"]

PLATFORM_POLICIES = "platform-policies"
"""The id a denial names when a tenant admin tries to change a platform policy."""


def stored_policy_id(tenant: str | None, policy_id: str) -> str:
    """The id a policy of ``tenant`` (None: the platform's) is stored and named by.

    >>> stored_policy_id("acme", "no-deletes"), stored_policy_id(None, "viewers-read")
    ('acme/no-deletes', 'viewers-read')
    """
    return policy_id if tenant is None else f"{tenant}/{policy_id}"


class PolicyService:
    def __init__(
        self, identity: IdentityStore, authorizer: Authorizer, watch: IdentityWatch
    ) -> None:
        self.identity = identity
        self.authorizer = authorizer
        self.watch = watch

    @staticmethod
    def _visible(caller: Principal, policy: PolicyRecord | None) -> bool:
        return policy is not None and policy.tenant in (None, caller.tenant)

    async def current(self, caller: Principal) -> list[PolicyRecord]:
        """The platform's policies and the caller's tenant's, current versions."""
        await self.authorizer.on_tenant(caller, Action.POLICY_READ)
        policies = await self.authorizer.policies()
        return sorted((p for p in policies if self._visible(caller, p)), key=lambda p: p.id)

    def _default(self, policy_id: str) -> PolicyRecord | None:
        return next((p for p in self.authorizer.defaults if p.id == policy_id), None)

    async def history(self, caller: Principal, policy_id: str) -> list[PolicyRecord]:
        """Every version, oldest first (a default never changed: its shipped version)."""
        await self.authorizer.on_tenant(caller, Action.POLICY_READ)
        versions: list[PolicyRecord] = []
        if not caller.platform_admin:
            versions = await self.identity.policy_history(
                stored_policy_id(caller.tenant, policy_id)
            )
        if not versions:
            versions = await self.identity.policy_history(policy_id)
        if not versions and (shipped := self._default(policy_id)) is not None:
            versions = [shipped]
        if not versions or not self._visible(caller, versions[-1]):
            raise NotFound(f"no policy {policy_id}")
        return versions

    async def _current(self, policy_id: str) -> PolicyRecord | None:
        stored = await self.identity.get_policy(policy_id)
        return stored if stored is not None else self._default(policy_id)

    async def _store_shipped(self, shipped: PolicyRecord) -> None:
        """A default's first change: its shipped text becomes stored version 1."""
        await self.identity.put_policy(
            shipped,
            expected_version=0,
            entry=EntryDraft(
                actor=shipped.updated_by,
                action="policy.created",
                resource_type="policy",
                resource_id=shipped.id,
                session_id=None,
                payload={"tenant": None, "id": shipped.id, "version": 1, "text": shipped.text},
            ),
        )

    async def put(
        self,
        caller: Principal,
        policy_id: str,
        *,
        text: str,
        description: str = "",
        expected_version: int | None = None,
    ) -> PolicyRecord:
        """Write the next version of ``policy_id`` (a new policy at version 1)."""
        await self.authorizer.on_tenant(caller, Action.POLICY_WRITE)
        scope = None if caller.platform_admin else caller.tenant
        if scope is not None and await self._current(policy_id) is not None:
            raise PolicyDenied(
                f"policy {policy_id} is a platform policy: only the platform admin changes it "
                "(write a policy of your tenant's own, under another id, to add rules)",
                [PLATFORM_POLICIES],
            )
        stored_id = stored_policy_id(scope, policy_id)
        current = await self._current(stored_id)
        self.authorizer.engine.validate(text, policy_id=stored_id, tenant=scope)
        if expected_version is not None and expected_version != (current.version if current else 0):
            raise Conflict(
                f"policy {policy_id} is at version {current.version if current else 0}, "
                f"not {expected_version}"
            )
        if current is not None and await self.identity.get_policy(stored_id) is None:
            await self._store_shipped(current)
        record = PolicyRecord(
            id=stored_id,
            version=1,
            tenant=scope,
            text=text,
            description=description,
            updated_by=caller.name,
            updated_at=utcnow(),
        )
        stored = await self.identity.put_policy(
            record,
            expected_version=expected_version,
            entry=EntryDraft(
                actor=caller.name,
                action="policy.updated" if current else "policy.created",
                resource_type="policy",
                resource_id=stored_id,
                session_id=None,
                payload={
                    "tenant": scope,
                    "id": stored_id,
                    "previous_version": current.version if current else 0,
                    "text": text,
                    "description": description,
                },
            ),
        )
        await self.watch.changed()
        return stored
