"""The platform's default policies, shipped as ``defaults/<id>.cedar`` files.

Each file is one stored platform policy (tenant None): its name is the policy's id,
its leading ``//`` comment its description.  They are what a new platform starts
with; a test holds each valid against the schema.

>>> sorted(record.id for record in default_policies())[:3]
['admins-manage-tenant', 'auditors-read-audit', 'authors-create-sessions']
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources

from limit_graph.core.identity import PolicyRecord
from limit_graph.core.models import utcnow
from limit_graph.governance.policy.schema import SCHEMA_JSON, cedar_schema, schema_text

__all__ = [
    "DEFAULTS_AUTHOR",
    "SCHEMA_JSON",
    "cedar_schema",
    "default_policies",
    "default_policy_texts",
    "schema_text",
]

DEFAULTS_AUTHOR = "limit-graph"
"""Who a default policy's first version is recorded as written by."""


def default_policy_texts() -> dict[str, str]:
    """Each default policy's Cedar text, by id."""
    folder = resources.files("limit_graph.governance.policy").joinpath("defaults")
    return {
        item.name.removesuffix(".cedar"): item.read_text(encoding="utf-8")
        for item in sorted(folder.iterdir(), key=lambda item: item.name)
        if item.name.endswith(".cedar")
    }


def default_policies(*, at: datetime | None = None) -> list[PolicyRecord]:
    """The default policies as first versions of stored platform policies."""
    when = at or utcnow()
    return [
        PolicyRecord(
            id=policy_id,
            version=1,
            tenant=None,
            text=text,
            description=_description(text),
            updated_by=DEFAULTS_AUTHOR,
            updated_at=when,
        )
        for policy_id, text in default_policy_texts().items()
    ]


def _description(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        lines.append(line.removeprefix("//").strip())
    return " ".join(lines)
