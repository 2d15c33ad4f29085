"""Where the file backend keeps identity records, and how it reads them back.

Each record is one JSON file under ``identity/``, written through the backend's redo
journal with the rest of its transaction.  Nothing is ever deleted, so that a commit
is only renames: a policy version is a file of its own, and a session's grants are
one file holding the whole list (a removed grant is the list rewritten without it).
Text ids (API key ids, kids, policy ids) name their files by SHA-256, so any id
makes a safe file name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from limit_graph.core.identity import (
    ApiKeyRecord,
    Grant,
    PolicyRecord,
    PrincipalRecord,
    SigningKeyRecord,
    Tenant,
)
from limit_graph.storage.memory_identity import IdentityWrites

__all__ = ["IDENTITY_FOLDERS", "identity_files", "load_identity"]

IDENTITY_FOLDERS = (
    "identity",
    "identity/tenants",
    "identity/principals",
    "identity/api_keys",
    "identity/signing_keys",
    "identity/policies",
    "identity/grants",
)
EPOCH_FILE = "identity/epoch.json"


def _hashed(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def identity_files(writes: IdentityWrites) -> list[tuple[str, bytes]]:
    """The files (path under the root, content) that commit ``writes``."""
    files: list[tuple[str, bytes]] = []
    for tenant in writes.tenants.values():
        files.append((f"identity/tenants/{tenant.id}.json", tenant.model_dump_json().encode()))
    for principal in writes.principals.values():
        files.append(
            (f"identity/principals/{principal.id}.json", principal.model_dump_json().encode())
        )
    for key in writes.api_keys.values():
        files.append((f"identity/api_keys/{_hashed(key.id)}.json", key.model_dump_json().encode()))
    for signing in writes.signing_keys.values():
        name = f"identity/signing_keys/{_hashed(signing.kid)}.json"
        files.append((name, signing.model_dump_json().encode()))
    for policy in writes.policies:
        name = f"identity/policies/{_hashed(policy.id)}-{policy.version:08d}.json"
        files.append((name, policy.model_dump_json().encode()))
    for session_id, grants in writes.grants.items():
        listed = [g.model_dump(mode="json") for g in grants]
        files.append((f"identity/grants/{session_id}.json", json.dumps(listed).encode()))
    if writes.epoch is not None:
        files.append((EPOCH_FILE, json.dumps({"epoch": writes.epoch}).encode()))
    return files


def load_identity(root: Path) -> IdentityWrites:
    """Every identity record under ``root``, as one set of writes to apply."""
    loaded = IdentityWrites()

    def documents(folder: str) -> list[bytes]:
        return [p.read_bytes() for p in sorted((root / folder).glob("*.json"))]

    for data in documents("identity/tenants"):
        tenant = Tenant.model_validate_json(data)
        loaded.tenants[tenant.id] = tenant
    for data in documents("identity/principals"):
        principal = PrincipalRecord.model_validate_json(data)
        loaded.principals[principal.id] = principal
    for data in documents("identity/api_keys"):
        key = ApiKeyRecord.model_validate_json(data)
        loaded.api_keys[key.id] = key
    for data in documents("identity/signing_keys"):
        signing = SigningKeyRecord.model_validate_json(data)
        loaded.signing_keys[signing.kid] = signing
    loaded.policies = [PolicyRecord.model_validate_json(d) for d in documents("identity/policies")]
    for data in documents("identity/grants"):
        grants = [Grant.model_validate(g) for g in json.loads(data)]
        if grants:
            loaded.grants[grants[0].session_id] = grants
    epoch = root / EPOCH_FILE
    if epoch.exists():
        loaded.epoch = int(json.loads(epoch.read_bytes())["epoch"])
    return loaded
